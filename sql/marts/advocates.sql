-- Grain: one row per account that advocated: a touchpoint signalling advocacy (default
-- stage map: referral, case_study) up to the as-of date.
-- advocated_as: what the account was at its first advocacy, from its engagements:
--   prospect (no engagement had started), client (in an engagement),
--   between_engagements (the last one ended, not cancelled), former_client (cancelled,
--   or a cancellation came after it).
-- while_former_client / while_between_engagements: any advocacy in that status.
with params as (
    select * from run_parameters
),

advocacy as (
    select t.account_id, t.occurred_at, t.activity
    from int_touchpoints_staged as t, params as p
    where t.account_id is not null and t.stage = 'advocacy' and t.occurred_at <= p.as_of
),

status_at as (
    select
        a.account_id,
        a.occurred_at,
        a.activity,
        case
            when e.account_id is null then 'prospect'
            when e.ended_at is null or e.ended_at > a.occurred_at then 'client'
            when e.end_kind = 'cancelled' or exists (
                select 1 from int_touchpoints_staged as c
                where c.account_id = a.account_id
                    and c.occurred_at between e.started_at and a.occurred_at
                    and c.activity in (select activity from engagement_rules where role = 'cancel')
            ) then 'former_client'
            else 'between_engagements'
        end as status
    from advocacy as a
    asof left join engagements as e
        on a.account_id = e.account_id and a.occurred_at >= e.started_at
),

final as (
    select
        account_id,
        min(occurred_at) as first_advocacy_at,
        count(*) as advocacy_touchpoints,
        count(*) filter (where activity = 'referral') as referrals,
        count(*) filter (where activity = 'case_study') as case_studies,
        arg_min(status, occurred_at) as advocated_as,
        bool_or(status = 'former_client') as while_former_client,
        bool_or(status = 'between_engagements') as while_between_engagements,
        bool_or(status = 'client') as while_client
    from status_at
    group by account_id
)

select * from final
order by account_id
