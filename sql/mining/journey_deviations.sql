-- Deviations from the textbook ladder: one row per account of a stage-level event log
-- (read as the view event_log: case_id, activity = stage, event_index).
-- n_skipped_stages: ladder stages jumped over beyond the furthest stage reached so far
-- (a journey that starts above the first stage skipped those below it); n_back_steps:
-- moves down the ladder, except a move back from after an engagement (a renewal, a new
-- engagement: a return); n_loops: returns to a stage already visited. Stage orders come
-- from stage_ladder, so a return to a lower stage and back is a back-step and a loop,
-- not a skip.
WITH events AS (
    SELECT e.case_id AS account_id, e.event_index, l.stage_order, l.stage
    FROM event_log e JOIN stage_ladder l ON l.stage = e.activity
),
steps AS (
    SELECT *,
           lag(stage_order) OVER (PARTITION BY account_id ORDER BY event_index) AS prev_order,
           coalesce(lag(stage IN ('between_engagements', 'advocacy', 'former_client'))
                    OVER (PARTITION BY account_id ORDER BY event_index), false) AS prev_after,
           max(stage_order) OVER (PARTITION BY account_id ORDER BY event_index
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_max,
           count(*) OVER (PARTITION BY account_id, stage_order ORDER BY event_index
                          ROWS UNBOUNDED PRECEDING) AS visit_no
    FROM events
),
ladder AS (
    SELECT min(stage_order) AS first_order FROM stage_ladder
)
SELECT
    account_id,
    sum(CASE WHEN prev_order IS NULL THEN stage_order - (SELECT first_order FROM ladder)
             WHEN stage_order > prev_max + 1 THEN stage_order - prev_max - 1
             ELSE 0 END)::INTEGER AS n_skipped_stages,
    count(*) FILTER (WHERE stage_order < prev_order AND NOT prev_after)::INTEGER
        AS n_back_steps,
    count(*) FILTER (WHERE visit_no > 1)::INTEGER AS n_loops
FROM steps
GROUP BY account_id
