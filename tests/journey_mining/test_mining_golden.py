"""Process mining on the hand-built journeys of tests/journeys_fixture.py.

Stage paths are the inferred stage states (account_stage_history, evidence method:
up on evidence, confirmed by a second visit or withdrawn by lower evidence first; down
on evidence of a lower stage; engagement phases after the sale), worked out from the
fixture by hand:
  A01 awareness > consideration                (one pricing view in January, then a
                                                 webinar registration in March before
                                                 anything confirmed it: withdrawn)
  A02 awareness > consideration            A03, A07 awareness
  A04 evaluation > decision > evaluation > decision > client
  A05 client > between_engagements > client > between_engagements
  A06 client > former_client
  A08 evaluation > decision                    (lost deal, then only a newsletter
                                                 open: nothing says where it went)
  A09 client > between_engagements > advocacy  (a later NPS reply does not move it)
  A11 awareness > consideration > evaluation   (a newsletter open is no step back)
"""

from __future__ import annotations

import pytest

from journey_mining import eventlog, mining
from tests.journeys_fixture import built_journeys


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    con = built_journeys(tmp_path_factory.mktemp("journeys"))
    mining.mine(con)
    yield con
    con.close()


def test_stage_transitions(mined):
    rows = mined.execute(
        "SELECT from_stage, to_stage, transitions, accounts, kind FROM stage_transitions "
        "ORDER BY from_stage, to_stage").fetchall()
    assert rows == [
        ("awareness", "consideration", 3, 3, "ladder"),
        ("between_engagements", "advocacy", 1, 1, "ladder"),
        ("between_engagements", "client", 1, 1, "return"),
        ("client", "between_engagements", 3, 2, "ladder"),
        ("client", "former_client", 1, 1, "cancellation"),
        ("consideration", "evaluation", 1, 1, "ladder"),
        ("decision", "client", 1, 1, "ladder"),
        ("decision", "evaluation", 1, 1, "back_step"),
        ("evaluation", "decision", 3, 2, "ladder"),
    ]


@pytest.mark.parametrize(("move", "kind"), [
    (("client", "former_client"), "cancellation"),        # not a skip of two stages
    (("between_engagements", "former_client"), "cancellation"),
    (("advocacy", "evaluation"), "return"),               # a renewal, not a step back
    (("former_client", "consideration"), "return"),
    (("client", "advocacy"), "ladder"),                   # no funnel stage jumped over
    (("decision", "advocacy"), "skip"),                   # jumps over client
    (("awareness", "evaluation"), "skip"),
    (("decision", "consideration"), "back_step"),
    (("evaluation", "evaluation"), "repeat"),
])
def test_each_move_has_the_kind_a_reader_would_give_it(move, kind):
    assert mining._transition_kind(*move) == kind


def test_transition_times_are_between_stage_entries(mined):
    # awareness -> consideration: A01 120 h, A02 5 min, A11 24 h.
    # evaluation -> decision: A04 27 and 31 days, A08 31 days.
    rows = dict(((a, b), (med, mean)) for a, b, med, mean in mined.execute(
        "SELECT from_stage, to_stage, median_hours, mean_hours FROM stage_transitions").fetchall())
    assert rows[("awareness", "consideration")] == pytest.approx((24.0, (120 + 5 / 60 + 24) / 3))
    assert rows[("evaluation", "decision")] == pytest.approx((744.0, (648 + 744 + 744) / 3))


def test_variants_with_coverage(mined):
    rows = mined.execute(
        "SELECT variant, cases, coverage FROM path_variants WHERE level = 'stage' "
        "ORDER BY variant_rank").fetchall()
    assert rows[:2] == [("awareness", 2, 0.2), ("awareness > consideration", 2, 0.2)]
    assert len(rows) == 8 and sum(r[1] for r in rows) == 10
    assert ("client > between_engagements > advocacy", 1, 0.1) in rows


def test_conformance_deviations(mined):
    rows = mined.execute(
        "SELECT account_id, n_skipped_stages, n_back_steps, n_loops, n_reengagement_cycles, "
        "is_linear, reached_client FROM journey_conformance ORDER BY account_id").fetchall()
    assert rows == [
        ("A01", 0, 0, 0, 0, True, False),
        ("A02", 0, 0, 0, 0, True, False),
        ("A03", 0, 0, 0, 0, True, False),
        ("A04", 2, 1, 2, 0, False, True),   # starts at evaluation: skips 2 stages
        ("A05", 4, 0, 2, 1, False, True),   # re-engaged once: a return, not a step back
        ("A06", 4, 0, 0, 0, False, True),   # starts at client (4); a cancellation skips none
        ("A07", 0, 0, 0, 0, True, False),
        ("A08", 2, 0, 0, 0, False, False),
        ("A09", 4, 0, 0, 0, False, True),
        ("A11", 0, 0, 0, 0, True, False),
    ]


def test_ladder_fitness_is_one_exactly_for_linear_journeys(mined):
    rows = mined.execute("SELECT is_linear, fitness FROM journey_conformance").fetchall()
    assert all(f == pytest.approx(1.0) for linear, f in rows if linear)
    assert all(f < 1.0 for linear, f in rows if not linear)


def test_conformance_summary(mined):
    row = mined.execute(
        "SELECT accounts, linear_share, accounts_linear, client_conversion_linear, "
        "client_conversion_non_linear FROM conformance_summary").fetchall()[0]
    assert row == (10, 0.5, 5, 0.0, pytest.approx(4 / 5))


def test_stage_timing_censors_open_journeys(mined):
    # Entered awareness: A01 (moved on after 5 d), A02 (5 min), A11 (1 d), and A03, A07
    # still there at the as-of date (censored). Kaplan-Meier: 0.2, 0.4, 0.6 moved on.
    row = mined.execute(
        "SELECT accounts_entered, moved_on, censored, median_days, p75_days, "
        "moved_on_within_90d FROM stage_timing WHERE stage = 'awareness'").fetchall()[0]
    assert row == (5, 3, 2, 5.0, None, pytest.approx(0.6))


def test_consecutive_repeats_collapse_and_keep_their_count(mined):
    log = eventlog.event_log(mined, "activity", "account", collapse=True)
    a01 = log.filter("case_id = 'A01'").order("event_index").fetchall()
    assert [(r[1], r[4]) for r in a01] == [
        ("page_view", 2), ("form_submit", 1), ("pricing_view", 1), ("webinar_registration", 1)]
    raw = eventlog.event_log(mined, "activity", "account", collapse=False)
    assert len(raw.filter("case_id = 'A01'").fetchall()) == 5


def test_the_stage_level_is_the_inferred_history_not_the_signals(mined):
    log = eventlog.event_log(mined, "stage", "account")
    a11 = log.filter("case_id = 'A11'").order("event_index").fetchall()
    # A11's touchpoints signal awareness, consideration (x2), evaluation, awareness.
    assert [r[1] for r in a11] == ["awareness", "consideration", "evaluation"]


def test_engagement_cycle_case_notion_splits_an_account_at_each_engagement_end(mined):
    log = eventlog.event_log(mined, "stage", "engagement_cycle")
    cases = log.filter("account_id = 'A05'").order("case_id, event_index").fetchall()
    assert [(r[0], r[1]) for r in cases] == [
        ("A05#1", "client"), ("A05#1", "between_engagements"),
        ("A05#2", "client"), ("A05#2", "between_engagements")]


def test_replay_is_capped_at_the_most_frequent_variants(mined):
    log = eventlog.event_log(mined, "stage", "account")
    frame = mining.journey_conformance(mined, log, max_replayed_variants=1)
    replayed = frame[frame.fitness_replayed]
    # The single most frequent variant is "awareness" (A03, A07); the rest keep their
    # deviations but get no fitness.
    assert sorted(replayed.account_id) == ["A03", "A07"]
    assert frame.n_back_steps.notna().all() and frame.fitness.isna().sum() == 8
