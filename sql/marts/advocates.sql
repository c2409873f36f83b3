-- Grain: one row per account that advocated: a touchpoint signalling advocacy (default
-- stage map: referral, case_study) up to the as-of date.
-- advocated_as: what the account was at its first advocacy, read from its stays
--   (account_stage_history, the one post-sale rule): prospect (a pre-sale stay),
--   client (in an engagement), between_engagements (the last one ended by completion,
--   a renewal cycle or an advocacy stay included), former_client (a cancellation).
-- while_former_client / while_between_engagements: any advocacy in that status.
with params as (
    select * from run_parameters
),

advocacy as (
    select t.account_id, t.occurred_at, t.activity
    from int_touchpoints_staged as t, params as p
    where t.account_id is not null and t.stage = 'advocacy' and t.occurred_at <= p.as_of
),

stays as (
    select h.account_id, h.entered_at, h.stage, h.is_renewal, l.phase
    from account_stage_history as h
    inner join stage_ladder as l on h.stage = l.stage
),

-- Each advocacy touchpoint with the last stay entered before it: a join and row_number
-- rather than an ASOF join, which Spark has not (sql/README.md, the portable subset).
status_at as (
    select
        account_id,
        occurred_at,
        activity,
        case
            when stay_account is null or (phase = 'prospect' and not is_renewal)
                then 'prospect'
            when stage in ('client', 'former_client') then stage
            else 'between_engagements'
        end as status
    from (
        select
            a.account_id,
            a.occurred_at,
            a.activity,
            s.account_id as stay_account,
            s.phase,
            s.is_renewal,
            s.stage,
            row_number() over (
                partition by a.account_id, a.touch_no
                order by s.entered_at desc, s.stage
            ) as nth_stay
        from (
            select
                *,
                row_number() over (partition by account_id order by occurred_at) as touch_no
            from advocacy
        ) as a
        left join stays as s
            on a.account_id = s.account_id and a.occurred_at > s.entered_at
    ) as matched
    where nth_stay = 1
),

names as (
    select account_id, account_name from stg_crm__accounts
),

per_account as (
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
),

final as (
    select p.account_id, n.account_name, p.* exclude (account_id)
    from per_account as p
    left join names as n on p.account_id = n.account_id
)

select * from final
order by account_id
