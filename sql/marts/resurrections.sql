-- Grain: one row per resurrection of a prospect: an account not (yet) a client that
-- went quiet for more than dormancy_days and then came back with a touchpoint.
-- Touchpoints are the account's own (mining events: staged or negative signals).
with params as (
    select * from run_parameters
),

events as (
    select account_id, occurred_at, stage, stage_order
    from int_journey_events
),

first_sale as (
    select account_id, min(occurred_at) as won_at
    from int_journey_events
    where activity in (select activity from engagement_rules where role = 'start')
    group by account_id
),

gaps as (
    select
        e.account_id,
        lag(e.occurred_at) over by_time as dormant_from,
        e.occurred_at as resurrected_at,
        lag(e.stage) over by_time as stage_before,
        e.stage as stage_after,
        max(e.stage_order) over (
            partition by e.account_id order by e.occurred_at
            rows between unbounded preceding and 1 preceding
        ) as furthest_order_before
    from events as e
    window by_time as (partition by e.account_id order by e.occurred_at)
),

final as (
    select
        g.account_id,
        g.dormant_from,
        g.resurrected_at,
        (epoch(g.resurrected_at) - epoch(g.dormant_from)) / 86400.0 as dormant_days,
        l.stage as furthest_stage_before,
        g.stage_after
    from gaps as g
    cross join params as p
    left join first_sale as s on g.account_id = s.account_id
    left join stage_ladder as l on g.furthest_order_before = l.stage_order
    where g.dormant_from is not null
        and g.resurrected_at - g.dormant_from > to_days(p.dormancy_days)
        and (s.won_at is null or g.resurrected_at < s.won_at)
)

select * from final
order by account_id, resurrected_at
