"""BG/NBD (Fader, Hardie & Lee 2005): the fit recovers the paper's CDNOW estimates from a
log generated with them, and its predictions match what that log did next."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from journey_mining.purchase_model import BetaGeoModel, purchase_summary

# FHL 2005, table 1 (CDNOW, weeks): r, alpha, a, b.
PAPER = (0.243, 4.414, 0.793, 2.426)


def simulate(n: int, seed: int, calibration: float = 39.0, holdout: float = 39.0):
    """Customers with first purchases spread over the first 12 weeks (as in CDNOW), their
    repeat purchases in the calibration period and in the holdout after it."""
    r, alpha, a, b = PAPER
    rng = np.random.default_rng(seed)
    rows = []
    for customer in range(n):
        lam, p = rng.gamma(r, 1 / alpha), rng.beta(a, b)
        first = rng.uniform(0, 12)
        t, times = first, []
        while True:
            t += rng.exponential(1 / lam)
            if t > calibration + holdout:
                break
            times.append(t)
            if rng.random() < p:
                break
        calib = [s for s in times if s <= calibration]
        rows.append({"x": len(calib), "t_x": (calib[-1] - first) if calib else 0.0,
                     "age": calibration - first,
                     "holdout": sum(calibration < s <= calibration + holdout for s in times)})
        del customer
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def fitted():
    log = simulate(20000, seed=2005)
    return log, BetaGeoModel().fit(log.x, log.t_x, log.age)


def test_the_fit_recovers_the_papers_parameters(fitted):
    # 20,000 customers: the purchase rate's r and alpha come back within 5 %; a and b (the
    # dropout's beta) are the loosely identified pair, within 15 %, their mean a / (a + b)
    # (the average dropout probability, 0.246) within 10 %.
    _, model = fitted
    r, alpha, a, b = model.params_
    assert r == pytest.approx(PAPER[0], rel=0.05)
    assert alpha == pytest.approx(PAPER[1], rel=0.05)
    assert a == pytest.approx(PAPER[2], rel=0.15)
    assert b == pytest.approx(PAPER[3], rel=0.15)
    assert a / (a + b) == pytest.approx(PAPER[2] / (PAPER[2] + PAPER[3]), rel=0.10)


def test_the_fit_is_a_maximum(fitted):
    from journey_mining.purchase_model import _log_likelihood

    log, model = fitted

    at_truth = _log_likelihood(np.array(PAPER), log.x.to_numpy(), log.t_x.to_numpy(),
                               log.age.to_numpy()).sum()
    assert model.log_likelihood_ >= at_truth - 1e-6


def test_expected_purchases_match_the_holdout(fitted):
    log, model = fitted
    expected = model.expected_purchases(39, log.x, log.t_x, log.age)
    assert expected.sum() == pytest.approx(log.holdout.sum(), rel=0.1)
    # and by calibration frequency, as the paper's figure 4
    for x in (0, 1, 2):
        group = log.x == x
        assert expected[group].mean() == pytest.approx(log.holdout[group].mean(), rel=0.2), x


def test_no_purchase_probability_is_calibrated_and_ranks(fitted):
    from sklearn.metrics import roc_auc_score

    log, model = fitted
    p = model.p_no_purchase(39, log.x, log.t_x, log.age)
    quiet = (log.holdout == 0).to_numpy()
    assert p.mean() == pytest.approx(quiet.mean(), abs=0.03)
    assert roc_auc_score(quiet, p) > 0.7


def test_p_alive_by_hand():
    model = BetaGeoModel()
    model.params_ = np.array(PAPER)
    r, alpha, a, b = PAPER
    # x = 2 repeat purchases, the last at week 30, observed for 35 weeks (eq. 11)
    want = 1 / (1 + a / (b + 2 - 1) * ((alpha + 35) / (alpha + 30)) ** (r + 2))
    assert model.p_alive(2, 30, 35) == pytest.approx(want)
    assert model.p_alive(0, 0, 35) == 1.0


def test_the_summary_counts_days_after_the_first_purchase():
    purchases = pd.DataFrame({
        "account_id": ["c1", "c1", "c1", "c1", "c2"],
        "purchased_at": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 17:00",
                                        "2024-01-15 00:00", "2024-02-12 00:00",
                                        "2024-02-01 00:00"]),
    })
    summary = purchase_summary(purchases, pd.Timestamp("2024-03-04"))
    assert summary.loc["c1"].tolist() == [2, 6, 9]      # two repeat days, weeks 6 and 9
    assert summary.loc["c2"].tolist() == [0, 0, 32 / 7]


def _log_frame(log: dict[str, list[float]], keep) -> pd.DataFrame:
    day0 = pd.Timestamp("2023-01-01")
    rows = [(a, d) for a, days in log.items() for i, d in enumerate(days) if keep(i, d)]
    return pd.DataFrame({"account_id": [a for a, _ in rows],
                         "purchased_at": [day0 + pd.Timedelta(days=d) for _, d in rows]})


def test_backtest_probabilities_are_recalibrated_where_the_model_is_wrong():
    """BG/NBD assumes buying rates do not change with the calendar. Where half the repeat
    purchases stop after week 50 it understates churn at every later date; the cross-fitted
    calibration on the backtest brings the mean back to the observed rate and lowers the
    Brier score, and on a log the model fits it changes (almost) nothing."""
    from sklearn.metrics import brier_score_loss

    from journey_mining.churn import _purchase_backtest
    from tests.journey_mining.test_engagement_rules import bgnbd_purchase_days

    rng = np.random.default_rng(5)
    log = bgnbd_purchase_days(1200, seed=23, weeks=104)
    dates = [pd.Timestamp("2023-01-01") + pd.Timedelta(days=d) for d in (400, 440, 480, 520)]
    declining = _purchase_backtest(
        _log_frame(log, lambda i, d: i == 0 or d < 350 or rng.random() > 0.5), dates, 90)
    observed = declining.label.mean()
    assert observed - declining.bgnbd_raw.mean() > 0.02  # the model's miss
    assert abs(declining.bgnbd.mean() - observed) < 0.01
    assert (brier_score_loss(declining.label, declining.bgnbd)
            < brier_score_loss(declining.label, declining.bgnbd_raw))
    steady = _purchase_backtest(_log_frame(log, lambda i, d: True), dates, 90)
    assert abs(brier_score_loss(steady.label, steady.bgnbd)
               - brier_score_loss(steady.label, steady.bgnbd_raw)) < 0.002
