-- Deviations from the textbook ladder: one row per account of a stage-level event log
-- (read as the view event_log: case_id, activity = stage, event_index).
-- n_skipped_stages: funnel stages (awareness to client) jumped over beyond the furthest
-- stage reached so far (a journey that starts above the first stage skipped those below
-- it); a cancellation (a move to former client) skips nothing, nor does a move between
-- the stages after a sale, which are no ladder to climb; n_back_steps:
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
    SELECT min(stage_order) AS first_order,
           max(stage_order) FILTER (WHERE stage = 'client') AS client_order
    FROM stage_ladder
)
SELECT
    account_id,
    sum(CASE WHEN stage = 'former_client' THEN 0
             WHEN prev_order IS NULL
                 THEN greatest(least(stage_order - 1, (SELECT client_order FROM ladder))
                               - (SELECT first_order FROM ladder) + 1, 0)
             ELSE greatest(least(stage_order - 1, (SELECT client_order FROM ladder))
                           - prev_max, 0)
             END)::INTEGER AS n_skipped_stages,
    count(*) FILTER (WHERE stage_order < prev_order AND NOT prev_after)::INTEGER
        AS n_back_steps,
    count(*) FILTER (WHERE visit_no > 1)::INTEGER AS n_loops
FROM steps
GROUP BY account_id
