-- materialized: view
-- Grain: one row per evaluation or decision touchpoint of an account whose engagement
-- ended: the signals a renewal cycle between engagements is read from.
select account_id, occurred_at, activity, stage
from int_journey_events
where stage in ('evaluation', 'decision')
    and account_id in (select account_id from engagements where ended_at is not null)
order by account_id, event_order
