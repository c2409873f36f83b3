-- Grain: one row per (stage, channel): touchpoints of the journeys that signal the
-- stage, by channel, and their share of the stage's touchpoints. Ladder order.
with events as (
    select * from int_journey_events
    where stage is not null
),

counts as (
    select stage, channel, count(*) as touchpoints
    from events
    group by stage, channel
),

final as (
    select
        c.stage,
        l.stage_order,
        c.channel,
        c.touchpoints,
        c.touchpoints / sum(c.touchpoints) over (partition by c.stage) as share
    from counts as c
    inner join stage_ladder as l on c.stage = l.stage
)

select * from final
order by stage_order, channel
