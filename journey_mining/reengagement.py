"""Who comes back between engagements, how soon, and after what.

* Kaplan-Meier curves of the time from the end of an engagement to the start of
  the next, with gaps still open at the as-of date censored, overall and by
  segment (industry, size band, buying-committee roles engaged).
* Gap touchpoints: for each kind of touchpoint, the return rate of gaps that had
  it against gaps that did not. `lift` is that risk ratio, with a 95 % interval
  (Katz log method, 0.5 added to every cell when one is empty). A touchpoint
  needs `min_support` gaps before it is reported at all. Association, not cause:
  a sales meeting in the gap mostly *is* the account coming back.
"""

from __future__ import annotations

import math

import duckdb
import pandas as pd

from journey_mining import survival
from journey_mining.sql_models import read_sql

__all__ = [
    "SEGMENTS",
    "analyse_reengagement",
    "gap_touchpoint_lift",
    "reengagement_curves",
    "reengagement_summary",
]

SEGMENTS = ("industry", "size_band", "roles_band")


def reengagement_curves(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """KM curves, overall and per segment value.

    Grain: one row per segment and distinct gap length: segment_type, segment,
    time_days, at_risk, events (returns), censored, returned_share (1 - survival).
    """
    gaps = con.table("reengagement_gaps").df()
    frames = []
    groups = [("all", "all", gaps)] + [
        (column, value, part) for column in SEGMENTS for value, part in gaps.groupby(column)]
    for segment_type, segment, part in groups:
        if part.empty:
            continue
        curve = survival.kaplan_meier(part.gap_days, part.returned)
        frames.append(curve.assign(segment_type=segment_type, segment=str(segment)))
    if not frames:
        return pd.DataFrame(columns=["segment_type", "segment", "time_days", "at_risk", "events",
                                     "censored", "returned_share"])
    curves = pd.concat(frames, ignore_index=True).rename(
        columns={"time": "time_days", "converted": "returned_share"})
    return curves[["segment_type", "segment", "time_days", "at_risk", "events", "censored",
                   "returned_share"]]


def reengagement_summary(con: duckdb.DuckDBPyConnection, curves: pd.DataFrame) -> pd.DataFrame:
    """Per segment: gaps, returns, median days to return (KM) and share back within 180 days."""
    gaps = con.table("reengagement_gaps").df()
    rows = []
    for (segment_type, segment), curve in curves.groupby(["segment_type", "segment"], sort=False):
        part = gaps if segment_type == "all" else gaps[gaps[segment_type].astype(str) == segment]
        within = curve.loc[curve.time_days <= 180, "returned_share"]
        curve = curve.rename(columns={"time_days": "time", "returned_share": "converted"})
        rows.append({
            "segment_type": segment_type, "segment": segment, "gaps": len(part),
            "returned": int(part.returned.sum()),
            "median_days_to_return": survival.time_to_fraction(curve, 0.5),
            "returned_within_180d": float(within.iloc[-1]) if len(within) else 0.0,
        })
    return pd.DataFrame(rows, columns=["segment_type", "segment", "gaps", "returned",
                                       "median_days_to_return", "returned_within_180d"])


def _risk_ratio(a: int, b: int, c: int, d: int) -> tuple[float, float, float]:
    """Risk ratio of (a / (a+b)) over (c / (c+d)) with its 95 % Katz interval."""
    if min(a, b, c, d) == 0:
        a, b, c, d = a + 0.5, b + 0.5, c + 0.5, d + 0.5
    ratio = (a / (a + b)) / (c / (c + d))
    se = math.sqrt(1 / a - 1 / (a + b) + 1 / c - 1 / (c + d))
    return ratio, ratio * math.exp(-1.96 * se), ratio * math.exp(1.96 * se)


def gap_touchpoint_lift(con: duckdb.DuckDBPyConnection, window_days: int = 180,
                        min_support: int = 5) -> pd.DataFrame:
    """Which touchpoints in a gap precede coming back more than staying away.

    Grain: one row per kind of touchpoint (channel:activity) seen in at least
    `min_support` gaps. `defines_return` marks the sales steps and engagement starts
    that are the return itself (kept in the table, left out of the chart).
    """
    counts = con.sql(read_sql("analysis/gap_touchpoints"), params={"window_days": window_days}).df()
    rows = []
    for r in counts.itertuples():
        if r.gaps_with < min_support:
            continue
        a, b = r.returned_with, r.gaps_with - r.returned_with
        c = r.returned - r.returned_with
        d = (r.gaps - r.gaps_with) - c
        if c + d == 0:
            continue  # every gap had it: nothing to compare against
        lift, low, high = _risk_ratio(a, b, c, d)
        rows.append({
            "touchpoint": r.touchpoint, "gaps_with": r.gaps_with, "returned_with": a,
            "return_rate_with": a / r.gaps_with, "return_rate_without": c / (c + d),
            "lift": lift, "lift_ci_low": low, "lift_ci_high": high,
            "significant": low > 1 or high < 1, "defines_return": bool(r.defines_return),
        })
    # Typed even with no row (no gaps yet): an empty table keeps its column types.
    columns = {"touchpoint": "string", "defines_return": "boolean", "gaps_with": "int64",
               "returned_with": "int64", "return_rate_with": "float64",
               "return_rate_without": "float64", "lift": "float64", "lift_ci_low": "float64",
               "lift_ci_high": "float64", "significant": "boolean"}
    return pd.DataFrame(rows, columns=list(columns)).astype(columns).sort_values(
        "lift", ascending=False).reset_index(drop=True)


def analyse_reengagement(con: duckdb.DuckDBPyConnection, window_days: int = 180,
                         min_support: int = 5) -> dict[str, pd.DataFrame]:
    """Curves, per-segment summary and gap-touchpoint lift, stored as tables."""
    from journey_mining.warehouse import store_frame, transaction

    curves = reengagement_curves(con)
    tables = {
        "reengagement_curves": curves,
        "reengagement_summary": reengagement_summary(con, curves),
        "gap_touchpoint_lift": gap_touchpoint_lift(con, window_days, min_support),
    }
    with transaction(con):
        for name, frame in tables.items():
            store_frame(con, name, frame)
    return tables
