-- Grain: one row per period (month and quarter) x lifecycle status, for the trend chart.
-- An account is active in a period when it has a touchpoint of its own there (a
-- mining event: staged or negative). Statuses, as growth accounting defines them:
--   new           active, and this is its first active period
--   returning     active now and in the previous period
--   resurrecting  active now, not in the previous period, but active before
--   dormant       active in the previous period, not now
with params as (
    select * from run_parameters
),

grains as (
    select unnest(['month', 'quarter']) as period_type
),

activity as (
    select distinct g.period_type, e.account_id,
        date_trunc(g.period_type, e.occurred_at)::date as period_start
    from int_journey_events as e
    cross join grains as g
),

bounds as (
    select period_type, min(period_start) as first_period
    from activity
    group by period_type
),

periods as (
    select
        b.period_type,
        unnest(generate_series(
            b.first_period,
            date_trunc(b.period_type, p.as_of)::date,
            case b.period_type when 'month' then interval 1 month else interval 3 month end
        ))::date as period_start
    from bounds as b
    cross join params as p
),

first_active as (
    select period_type, account_id, min(period_start) as first_period
    from activity
    group by period_type, account_id
),

grid as (
    select
        p.period_type,
        p.period_start,
        f.account_id,
        f.first_period,
        lag(p.period_start) over (
            partition by p.period_type, f.account_id order by p.period_start
        ) as previous_period
    from periods as p
    inner join first_active as f
        on p.period_type = f.period_type and p.period_start >= f.first_period
),

statuses as (
    select
        g.period_type,
        g.period_start,
        g.account_id,
        now_.account_id is not null as active_now,
        prev.account_id is not null as active_before
    from grid as g
    left join activity as now_
        on g.period_type = now_.period_type and g.account_id = now_.account_id
        and g.period_start = now_.period_start
    left join activity as prev
        on g.period_type = prev.period_type and g.account_id = prev.account_id
        and g.previous_period = prev.period_start
),

classified as (
    select
        period_type,
        period_start,
        case
            when active_now and not active_before and period_start = (
                select f.first_period from first_active as f
                where f.period_type = statuses.period_type
                    and f.account_id = statuses.account_id
            ) then 'new'
            when active_now and active_before then 'returning'
            when active_now then 'resurrecting'
            when active_before then 'dormant'
        end as status
    from statuses
),

final as (
    select period_type, period_start, status, count(*) as accounts
    from classified
    where status is not null
    group by all
)

select * from final
order by period_type, period_start, status
