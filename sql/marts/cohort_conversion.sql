-- Grain: one row per month of first touch (the cohort). The shares of the cohort's
-- accounts whose furthest stage reached evaluation, decision and client (the funnel's
-- reached(s), by cohort). Stages are joined by name from stage_ladder, never by number.
with journeys as (
    select * from account_journeys
    where furthest_stage_order is not null
),

marks as (
    select
        max(stage_order) filter (where stage = 'evaluation') as evaluation,
        max(stage_order) filter (where stage = 'decision') as decision
    from stage_ladder
),

final as (
    select
        date_trunc('month', j.first_touch_at)::date as cohort,
        count(*) as accounts,
        avg((j.furthest_stage_order >= m.evaluation)::int) as evaluation,
        avg((j.furthest_stage_order >= m.decision)::int) as decision,
        avg(j.became_client::int) as client,
        count(*) filter (where j.became_client) as clients
    from journeys as j
    cross join marks as m
    group by 1
)

select * from final
order by cohort
