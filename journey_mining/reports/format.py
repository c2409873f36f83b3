"""How numbers read in the report: shares, durations, stage labels."""

from __future__ import annotations

import math

import pandas as pd

from journey_mining.stages import LADDER, PROSPECT_STAGES

__all__ = ["FUNNEL", "LABEL", "MIN_COHORT", "duration", "missing", "pct", "points"]

# The funnel chart: the prospect stages and client.
FUNNEL = (*PROSPECT_STAGES, "client")
LABEL = {s: s.replace("_", " ") for s in LADDER}
# Below this many accounts a cohort's or segment's conversion is not shown as a rate.
MIN_COHORT = 10


def missing(x) -> bool:
    """None, NaN or pandas' NA: a number that could not be measured."""
    return x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA


def pct(x) -> str:
    """A share as a percentage with one decimal ('—' when it cannot be measured)."""
    return "—" if missing(x) else f"{x:.1%}"


def points(x) -> str:
    """A difference of two shares, in percentage points ('53.0 points', not '53.0 %':
    88.6 % against 35.6 % is 53 points more, not 53 % more)."""
    return "—" if missing(x) else f"{x * 100:.1f} points"


def duration(hours) -> str:
    """A duration in the unit its size calls for: minutes, hours or days."""
    if missing(hours):
        return "—"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    return f"{hours / 24:.1f} days" if hours >= 24 else f"{hours:.1f} h"
