"""Stage inference scored against latent truth over a grid of generated worlds.

Why a grid: the generator is one possible world. A method tuned on it (a window
length, a dwell time) wins there and loses on journeys written by someone else.
Each grid point changes one thing that makes inference hard - how often accounts
regress, how long stays last, how many touchpoints they leave, how many signals
point to another stage, how many go missing, whether renewals are visible - and
every method is scored at every point, on seeds used for nothing else. The
default method is the one with the best mean exact-path share over the grid
(README "Stage states"; `scripts/stage_scorecard.py` prints the table).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from journey_mining import ingest, stage_inference, warehouse
from journey_mining.build import build, model_parameters
from journey_mining.config import AnalysisParams, StageInferenceConfig
from journey_mining.generator import GeneratorSpec, generate_exports
from journey_mining.sql_models import run_models

__all__ = ["GRID", "GRID_SEEDS", "TEST_SEEDS", "score_world"]

# One base world and one change per point (the last combines the hard ones).
_BASE = GeneratorSpec(n_accounts=600, dirt=False)
GRID: dict[str, GeneratorSpec] = {
    "base": _BASE,
    "many regressions": replace(_BASE, regress=0.45),
    "few regressions": replace(_BASE, regress=0.05),
    "short stays (x0.5)": replace(_BASE, dwell=0.5),
    "long stays (x2)": replace(_BASE, dwell=2.0),
    "few touchpoints (x0.5)": replace(_BASE, touches=0.5),
    "many touchpoints (x2)": replace(_BASE, touches=2.0),
    "off-stage signals 10 %": replace(_BASE, off_stage=0.10),
    "off-stage signals 20 %": replace(_BASE, off_stage=0.20),
    "missing signals 15 %": replace(_BASE, missing=0.15),
    "no skips, none missing": replace(_BASE, skip=0.0, missing=0.0),
    "automatic renewals (70 %)": replace(_BASE, renewal=0.3),
    "hard: all of it": replace(_BASE, regress=0.45, dwell=0.5, off_stage=0.15, missing=0.15,
                               skip=0.0),
}
# Seeds that chose nothing: the sample is 7, the window length was chosen on 1 and 2,
# the evidence method was designed looking at 101 and 102, the tests use 301 and 302.
GRID_SEEDS = (201, 202)
TEST_SEEDS = (301, 302)


def _history_of(con, method: str) -> pd.DataFrame:
    """account_stage_history as `method` infers it: the states layer rebuilt on the built
    warehouse with that method (the layers below it do not depend on the method)."""
    params = AnalysisParams(stage_inference=StageInferenceConfig(method=method))
    run_models(con, model_parameters(params), layers=("states",), context=params)
    return con.execute("SELECT * FROM account_stage_history").df()


def score_world(spec: GeneratorSpec, methods=stage_inference.METHODS) -> dict[str, dict]:
    """Generate one world, build it, and score each method's paths against its truth.

    Returns method -> scorecard (stage_inference.scorecard) plus 'seconds'.
    """
    with tempfile.TemporaryDirectory() as tmp:
        generate_exports(Path(tmp), spec)
        truth = stage_inference.stage_paths(pd.read_csv(
            Path(tmp) / "truth" / "stage_paths.csv", parse_dates=["entered_at"]))
        con = warehouse.connect()
        try:
            ingest.load_exports(con, tmp)
            build(con, AnalysisParams())
            cards = {}
            for method in methods:
                started = time.perf_counter()
                history = _history_of(con, method)
                card = stage_inference.scorecard(stage_inference.stage_paths(history), truth)
                card["seconds"] = time.perf_counter() - started
                cards[method] = card
            return cards
        finally:
            con.close()
