"""Conversion drivers: the statistics by hand, and on generated journeys the drivers the
generator really uses are found (seeds 3 and 4, not the committed sample's)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from journey_mining import drivers, steps
from journey_mining.config import Config
from journey_mining.generator import DRIVERS, GeneratorSpec, generate_exports


def test_odds_ratio_is_the_two_by_two_one_when_time_does_not_differ():
    # 30 of 40 with the driver moved on, 20 of 60 without: odds ratio (30*40)/(10*20) = 6
    x = np.r_[np.ones(40), np.zeros(60)]
    y = np.r_[np.ones(30), np.zeros(10), np.ones(20), np.zeros(40)]
    log_or, se, p = drivers.odds_ratio(x, y, np.full(100, 30.0))
    assert math.exp(log_or) == pytest.approx(6.0, rel=1e-3)
    assert se == pytest.approx(math.sqrt(1 / 30 + 1 / 10 + 1 / 20 + 1 / 40), rel=1e-3)
    assert p < 1e-4


def test_a_fit_that_overshoots_comes_back_finite_and_unclear():
    # 56 windows of a generated world (120 accounts, seed 11) where the plain Newton step
    # ran to a log odds ratio of 280,000 (p = 0) and the drivers step then failed with
    # "math range error": the driver is 68 % vs 40 %, the days overlap.
    x = np.array([int(c) for c in "01111111111011000001111101100111001111111111111111100011"])
    y = np.array([int(c) for c in "11101111110010100101110111110111100101001110111011000000"])
    days = np.array([
        1.2, 58.7, 69.3, 684.8, 28.8, 19.9, 4.0, 24.1, 133.3, 28.3, 673.8, 570.9, 132.8,
        279.8, 16.8, 92.0, 381.8, 5.1, 235.1, 35.0, 9.0, 183.7, 199.1, 3.7, 18.2, 19.2, 13.2,
        1.9, 644.0, 5.8, 7.1, 45.2, 1.6, 702.8, 784.9, 100.2, 381.1, 7.7, 678.9, 754.8, 186.0,
        15.9, 13.1, 267.9, 29.1, 15.9, 122.2, 503.9, 8.0, 12.0, 210.8, 523.9, 425.7, 229.1,
        301.1, 520.0])
    log_or, se, p = drivers.odds_ratio(x.astype(float), y.astype(float), days)
    assert math.isfinite(math.exp(log_or + 1.96 * se))
    assert p > 0.05  # quasi-separated by time in stage: wide, not a finding


def test_benjamini_hochberg_by_hand():
    # ranked: 0.01*4/1 = 0.04, 0.03*4/2 = 0.06, 0.04*4/3 = 0.0533, 0.20*4/4 = 0.20;
    # step-up (a q is never above the next rank's): 0.04, 0.0533, 0.0533, 0.20
    q = drivers.benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.20]))
    assert q.tolist() == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.20])


@pytest.fixture(scope="module", params=[3, 4])
def generated(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"drivers{request.param}")
    generate_exports(folder / "in", GeneratorSpec(n_accounts=1500, seed=request.param))
    steps.run_all(folder / "w.duckdb", folder / "in", Config(), steps=["load", "build"])
    from journey_mining import warehouse

    con = warehouse.connect(folder / "w.duckdb", read_only=True)
    yield drivers.conversion_drivers(con)
    con.close()


def test_the_generators_real_drivers_are_found(generated):
    found = generated.set_index(["step", "driver"])
    assert DRIVERS["webinar_attended"]["with"] < DRIVERS["webinar_attended"]["without"]
    webinar = found.loc[("consideration -> evaluation", "web:webinar_attended")]
    decider = found.loc[("decision -> client", "role:decider")]
    for row in (webinar, decider):
        assert row.significant and row.direction == "raises" and row.ci_low > 1


def test_no_driver_uses_what_happened_after_the_step(generated):
    """Activities that signal the next stage or a later one are the step itself."""
    step = generated[generated.step == "evaluation -> decision"]
    assert not step.driver.isin(["crm:proposal_sent", "crm:negotiation", "crm:deal_won"]).any()
    client = generated[generated.step == "decision -> client"]
    assert not client.driver.isin(["crm:deal_won", "crm:project_started"]).any()
