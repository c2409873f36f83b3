-- Grain: one row per ladder stage (contract section 3).
-- reached(s): accounts whose furthest stage is s or later.
-- conversion_to_next(s) = reached(next stage) / reached(s), for awareness .. decision.
-- dropped: accounts that dropped at s. ever_in_stage: accounts with any touchpoint
-- signalling s. currently_in_stage: accounts whose current stage is s (their current
-- stay in account_stage_history; dormant ones included, as in stage_occupancy).
with ladder as (
    select * from stage_ladder
),

journeys as (
    select * from account_journeys
),

touchpoints as (
    select t.account_id, t.stage
    from int_touchpoints_staged as t, run_parameters as p
    where t.account_id is not null and t.stage is not null and t.occurred_at <= p.as_of
),

reached as (
    select
        l.stage,
        l.stage_order,
        l.phase,
        count(j.account_id) as reached
    from ladder as l
    left join journeys as j on j.furthest_stage_order >= l.stage_order
    group by l.stage, l.stage_order, l.phase
),

dropped as (
    select dropped_at_stage as stage, count(*) as dropped
    from journeys
    where dropped
    group by dropped_at_stage
),

current_ as (
    select current_stage as stage, count(*) as currently_in_stage
    from journeys
    where current_stage is not null
    group by current_stage
),

ever as (
    select stage, count(distinct account_id) as ever_in_stage
    from touchpoints
    group by stage
),

final as (
    select
        r.stage,
        r.stage_order,
        r.phase,
        r.reached,
        case
            when r.phase = 'prospect' and r.reached > 0
                then (lead(r.reached) over (order by r.stage_order)) / r.reached
        end as conversion_to_next,
        coalesce(d.dropped, 0) as dropped,
        coalesce(e.ever_in_stage, 0) as ever_in_stage,
        coalesce(c.currently_in_stage, 0) as currently_in_stage
    from reached as r
    left join dropped as d on r.stage = d.stage
    left join ever as e on r.stage = e.stage
    left join current_ as c on r.stage = c.stage
)

select * from final
order by stage_order
