"""Kaplan-Meier on a case small enough to do by hand."""

from __future__ import annotations

import pytest

from journey_mining.survival import kaplan_meier, time_to_fraction


def test_kaplan_meier_matches_the_hand_computation():
    # times 2, 3+, 4, 4, 6+, 8 (+ = censored). At risk 6, 5, 4, 2, 1.
    curve = kaplan_meier([2, 3, 4, 4, 6, 8], [1, 0, 1, 1, 0, 1])
    assert curve.time.tolist() == [2, 3, 4, 6, 8]
    assert curve.at_risk.tolist() == [6, 5, 4, 2, 1]
    expected = [5 / 6, 5 / 6, 5 / 6 * 2 / 4, 5 / 6 * 2 / 4, 0.0]
    assert curve.survival.tolist() == pytest.approx(expected)


def test_censored_subjects_are_not_counted_as_failures():
    # Averaging only the converters would say 1 day; half never converted in view.
    curve = kaplan_meier([1, 1, 10, 10], [1, 1, 0, 0])
    assert time_to_fraction(curve, 0.5) == 1.0
    assert time_to_fraction(curve, 0.75) is None


def test_lengths_must_match():
    with pytest.raises(ValueError):
        kaplan_meier([1, 2], [1])
