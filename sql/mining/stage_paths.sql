-- Each account's stage path: one row per case of a stage-level event log (read as the
-- view event_log), its stages in event order joined by ' > ' (variant, the trace the
-- ladder replay scores) and how many stage steps it has. journey_conformance's rows.
SELECT case_id AS account_id, string_agg(activity, ' > ' ORDER BY event_index) AS variant,
       count(*)::INTEGER AS n_stage_steps
FROM event_log
GROUP BY case_id
