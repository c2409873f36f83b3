-- An event log from any event table (a pm4py DataFrame, say), read as the view source
-- with its case, activity and timestamp columns renamed _case, _activity, _timestamp
-- and its row order in _row. One row per event: case_id, activity, timestamp,
-- event_index (1.. within the case; ties in time keep the row order, as pm4py does) and
-- the directly-following event of the case (next_activity, hours_to_next), the columns
-- event_log.sql gives the built journeys' logs.
SELECT _case::VARCHAR AS case_id, _activity::VARCHAR AS activity,
       _timestamp AS timestamp,
       row_number() OVER by_case::INTEGER AS event_index,
       lead(_activity::VARCHAR) OVER by_case AS next_activity,
       (epoch(lead(_timestamp) OVER by_case) - epoch(_timestamp)) / 3600.0 AS hours_to_next
FROM source
WINDOW by_case AS (PARTITION BY _case ORDER BY _timestamp, _row)
