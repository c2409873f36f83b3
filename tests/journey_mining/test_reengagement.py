"""Re-engagement: gaps, the Kaplan-Meier curve on hand-built engagements, and lift."""

from __future__ import annotations

import pytest

from journey_mining import reengagement
from tests.journeys_fixture import built_journeys


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    con = built_journeys(tmp_path_factory.mktemp("j"))
    yield con
    con.close()


def test_gaps_after_each_ended_engagement(built):
    # A05#1 ended 2024-04-01 10:00 and came back 2024-06-01 10:00 (61 days); the rest are
    # still out at the as-of date 2025-06-30 00:00, censored.
    rows = built.execute(
        "SELECT account_id, engagement_no, returned, round(gap_days, 3) FROM reengagement_gaps "
        "ORDER BY 1, 2").fetchall()
    assert rows == [("A05", 1, True, 61.0), ("A05", 2, False, 301.583),
                    ("A06", 1, False, 424.583), ("A09", 1, False, 332.583)]


def test_kaplan_meier_curve_of_time_to_return(built):
    curves = reengagement.reengagement_curves(built)
    overall = curves[curves.segment_type == "all"]
    assert overall.time_days.round(3).tolist() == [61.0, 301.583, 332.583, 424.583]
    assert overall.at_risk.tolist() == [4, 3, 2, 1]
    assert overall.returned_share.tolist() == pytest.approx([0.25, 0.25, 0.25, 0.25])
    summary = reengagement.reengagement_summary(built, curves)
    assert summary.set_index("segment_type").loc["all", "median_days_to_return"] is None


def test_risk_ratio_and_interval_by_hand():
    # 6 of 12 gaps with the touchpoint came back, 10 of 50 without: 0.5 / 0.2 = 2.5.
    # se = sqrt(1/6 - 1/12 + 1/10 - 1/50) = 0.40415; exp(1.96 * se) = 2.2081.
    ratio, low, high = reengagement._risk_ratio(6, 6, 10, 40)
    assert ratio == pytest.approx(2.5)
    assert low == pytest.approx(2.5 / 2.2081, abs=1e-3)
    assert high == pytest.approx(2.5 * 2.2081, abs=1e-3)


def test_lift_reports_only_touchpoints_with_enough_support(sample_con):
    lift = reengagement.gap_touchpoint_lift(sample_con, min_support=5)
    assert (lift.gaps_with >= 5).all() and len(lift) > 3
    assert (lift.lift_ci_low <= lift.lift).all() and (lift.lift <= lift.lift_ci_high).all()


def test_lifecycle_counts_each_active_account_once_per_period(sample_con):
    mismatches = sample_con.execute("""
        WITH active AS (
            SELECT date_trunc('month', occurred_at)::date AS period_start,
                   count(DISTINCT account_id) AS n
            FROM int_journey_events GROUP BY 1)
        SELECT count(*) FROM active a
        JOIN (SELECT period_start, sum(accounts) AS n FROM lifecycle_periods
              WHERE period_type = 'month' AND status <> 'dormant' GROUP BY 1) l
        USING (period_start) WHERE a.n <> l.n""").fetchall()[0][0]
    assert mismatches == 0
