-- Grain: one row per engagement of an account (contract section 3, configurable in v2).
--
-- The rules are config (analysis.engagements, written to engagement_rules): by
-- default an engagement starts at a deal_won and ends at the first
-- project_completed (end) or cancellation (cancel) after it, open (ended_at
-- empty) if none up to the as-of date. A start while an engagement is open (an
-- expansion) belongs to that engagement and is counted in n_deals_won.
-- With run_parameters.inactivity_days, an engagement also ends at its account's
-- last touchpoint before that many days without one (end_kind 'inactive').
-- With instant engagements (purchase logs), each day with a start is a whole
-- engagement: started_at = ended_at = that day's first start (end_kind 'instant').
-- end_kind: completed | cancelled | inactive | instant; ended_by: the activity that
-- ended it (or 'inactivity' / the start activity for instant engagements).
-- gap_days of engagement n > 1: days from the end of engagement n-1 to its start.
with params as (
    select * from run_parameters
),

touchpoints as (
    select t.account_id, t.occurred_at, t.activity, t.amount
    from int_touchpoints_staged as t, params as p
    where t.account_id is not null
        and t.occurred_at <= p.as_of
),

milestones as (
    select t.*, r.role
    from touchpoints as t
    inner join engagement_rules as r on t.activity = r.activity
),

wins as (
    select
        account_id,
        occurred_at as won_at,
        amount,
        activity,
        row_number() over (partition by account_id order by occurred_at) as win_no
    from milestones
    where role = 'start'
),

explicit_ends as (
    select
        account_id,
        occurred_at as ended_at,
        activity as ended_by,
        case role when 'cancel' then 'cancelled' else 'completed' end as end_kind
    from milestones
    where role in ('end', 'cancel')
),

-- A touchpoint followed by more than inactivity_days of silence (or by the as-of
-- date after that long) ends an open engagement there.
silences as (
    select
        t.account_id,
        t.occurred_at as ended_at,
        'inactivity' as ended_by,
        'inactive' as end_kind
    from (
        select
            account_id,
            occurred_at,
            lead(occurred_at) over (partition by account_id order by occurred_at) as next_at
        from touchpoints
        -- nothing to compute unless an inactivity end is configured
        where (select inactivity_days from params) is not null
    ) as t, params as p
    where p.inactivity_days is not null
        and coalesce(t.next_at, p.as_of) > t.occurred_at + to_days(p.inactivity_days)
),

ends as (
    select * from explicit_ends
    union all
    select * from silences
),

-- Each win with the first end after it: a join and row_number rather than an ASOF
-- join, which Spark has not (sql/README.md, the portable subset); an account has few
-- wins and ends. Ends at the same time are taken in a fixed order.
wins_with_end as (
    select account_id, won_at, amount, ended_at, ended_by, end_kind
    from (
        select
            w.account_id,
            w.won_at,
            w.amount,
            e.ended_at,
            e.ended_by,
            e.end_kind,
            row_number() over (
                partition by w.account_id, w.win_no
                order by e.ended_at, e.end_kind, e.ended_by
            ) as nth_end
        from wins as w
        left join ends as e
            on w.account_id = e.account_id and w.won_at < e.ended_at
    ) as matched
    where nth_end = 1
),

flagged as (
    select
        *,
        case
            when lag(won_at) over by_time is null then 1
            when lag(ended_at) over by_time <= won_at then 1
            else 0
        end as starts_engagement
    from wins_with_end
    window by_time as (partition by account_id order by won_at)
),

numbered as (
    select
        *,
        sum(starts_engagement) over (
            partition by account_id order by won_at rows unbounded preceding
        ) as engagement_no
    from flagged
),

lasting as (
    select
        account_id,
        engagement_no,
        min(won_at) as started_at,
        min(ended_at) as ended_at,
        arg_min(ended_by, ended_at) as ended_by,
        arg_min(end_kind, ended_at) as end_kind,
        count(*) as n_deals_won,
        sum(amount) as amount_won
    from numbered
    group by account_id, engagement_no
),

instant as (
    select
        account_id,
        row_number() over (partition by account_id order by min(won_at)) as engagement_no,
        min(won_at) as started_at,
        min(won_at) as ended_at,
        arg_min(activity, won_at) as ended_by,
        'instant' as end_kind,
        count(*) as n_deals_won,
        sum(amount) as amount_won
    from wins
    group by account_id, cast(won_at as date)
),

grouped as (
    select * from lasting
    where not (select instant_engagements from params)
    union all
    select * from instant
    where (select instant_engagements from params)
),

final as (
    select
        account_id,
        cast(engagement_no as integer) as engagement_no,
        started_at,
        ended_at,
        (epoch(started_at) - epoch(lag(ended_at) over (
            partition by account_id order by engagement_no
        ))) / 86400.0 as gap_days,
        ended_by,
        end_kind,
        ended_at is null as is_open,
        n_deals_won,
        amount_won
    from grouped
)

select * from final
order by account_id, engagement_no
