-- The journeys' events cut into consecutive ranges of event_order of $batch_events each:
-- the OCEL export writes its events one range at a time in event order. event_order is
-- stored in that order, so a range reads only its own row groups.
with bounds as (
    select min(event_order) as lo, max(event_order) as hi
    from int_journey_events
)

select
    b.first_order,
    least(b.first_order + $batch_events - 1, bounds.hi) as last_order
from bounds, unnest(range(bounds.lo, bounds.hi + 1, $batch_events)) as b(first_order)
order by b.first_order
