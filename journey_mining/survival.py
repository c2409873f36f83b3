"""Kaplan-Meier estimates for time-to-event questions with censoring.

"How long from entering evaluation to entering decision?" cannot be answered by
averaging the journeys that got there: journeys still open at the as-of date
have not failed to convert, they have not converted *yet*. Kaplan-Meier treats
them as censored: they count as at risk until they leave observation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "kaplan_meier",
    "time_to_fraction",
]


def kaplan_meier(durations, observed) -> pd.DataFrame:
    """Survival curve: one row per distinct event time.

    Columns: time, at_risk, events, censored, survival (probability of no event by
    `time`), converted (1 - survival). Censored subjects at an event time count
    as at risk at that time (the usual convention).
    """
    durations = np.asarray(durations, dtype=float)
    observed = np.asarray(observed, dtype=bool)
    if len(durations) != len(observed):
        raise ValueError("durations and observed differ in length")
    frame = pd.DataFrame({"t": durations, "e": observed})
    grouped = frame.groupby("t").agg(events=("e", "sum"), n=("e", "size")).reset_index()
    grouped["censored"] = grouped["n"] - grouped["events"]
    grouped["at_risk"] = len(frame) - grouped["n"].cumsum().shift(fill_value=0)
    grouped["survival"] = (1 - grouped["events"] / grouped["at_risk"]).cumprod()
    curve = grouped.rename(columns={"t": "time"})[
        ["time", "at_risk", "events", "censored", "survival"]]
    curve["converted"] = 1 - curve["survival"]
    return curve.astype({"at_risk": int, "events": int, "censored": int})


def time_to_fraction(curve: pd.DataFrame, fraction: float) -> float | None:
    """The time by which `fraction` of subjects have had the event (None if never reached).

    fraction 0.5 is the median time to event.
    """
    reached = curve[curve["converted"] >= fraction - 1e-12]
    return None if reached.empty else float(reached["time"].iloc[0])
