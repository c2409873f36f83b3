"""Conversion drivers: which touchpoints and buying roles go with moving on, per stage step.

For each step of the funnel (awareness -> consideration, ..., decision -> client)
the population is the accounts that entered the stage (inferred states,
`account_stage_history`). An account converted if it later entered a further
stage. Its touchpoints count only *before* the step: up to the moment it moved
on, or up to the as-of date if it has not; activities that signal the next
stage or a later one are left out (they are the step, not a lever). A buying
role counts when a contact with that role had a touchpoint in the same window.

Each candidate driver gets a logistic regression of conversion on the driver and
the log of days in the stage (an account that has sat in a stage longer has had
more time both to convert and to collect touchpoints), so the odds ratio is
controlled for time in stage. Intervals are Wald 95 %; p-values are corrected
for false discoveries across every test of the run (Benjamini-Hochberg), so a
list of thirty candidates does not turn up a lucky one.

This is association, not cause: the report says so next to the table.
"""

from __future__ import annotations

import math
from itertools import pairwise

import duckdb
import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import norm

from journey_mining.sql_models import read_sql
from journey_mining.stages import LADDER, PROSPECT_STAGES

__all__ = ["DRIVER_COLUMNS", "FUNNEL_STEPS", "benjamini_hochberg", "conversion_drivers",
           "driver_frame", "odds_ratio"]

# Each prospect stage and the stage after it on the ladder (neighbours by name).
FUNNEL_STEPS = tuple((stage, after) for stage, after in pairwise(LADDER)
                     if stage in PROSPECT_STAGES)
MIN_GROUP = 10  # accounts with and without a driver, at least, to test it

DRIVER_COLUMNS = ["step", "from_stage", "to_stage", "driver", "kind", "accounts",
                  "accounts_with", "conversion_with", "conversion_without", "odds_ratio",
                  "ci_low", "ci_high", "p_value", "q_value", "significant", "direction"]


def driver_frame(con: duckdb.DuckDBPyConnection, from_stage: str, to_stage: str
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For one step: the accounts (converted, days in stage) and, per driver (touchpoints
    and roles before the step only), the rows of `windows` of the accounts that had it."""
    windows = con.execute(read_sql("analysis/drivers_windows"), {"from_stage": from_stage}).df()
    con.register("_driver_windows", windows.assign(_row=np.arange(len(windows))))
    try:
        pairs = con.execute(read_sql("analysis/drivers_features"), {"to_stage": to_stage}).df()
    finally:
        con.unregister("_driver_windows")
    # a step nobody entered comes back with untyped columns: typed here, not by the data
    days = (pd.to_datetime(windows.window_end) - pd.to_datetime(windows.entered_at)
            ).dt.total_seconds() / 86400
    windows["days_in_stage"] = days.clip(lower=0)
    return windows, pairs


def odds_ratio(x: np.ndarray, y: np.ndarray, days: np.ndarray) -> tuple[float, float, float]:
    """Logistic regression of y on x and log(1 + days): (log odds ratio of x, its standard
    error, two-sided p-value). Newton steps with a tiny ridge, so a quasi-separated
    driver gives a large but finite estimate with a wide interval; each step is halved
    until the penalised likelihood does not fall, so a first step that overshoots (seen
    on 56 windows where the plain Newton step ran to a log odds ratio of 280,000 and the
    drivers step failed) comes back instead of running away."""
    design = np.column_stack([np.ones(len(x)), x, np.log1p(days)])
    beta = np.zeros(3)
    ridge = 1e-4 * np.eye(3)

    def penalised(b: np.ndarray) -> float:
        eta = design @ b
        return float(np.sum(y * eta - np.logaddexp(0, eta)) - 0.5 * b @ ridge @ b)

    for _ in range(100):
        p = expit(design @ beta)
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + ridge
        step = np.linalg.solve(hessian, design.T @ (y - p) - ridge @ beta)
        before, size = penalised(beta), 1.0
        while penalised(beta + size * step) < before - 1e-12 and size > 1e-10:
            size /= 2
        beta = beta + size * step
        if np.max(np.abs(size * step)) < 1e-8:
            break
    p = expit(design @ beta)
    hessian = design.T @ (design * (p * (1 - p))[:, None]) + ridge
    se = float(math.sqrt(max(np.linalg.inv(hessian)[1, 1], 0)))
    z = beta[1] / se if se > 0 else 0.0
    return float(beta[1]), se, float(2 * norm.sf(abs(z)))


def _odds(log_odds: float) -> float:
    """exp, infinite past what a float holds (a separated driver's upper bound)."""
    return math.exp(log_odds) if log_odds < 709 else math.inf


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """q-values: the false discovery rate at which each test would be called significant."""
    p = np.asarray(p_values, dtype=float)
    if not len(p):
        return p
    order = np.argsort(p)
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    out = np.empty_like(q)
    out[order] = q
    # Never below its p-value: m * p / rank rounds to one ulp under p for the last rank.
    return np.maximum(out, p)


def conversion_drivers(con: duckdb.DuckDBPyConnection, fdr: float = 0.05,
                       min_group: int = MIN_GROUP) -> pd.DataFrame:
    """`conversion_drivers`: one row per (step, driver) tested, with the odds ratio of
    converting with vs without it (controlled for time in stage), its 95 % interval,
    p and Benjamini-Hochberg q across all rows; `significant` when q < `fdr`."""
    rows = []
    for from_stage, to_stage in FUNNEL_STEPS:
        windows, pairs = driver_frame(con, from_stage, to_stage)
        if len(windows) < 2 * min_group or windows.converted.nunique() < 2:
            continue
        y = windows.converted.to_numpy(dtype=float)
        days = windows.days_in_stage.to_numpy(dtype=float)
        for driver, kind, accounts in pairs.itertuples(index=False):
            x = np.zeros(len(windows))
            x[np.asarray(accounts, dtype=np.int64)] = 1
            n_with = int(x.sum())
            if n_with < min_group or len(x) - n_with < min_group:
                continue
            log_or, se, p = odds_ratio(x, y, days)
            rows.append({
                "step": f"{from_stage} -> {to_stage}", "from_stage": from_stage,
                "to_stage": to_stage, "driver": driver, "kind": kind, "accounts": len(x),
                "accounts_with": n_with, "conversion_with": float(y[x == 1].mean()),
                "conversion_without": float(y[x == 0].mean()),
                "odds_ratio": _odds(log_or),
                "ci_low": _odds(log_or - 1.96 * se), "ci_high": _odds(log_or + 1.96 * se),
                "p_value": p})
    frame = pd.DataFrame(rows, columns=DRIVER_COLUMNS[:-3])
    frame["q_value"] = benjamini_hochberg(frame.p_value.to_numpy())
    frame["significant"] = frame.q_value < fdr
    frame["direction"] = np.where(~frame.significant, "unclear",
                                  np.where(frame.odds_ratio > 1, "raises", "lowers"))
    order = {f"{a} -> {b}": i for i, (a, b) in enumerate(FUNNEL_STEPS)}
    return (frame.assign(_o=frame.step.map(order))
            .sort_values(["_o", "significant", "odds_ratio"], ascending=[True, False, False])
            .drop(columns="_o").reset_index(drop=True)[DRIVER_COLUMNS])
