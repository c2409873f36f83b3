"""What the report shows, read once from the warehouse.

Every frame is a mart (sql/marts, grain and tests in its .yml) or a table a
library step stored (mining, re-engagement, churn); nothing here defines a
metric. A new number goes into a mart first, then here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pandas as pd

from journey_mining.warehouse import table_exists

__all__ = ["ReportData", "report_data"]


@dataclass
class ReportData:
    """Everything the report shows, read from the warehouse once."""

    kpis: pd.Series
    funnel: pd.DataFrame
    dropped: pd.DataFrame
    stage_transitions: pd.DataFrame | None   # None: the step that writes it did not finish
    activity_transitions: pd.DataFrame | None
    activity_stages: pd.DataFrame
    variants: pd.DataFrame | None
    conformance: pd.Series | None
    cohorts: pd.DataFrame
    segments: pd.DataFrame
    channel_mix: pd.DataFrame
    channel_paths: pd.DataFrame
    stage_timing: pd.DataFrame | None
    occupancy: pd.DataFrame
    curves: pd.DataFrame | None
    gaps: pd.DataFrame
    lifecycle: pd.DataFrame
    lift: pd.DataFrame | None
    churn: pd.DataFrame | None
    model_run: pd.Series | None
    loads: pd.DataFrame
    rejects: pd.DataFrame
    resolution: pd.DataFrame
    advocates: pd.DataFrame
    history: pd.DataFrame | None = None
    tests: pd.DataFrame | None = None
    drivers: pd.DataFrame | None = None
    attribution: pd.DataFrame | None = None
    representatives: pd.DataFrame | None = None
    absent: tuple[str, ...] = ()   # tables of optional steps that are not in the warehouse
    purchases: bool = False  # instant engagements: a purchase log, said in purchase words
    # analysis ("churn", "drivers") -> (fitted at, data up to, fitted by this build?)
    fits: dict = field(default_factory=dict)


def report_data(con: duckdb.DuckDBPyConnection) -> ReportData:
    """Read the marts and analysis tables of the last build (each in its stated order).

    The tables of an optional step (mining, re-engagement, churn, drivers) are None when
    the step did not finish: the report says so where they would be shown.
    """
    absent = []

    def q(sql: str) -> pd.DataFrame:
        return con.sql(sql).df()

    def optional(table: str, sql: str | None = None) -> pd.DataFrame | None:
        if table_exists(con, table):
            return q(sql) if sql else con.table(table).df()
        absent.append(table)
        return None

    runs = optional("model_runs", "SELECT * FROM model_runs ORDER BY trained_at DESC LIMIT 1")
    lift = optional("gap_touchpoint_lift", "SELECT * FROM gap_touchpoint_lift ORDER BY lift DESC")
    if lift is not None:
        # Boolean even when empty, so a mask selects rows (an empty object column would
        # select columns).
        lift["defines_return"] = (lift.defines_return.astype(bool) if "defines_return" in lift
                                  else False)
    conformance = optional("conformance_summary")
    return ReportData(
        kpis=q("SELECT * FROM journey_kpis").iloc[0],
        funnel=q("SELECT * FROM stage_funnel ORDER BY stage_order"),
        dropped=q("SELECT * EXCLUDE (furthest_stage_order) FROM dropped_accounts "
                  "ORDER BY furthest_stage_order DESC, last_touch_at DESC, account_id"),
        stage_transitions=optional("stage_transitions"),
        activity_transitions=optional(
            "activity_transitions", "SELECT * FROM activity_transitions ORDER BY transitions DESC"),
        activity_stages=q("SELECT * FROM activity_stages"),
        variants=optional("path_variants", "SELECT * FROM path_variants WHERE level = 'stage' "
                                           "ORDER BY variant_rank"),
        conformance=conformance.iloc[0] if conformance is not None else None,
        cohorts=q("SELECT * FROM cohort_conversion ORDER BY cohort"),
        segments=q("SELECT * FROM segment_conversion ORDER BY client DESC, industry"),
        channel_mix=q("SELECT * FROM channel_mix ORDER BY stage_order, marketing_channel"),
        channel_paths=q("SELECT * FROM channel_paths ORDER BY dimension, path_rank"),
        stage_timing=optional("stage_timing", "SELECT * FROM stage_timing ORDER BY stage_order"),
        occupancy=q("SELECT * FROM stage_occupancy ORDER BY stage_order"),
        curves=optional("reengagement_curves"),
        gaps=q("SELECT * FROM reengagement_gaps"),
        lifecycle=q("SELECT * FROM lifecycle_periods WHERE period_type = 'month'"),
        lift=lift,
        churn=optional("churn_scores", """SELECT c.*, a.account_name FROM churn_scores c
                   LEFT JOIN stg_crm__accounts a USING (account_id)
                   ORDER BY churn_probability DESC, account_id"""),
        model_run=runs.iloc[0] if runs is not None and len(runs) else None,
        loads=q("SELECT * FROM loads ORDER BY load_id"),
        rejects=q("SELECT * FROM reject_reasons ORDER BY rows DESC, source, reason"),
        resolution=q("SELECT * FROM identity_resolution"),
        advocates=q("SELECT * FROM advocates ORDER BY first_advocacy_at"),
        tests=q("SELECT * FROM data_test_results") if table_exists(con, "data_test_results")
        else None,
        drivers=optional("conversion_drivers"),
        attribution=optional("attribution"),
        representatives=optional("representative_journeys"),
        history=(q("""SELECT * FROM kpi_history
                      QUALIFY row_number() OVER (PARTITION BY as_of ORDER BY built_at DESC) = 1
                      ORDER BY as_of""") if table_exists(con, "kpi_history") else None),
        absent=tuple(absent),
        purchases=bool(q("SELECT instant_engagements FROM run_parameters").iloc[0, 0]),
        fits=({r.analysis: (r.fitted_at, r.data_as_of, r.this_build) for r in q(
                  "SELECT analysis, fitted_at, data_as_of, fitted_at >= (SELECT built_at "
                  "FROM run_parameters) AS this_build FROM model_fits").itertuples()}
              if table_exists(con, "model_fits") else {}),
    )
