-- Grain: one row per ended engagement: how long until the account's next engagement.
-- returned: the account started another engagement; otherwise the gap is censored at
-- the as-of date (it may still come back). Segments for comparing curves: industry,
-- size band (employees) and the number of buying-committee roles engaged.
with params as (
    select * from run_parameters
),

engagements as (
    select
        *,
        lead(started_at) over (partition by account_id order by engagement_no)
            as next_started_at
    from engagements
),

accounts as (
    select account_id, industry, employees from stg_crm__accounts
),

journeys as (
    select account_id, array_length(roles_engaged) as n_roles_engaged from account_journeys
),

final as (
    select
        e.account_id,
        e.engagement_no,
        e.ended_at,
        e.ended_by,
        e.end_kind,
        e.next_started_at,
        e.next_started_at is not null as returned,
        (epoch(coalesce(e.next_started_at, p.as_of)) - epoch(e.ended_at)) / 86400.0
            as gap_days,
        coalesce(a.industry, 'unknown') as industry,
        case
            when a.employees is null then 'unknown'
            when a.employees < 50 then '1-49'
            when a.employees < 250 then '50-249'
            when a.employees < 1000 then '250-999'
            else '1000+'
        end as size_band,
        case
            when coalesce(j.n_roles_engaged, 0) <= 1 then '0-1 roles'
            when j.n_roles_engaged = 2 then '2 roles'
            else '3+ roles'
        end as roles_band
    from engagements as e
    cross join params as p
    left join accounts as a on e.account_id = a.account_id
    left join journeys as j on e.account_id = j.account_id
    where e.ended_at is not null
)

select * from final
order by account_id, engagement_no
