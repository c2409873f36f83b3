"""Attribution: rule credits checked by hand, the Markov chain's algebra against a
simulation of the same chain, and intervals that say when an effect cannot be told
from zero."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from journey_mining import attribution
from journey_mining.attribution import MarkovChain

T0 = dt.datetime(2025, 1, 1)


def touches(account, converted, values, days_before_end):
    end = T0 + dt.timedelta(days=30)
    return [{"account_id": account, "converted": converted, "path_end": end,
             "occurred_at": end - dt.timedelta(days=d), "value": v}
            for v, d in zip(values, days_before_end, strict=True)]


def test_rule_credits_by_hand():
    frame = pd.DataFrame(touches("a", True, ["web", "email", "crm"], [21, 14, 7])
                         + touches("b", True, ["email"], [1])
                         + touches("c", False, ["web"], [3]))
    matrix, values = attribution.rule_credits(frame)
    assert values == ["crm", "email", "web"]
    got = {(r.account_id, r.rule): (r.crm, r.email, r.web) for r in matrix.itertuples()}
    assert got[("a", "first_touch")] == (0, 0, 1)
    assert got[("a", "last_touch")] == (1, 0, 0)
    assert got[("a", "linear")] == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert got[("a", "position_based")] == pytest.approx((0.4, 0.2, 0.4))
    # half-life 7 days: weights 1/2, 1/4, 1/8 for 7, 14, 21 days before the conversion
    assert got[("a", "time_decay")] == pytest.approx((4 / 7, 2 / 7, 1 / 7))
    assert got[("b", "linear")] == (0, 1, 0)
    assert not any(a == "c" for a, _ in got)  # a non-converter gets no rule credit


def test_markov_removal_effects_by_hand():
    """Paths: 2 x (A > conv), 1 x (A > B > conv), 1 x (B > null). P(conv) = 3/4 ...
    worked out: start->A 3/4, start->B 1/4; A->conv 2/3, A->B 1/3; B->conv 1/2, B->null 1/2.
    P = 3/4 (2/3 + 1/3 * 1/2) + 1/4 * 1/2 = 3/4 * 5/6 + 1/8 = 0.75.
    Without A: 1/4 * 1/2 = 0.125, effect 1 - 0.125/0.75 = 5/6.
    Without B: 3/4 * 2/3 = 0.5, effect 1 - 0.5/0.75 = 1/3."""
    chain = MarkovChain.fit([(("A",), True), (("A", "B"), True), (("B",), False)],
                            [2, 1, 1])
    assert chain.conversion_probability() == pytest.approx(0.75)
    effects = chain.removal_effects(["A", "B"])
    assert effects["A"] == pytest.approx(5 / 6)
    assert effects["B"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("order", [1, 2])
def test_absorbing_chain_algebra_agrees_with_simulating_the_chain(order):
    """Two independent computations of the same fitted chain: algebra and random walks."""
    rng = np.random.default_rng(5)
    values = ["web", "email", "crm", "event"]
    paths = []
    for _ in range(600):
        n = int(rng.integers(1, 6))
        path = tuple(rng.choice(values, n, p=[0.4, 0.3, 0.2, 0.1]))
        converted = bool(rng.random() < 0.15 + 0.2 * ("crm" in path) + 0.1 * ("event" in path))
        paths.append((path, converted))
    chain = MarkovChain.fit(paths, order=order)
    walks = 200_000
    for removed in [None, *values]:
        exact = chain.conversion_probability(removed)
        simulated = chain.simulate(walks, removed, seed=1)
        se = np.sqrt(exact * (1 - exact) / walks)
        assert abs(exact - simulated) < 4 * se + 1e-4, (removed, exact, simulated)


def test_an_effect_that_cannot_be_told_from_zero_is_marked_uncertain(sample_con):
    frame = attribution.attribution(sample_con, goals=("client",), dimensions=("campaign",),
                                    n_boot_rules=50, n_boot_markov=40)
    markov = frame[frame.model == "markov_1"]
    assert len(markov) and markov.uncertain.notna().all()
    assert (markov.uncertain == (markov.removal_ci_low <= 0)).all()
    assert ((markov.ci_low <= markov.share + 1e-12)
            & (markov.share <= markov.ci_high + 1e-12)).all()
    rules = frame[~frame.model.str.startswith("markov")]
    assert rules.groupby("model").share.sum().round(9).eq(1).all()


def test_above_the_cap_a_repeatable_sample_is_analysed_and_the_table_says_so(sample_con):
    full = attribution.attribution(sample_con, goals=("evaluation",), dimensions=("channel",),
                                   n_boot_rules=20, n_boot_markov=10)
    population = int(full.population.iloc[0])
    assert (full.journeys == population).all()  # under the cap: every account
    capped = [attribution.attribution(sample_con, goals=("evaluation",),
                                      dimensions=("channel",), n_boot_rules=20,
                                      n_boot_markov=10, max_journeys=population // 2)
              for _ in range(2)]
    assert (capped[0].journeys == population // 2).all()
    assert (capped[0].population == population).all()
    pd.testing.assert_frame_equal(capped[0], capped[1])  # the same accounts every run
    assert (capped[0].conversions < full.conversions.max()).all()


@pytest.mark.parametrize("order", [1, 2])
def test_removal_effects_by_low_rank_update_match_a_direct_solve_per_removal(order):
    rng = np.random.default_rng(11)
    values = [f"c{i}" for i in range(8)]
    paths = [(tuple(rng.choice(values, int(rng.integers(0, 6)))), bool(rng.random() < 0.3))
             for _ in range(2_000)]
    chain = MarkovChain.fit(paths, order=order)
    effects = chain.removal_effects([*values, "never seen"])
    whole = chain.conversion_probability()
    for v in values:  # conversion_probability(v) solves the changed chain from scratch
        assert effects[v] == pytest.approx(1 - chain.conversion_probability(v) / whole,
                                           abs=1e-10)
    assert effects["never seen"] == 0.0


@pytest.mark.parametrize("order", [1, 2])
def test_chains_fitted_on_paths_built_in_sql_equal_chains_fitted_on_python_paths(
        sample_con, order):
    """The pipeline hands the chain integer-coded paths from SQL; the same journeys as
    Python tuples (`goal_paths`, one per account) must give the same chain."""
    frame = attribution.goal_paths(sample_con, "client", "campaign")
    paths = [(tuple(p.value.dropna()), bool(p.converted.iloc[0]))
             for _, p in frame.groupby("account_id", sort=False)]
    expected = MarkovChain.fit(paths, order=order)
    # goal_paths left the same journeys in the connection's temp table, which the
    # pipeline's path builder reads.
    names, flat, lengths, converted, accounts = attribution._distinct_paths(sample_con)
    assert accounts.sum() == len(paths)
    got = MarkovChain.from_codes(names, flat, lengths, converted, accounts, order)
    assert got.states == expected.states
    np.testing.assert_allclose(got.counts, expected.counts)
    assert got.conversion_probability() == pytest.approx(expected.conversion_probability())
