-- Grain: one row per account: every CRM account, plus any account_id that CRM
-- activities name without an account record. Touchpoints up to the as-of date.
--
-- furthest_stage: the highest ladder stage among the account's staged touchpoints.
-- current_stage, where the journey is now (it moves back as well as forward):
--   * with an engagement (engagement rules; default a deal_won): an open engagement
--     is client; one cancelled, or followed by a cancellation, is former_client;
--     one ended otherwise (completed,
--     inactive, instant) is between_engagements, or advocacy if a referral or case
--     study came after it.
--     Service signals (support tickets, NPS replies) do not move the stage.
--   * client-side signals without any deal_won (history before the data): the
--     stage of the latest such signal.
--   * before any sale: the highest stage reached since the latest deal_lost; a
--     lost deal puts the account back to consideration (or wherever it has got
--     to since).
-- dropped: furthest stage below client and no touchpoint for more than
-- dormancy_days before the as-of date; it dropped at its furthest stage.
-- The one definition of "client" every other model and the report read:
--   became_client: the furthest stage is client or later (the funnel's reached(client));
--   is_current_client: the latest engagement is not cancelled (the churn population
--     under contractual churn: a client now, in an engagement or between two).
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

latest_engagement as (
    select account_id, started_at, ended_at, end_kind
    from engagements
    qualify row_number() over (partition by account_id order by engagement_no desc) = 1
),

-- A cancellation after the latest engagement started ends the relationship even when
-- that engagement had already completed (the client left between engagements).
cancelled_since as (
    select le.account_id
    from latest_engagement as le
    inner join touchpoints as t on le.account_id = t.account_id
    where t.occurred_at >= le.started_at
        and t.activity in (select activity from engagement_rules where role = 'cancel')
    group by le.account_id
),

advocacy_since as (
    select le.account_id
    from latest_engagement as le
    inner join touchpoints as t on le.account_id = t.account_id
    where t.stage = 'advocacy' and t.occurred_at > le.ended_at
    group by le.account_id
),

post_sale as (
    select
        le.account_id,
        l.stage_order,
        l.stage = 'former_client' as is_cancelled
    from latest_engagement as le
    left join advocacy_since as adv on le.account_id = adv.account_id
    left join cancelled_since as cs on le.account_id = cs.account_id
    inner join ladder as l on l.stage = case
        when le.end_kind = 'cancelled' or cs.account_id is not null then 'former_client'
        when le.ended_at is null then 'client'
        when adv.account_id is not null then 'advocacy'
        else 'between_engagements'
    end
),

latest_client_side as (
    select account_id, stage_order
    from touchpoints
    where phase = 'client'
    qualify row_number() over (
        partition by account_id order by occurred_at desc, stage_order desc
    ) = 1
),

last_loss as (
    select account_id, max(occurred_at) as lost_at
    from touchpoints
    where activity = 'deal_lost'
    group by account_id
),

pre_sale as (
    select
        t.account_id,
        case
            when l.lost_at is null then max(t.stage_order)
            else greatest(c.stage_order, coalesce(
                max(t.stage_order) filter (where t.occurred_at > l.lost_at), c.stage_order))
        end as stage_order
    from touchpoints as t
    left join last_loss as l on t.account_id = l.account_id
    cross join (select stage_order from ladder where stage = 'consideration') as c
    where t.phase = 'prospect'
    group by t.account_id, l.lost_at, c.stage_order
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
        coalesce(pos.stage_order, lcs.stage_order, ps.stage_order) as current_stage_order,
        coalesce(e.n_engagements, 0) as n_engagements,
        coalesce(not pos.is_cancelled, false) as is_current_client,
        furthest.phase = 'prospect'
        and act.last_touch_at < p.as_of - to_days(p.dormancy_days) as dropped
    from accounts as a
    cross join params as p
    left join activity as act on a.account_id = act.account_id
    left join roles as r on a.account_id = r.account_id
    left join post_sale as pos on a.account_id = pos.account_id
    left join latest_client_side as lcs on a.account_id = lcs.account_id
    left join pre_sale as ps on a.account_id = ps.account_id
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
