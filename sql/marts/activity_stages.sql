-- Grain: one row per activity of the journeys: the stage it signals (empty for
-- activities with no stage) and how many touchpoints it has. Places the activities
-- of the touchpoint map in ladder columns.
with events as (
    select * from int_journey_events
),

final as (
    select
        activity,
        any_value(stage) as stage,
        any_value(stage_order) as stage_order,
        count(*) as touchpoints
    from events
    group by activity
)

select * from final
order by stage_order nulls first, touchpoints desc, activity
