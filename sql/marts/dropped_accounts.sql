-- Grain: one row per dropped account (account_journeys.dropped): the follow-up list,
-- furthest stage first, then the most recently active. days_silent: days from the
-- last touchpoint to the as-of date.
with params as (
    select * from run_parameters
),

journeys as (
    select * from account_journeys
    where dropped
),

accounts as (
    select account_id, account_name, industry from stg_crm__accounts
),

final as (
    select
        j.account_id,
        a.account_name,
        a.industry,
        j.dropped_at_stage,
        j.last_touch_at,
        date_diff('day', j.last_touch_at, p.as_of) as days_silent,
        j.n_touchpoints,
        j.n_contacts_engaged,
        j.furthest_stage_order
    from journeys as j
    cross join params as p
    left join accounts as a on j.account_id = a.account_id
)

select * from final
order by furthest_stage_order desc, last_touch_at desc, account_id
