-- Grain: one row per period (month and quarter) x lifecycle status, for the trend chart.
-- An account is active in a period when it has a touchpoint of its own there (a
-- mining event: staged or negative). Statuses, as growth accounting defines them:
--   new           active, and this is its first active period
--   returning     active now and in the previous period
--   resurrecting  active now, not in the previous period, but active before
--   dormant       active in the previous period, not now
-- Computed from the active (account, period) pairs alone, with no grid of every
-- account x every period (at 100 M events that grid had 80 M rows and a window over
-- them ran out of memory): the previous period is the period start minus one step.
with params as (
    select * from run_parameters
),

grains as (
    select * from (values ('month', interval 1 month), ('quarter', interval 3 month))
        as g (period_type, step)
),

activity as (
    select distinct g.period_type, e.account_id,
        date_trunc(g.period_type, e.occurred_at)::date as period_start
    from int_journey_events as e
    cross join grains as g
),

first_active as (
    select period_type, account_id, min(period_start) as first_period
    from activity
    group by period_type, account_id
),

active as (  -- an active period: new, returning or resurrecting
    select
        a.period_type,
        a.period_start,
        case
            when prev.account_id is not null then 'returning'
            when a.period_start = f.first_period then 'new'
            else 'resurrecting'
        end as status
    from activity as a
    inner join grains as g on a.period_type = g.period_type
    inner join first_active as f
        on a.period_type = f.period_type and a.account_id = f.account_id
    left join activity as prev
        on a.period_type = prev.period_type and a.account_id = prev.account_id
        and prev.period_start = (a.period_start - g.step)::date
),

dormant as (  -- the period after an active one, without activity, up to the as-of
    select a.period_type, (a.period_start + g.step)::date as period_start,
        'dormant' as status
    from activity as a
    inner join grains as g on a.period_type = g.period_type
    cross join params as p
    left join activity as next_
        on a.period_type = next_.period_type and a.account_id = next_.account_id
        and next_.period_start = (a.period_start + g.step)::date
    where next_.account_id is null
        and (a.period_start + g.step)::date <= date_trunc(a.period_type, p.as_of)::date
),

final as (
    select period_type, period_start, status, count(*) as accounts
    from (select * from active union all select * from dormant)
    group by all
)

select * from final
order by period_type, period_start, status
