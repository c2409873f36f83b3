-- The accounts of the journeys cut into consecutive ranges (in account order) of about
-- $batch_events events each: the exports write one range at a time, so what DuckDB sorts
-- and holds at once is one range's lines, never the whole log (one ORDER BY over every
-- line of 44 M events ran out of memory at memory_limit 8GB, BENCHMARKS.md). A range
-- closes where the running count of events crosses a multiple of $batch_events, so an
-- account with more events than that makes its range larger, never split.
with per_account as (
    select account_id, count(*) as events
    from int_journey_events
    group by account_id
),

running as (
    select
        account_id,
        sum(events) over (order by account_id rows unbounded preceding) as events_so_far
    from per_account
)

select
    min(account_id) as first_account,
    max(account_id) as last_account
from running
group by (events_so_far - 1) // $batch_events
order by first_account
