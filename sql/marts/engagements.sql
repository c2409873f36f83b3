-- Grain: one row per engagement of an account (contract section 3).
--
-- An engagement starts at a deal_won and ends at the first project_completed or
-- cancellation after it (open, ended_at empty, if none up to the as-of date).
-- A deal_won while an engagement is open (an expansion) belongs to that
-- engagement and is counted in n_deals_won; it does not start another.
-- gap_days of engagement n > 1: days from the end of engagement n-1 to its start.
with params as (
    select * from run_parameters
),

milestones as (
    select t.account_id, t.occurred_at, t.activity, t.amount
    from int_touchpoints_staged as t, params as p
    where t.account_id is not null
        and t.occurred_at <= p.as_of
        and t.activity in ('deal_won', 'project_completed', 'cancellation')
),

wins as (
    select account_id, occurred_at as won_at, amount
    from milestones
    where activity = 'deal_won'
),

ends as (
    select account_id, occurred_at as ended_at, activity as ended_by
    from milestones
    where activity in ('project_completed', 'cancellation')
),

wins_with_end as (
    select w.account_id, w.won_at, w.amount, e.ended_at, e.ended_by
    from wins as w
    asof left join ends as e
        on w.account_id = e.account_id and w.won_at < e.ended_at
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

grouped as (
    select
        account_id,
        engagement_no,
        min(won_at) as started_at,
        min(ended_at) as ended_at,
        min(ended_by) as ended_by,
        count(*) as n_deals_won,
        sum(amount) as amount_won
    from numbered
    group by account_id, engagement_no
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
        ended_at is null as is_open,
        n_deals_won,
        amount_won
    from grouped
)

select * from final
order by account_id, engagement_no
