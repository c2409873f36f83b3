-- Time in each stage until moving on: one row per (account, stage it entered) of a
-- stage-level event log (read as the view event_log), from its first entry into the
-- stage to its first entry into any later stage of stage_ladder at or after that time
-- (converted), or to the as-of date (censored: converted false). stage_timing fits
-- Kaplan-Meier curves on these.
WITH entries AS (
    SELECT e.case_id AS account_id, l.stage_order, min(e.timestamp) AS entered_at
    FROM event_log e JOIN stage_ladder l ON l.stage = e.activity
    GROUP BY ALL
),
pairs AS (
    SELECT a.account_id, a.stage_order, a.entered_at,
           min(b.entered_at) FILTER (WHERE b.stage_order > a.stage_order
                                       AND b.entered_at >= a.entered_at) AS next_at
    FROM entries a LEFT JOIN entries b USING (account_id)
    GROUP BY ALL
)
SELECT p.account_id, l.stage, p.stage_order,
       (epoch(coalesce(p.next_at, r.as_of)) - epoch(p.entered_at)) / 86400.0 AS days,
       p.next_at IS NOT NULL AS converted
FROM pairs p JOIN stage_ladder l USING (stage_order), run_parameters r
