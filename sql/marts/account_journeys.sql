-- Grain: one row per account: every CRM account, plus any account_id that CRM
-- activities name without an account record. Touchpoints up to the as-of date.
--
-- furthest_stage: the highest ladder stage among the account's staged touchpoints.
-- current_stage, where the journey is now (it moves back as well as forward): the stage
--   of the account's current stay in account_stage_history (left_at is null), the one
--   definition of the stage an account is in (sql/states).
-- dropped: furthest stage below client and no touchpoint for more than
-- dormancy_days before the as-of date; it dropped at its furthest stage.
-- The one definition of "client" every other model and the report read:
--   became_client: the furthest stage is client or later (the funnel's reached(client));
--   is_current_client: the account has had an engagement and is not a former client now
--     (the churn population under contractual churn: a client now, in an engagement or
--     between two, a renewal cycle included).
-- Stage numbers are never written here: stage_ladder.phase says prospect or client.
with params as (
    select * from run_parameters
),

touchpoints as (
    select t.*, l.phase
    from int_touchpoints_staged as t
    cross join params as p
    left join stage_ladder as l on t.stage = l.stage
    where t.account_id is not null and t.occurred_at <= p.as_of
),

accounts as (
    select account_id from stg_crm__accounts
    union
    select distinct account_id from touchpoints
),

contacts as (
    select contact_id, role from stg_crm__contacts
),

ladder as (
    select * from stage_ladder
),

activity as (
    select
        account_id,
        min(occurred_at) as first_touch_at,
        max(occurred_at) as last_touch_at,
        count(*) as n_touchpoints,
        count(distinct contact_id) as n_contacts_engaged,
        max(stage_order) as furthest_stage_order
    from touchpoints
    group by account_id
),

roles as (
    select t.account_id, list(distinct c.role order by c.role) as roles_engaged
    from touchpoints as t
    inner join contacts as c on t.contact_id = c.contact_id
    where c.role is not null
    group by t.account_id
),

current_stay as (
    select account_id, stage_order
    from account_stage_history
    where left_at is null
),

engagement_counts as (
    select account_id, count(*) as n_engagements
    from engagements
    group by account_id
),

combined as (
    select
        a.account_id,
        act.first_touch_at,
        act.last_touch_at,
        coalesce(act.n_touchpoints, 0) as n_touchpoints,
        coalesce(act.n_contacts_engaged, 0) as n_contacts_engaged,
        coalesce(r.roles_engaged, []::varchar[]) as roles_engaged,
        act.furthest_stage_order,
        cur.stage_order as current_stage_order,
        coalesce(e.n_engagements, 0) as n_engagements,
        coalesce(e.n_engagements > 0 and cur.stage_order <> former.stage_order, false)
            as is_current_client,
        furthest.phase = 'prospect'
        and act.last_touch_at < p.as_of - to_days(p.dormancy_days) as dropped
    from accounts as a
    cross join params as p
    left join activity as act on a.account_id = act.account_id
    left join roles as r on a.account_id = r.account_id
    left join current_stay as cur on a.account_id = cur.account_id
    cross join (select stage_order from ladder where stage = 'former_client') as former
    left join engagement_counts as e on a.account_id = e.account_id
    left join ladder as furthest on act.furthest_stage_order = furthest.stage_order
),

final as (
    select
        c.account_id,
        c.first_touch_at,
        c.last_touch_at,
        c.n_touchpoints,
        c.n_contacts_engaged,
        c.roles_engaged,
        furthest.stage as furthest_stage,
        current_.stage as current_stage,
        c.n_engagements,
        coalesce(furthest.phase = 'client', false) as became_client,
        c.is_current_client,
        coalesce(c.dropped, false) as dropped,
        case when c.dropped then furthest.stage end as dropped_at_stage,
        c.furthest_stage_order,
        c.current_stage_order
    from combined as c
    left join ladder as furthest on c.furthest_stage_order = furthest.stage_order
    left join ladder as current_ on c.current_stage_order = current_.stage_order
)

select * from final
order by account_id
