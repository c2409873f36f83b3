-- This build's headline numbers, one row, appended to kpi_history (one row per build)
-- so a scheduled run or a backfill at another as-of adds a point to the trend: the
-- journey KPIs, how many reached each prospect stage and client (stage_funnel), and the
-- last load's rows. What the SQL cannot read is bound: $failed_checks (data tests that
-- failed), $run_issues (optional analyses that failed), $churn_status and
-- $churn_roc_auc (the latest churn model run, empty without one; typed, so that a
-- warehouse with no churn model yet exports a text and a number column, not nulls).
WITH kpis AS (SELECT * FROM journey_kpis),
funnel AS (
    SELECT max(reached) FILTER (WHERE stage = 'awareness') AS reached_awareness,
           max(reached) FILTER (WHERE stage = 'consideration') AS reached_consideration,
           max(reached) FILTER (WHERE stage = 'evaluation') AS reached_evaluation,
           max(reached) FILTER (WHERE stage = 'decision') AS reached_decision,
           max(reached) FILTER (WHERE stage = 'client') AS reached_client
    FROM stage_funnel
),
load AS (
    SELECT max(load_id) AS last_load_id,
           arg_max(rows_rejected, load_id) AS last_load_rows_rejected,
           arg_max(rows_read, load_id) AS last_load_rows_read
    FROM loads
)
SELECT now()::TIMESTAMP AS built_at, k.as_of, k.accounts, k.touchpoints, k.resolved_share,
       f.*, f.reached_client / nullif(f.reached_awareness, 0) AS prospect_to_client_rate,
       k.dropped_accounts, k.re_engagement_rate, l.*,
       $failed_checks AS failed_data_tests, $run_issues AS run_issues,
       $churn_status::VARCHAR AS churn_status, $churn_roc_auc::DOUBLE AS churn_roc_auc
FROM kpis k, funnel f, load l
