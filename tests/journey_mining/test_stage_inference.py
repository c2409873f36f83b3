"""Stage states (contract v2): the stage an account is in, inferred from all its signals,
measured against the generator's latent truth on seeds the sample does not use."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from journey_mining import build, stage_inference, warehouse
from journey_mining.config import AnalysisParams, StageInferenceConfig
from journey_mining.stage_scorecard import GRID, TEST_SEEDS, score_world
from tests.journeys_fixture import AS_OF, built_journeys

# -- over the grid of generated worlds (README "Stage states") -----------------------------

# Both tests of a world run on one worker, so each world is generated and built once.
WORLDS = [pytest.param((point, seed), id=f"{point}-{seed}",
                       marks=pytest.mark.xdist_group(f"world-{point}-{seed}"))
          for point in GRID for seed in TEST_SEEDS]


@pytest.fixture(scope="module", params=WORLDS)
def world(request):
    point, seed = request.param
    return point, score_world(replace(GRID[point], seed=seed), ("evidence", "window"))


def test_most_paths_are_exact_in_every_world(world):
    point, cards = world
    card = cards[stage_inference.InferenceParams().method]
    assert card["accounts"] >= 0.95 * GRID[point].n_accounts
    assert card["path_equal"] >= 0.5, f"{point}: {card['path_equal']:.1%}"


def test_path_lengths_and_common_transitions_match_in_every_world(world):
    point, cards = world
    card = cards[stage_inference.InferenceParams().method]
    assert abs(card["mean_length"] / card["mean_length_truth"] - 1) <= 0.10, point
    assert card["top_transitions_shared"] >= 8, point


# Worlds where the default misses the back-step / skip target (5 points) today,
# measured on these seeds (README "Stage states" says why). Strict: a world that starts
# meeting the target fails here until it is taken off the list.
BACK_STEP_AND_SKIP_MISSES = {
    "many regressions-301", "many regressions-302", "many touchpoints (x2)-302",
    "off-stage signals 20 %-301", "off-stage signals 20 %-302",
    "hard: all of it-301", "hard: all of it-302",
}
# Worlds where the window is the more accurate today: newsletter clicks measured as
# evidence of consideration (many touchpoints), longer stays than the window's 240 days
# happen to fit (long stays).
WINDOW_WINS = {"many touchpoints (x2)-302", "long stays (x2)-302"}


def test_back_steps_and_skips_are_as_common_as_in_truth(world, request):
    point, cards = world
    if request.node.callspec.id in BACK_STEP_AND_SKIP_MISSES:
        request.applymarker(pytest.mark.xfail(strict=True, reason="issue 24 target missed"))
    card = cards[stage_inference.InferenceParams().method]
    assert abs(card["back_step"] - card["back_step_truth"]) <= 0.05, (
        f"{point}: back-steps {card['back_step']:.1%} vs {card['back_step_truth']:.1%}")
    assert abs(card["skip"] - card["skip_truth"]) <= 0.05, (
        f"{point}: skips {card['skip']:.1%} vs {card['skip_truth']:.1%}")


def test_the_default_beats_the_window_in_every_world(world, request):
    point, cards = world
    if request.node.callspec.id in WINDOW_WINS:
        request.applymarker(pytest.mark.xfail(strict=True, reason="the window wins here"))
    assert cards["evidence"]["path_equal"] > cards["window"]["path_equal"], point


# -- on the hand-built fixture ------------------------------------------------------------------

@pytest.fixture(scope="module")
def fixture_con(tmp_path_factory):
    con = built_journeys(tmp_path_factory.mktemp("journeys"))
    yield con
    con.close()


def stays(con, account):
    return [r[0] for r in con.execute(
        "SELECT stage FROM account_stage_history WHERE account_id = $a ORDER BY entered_at",
        {"a": account}).fetchall()]


def test_a_newsletter_open_is_no_step_back(fixture_con):
    assert stays(fixture_con, "A11") == ["awareness", "consideration", "evaluation"]


def test_a_lost_deal_and_a_newsletter_open_leave_the_account_where_it_lost(fixture_con):
    # A08: meeting, proposal, deal lost, then only a newsletter open: nothing says where
    # it went, so it stays at decision (the window method guessed consideration).
    assert stays(fixture_con, "A08") == ["evaluation", "decision"]


def test_service_signals_do_not_move_a_client(fixture_con):
    # A06: support ticket and NPS reply while a client, then a cancellation.
    assert stays(fixture_con, "A06") == ["client", "former_client"]


def test_history_has_the_contract_columns_and_one_open_stay(fixture_con):
    columns = [r[0] for r in fixture_con.execute("DESCRIBE account_stage_history").fetchall()]
    assert columns[:6] == ["account_id", "engagement_cycle", "stage", "entered_at", "left_at",
                           "method"]
    open_stays = fixture_con.execute(
        "SELECT account_id, count(*) FILTER (WHERE left_at IS NULL) FROM account_stage_history "
        "GROUP BY 1 HAVING count(*) FILTER (WHERE left_at IS NULL) <> 1").fetchall()
    assert open_stays == []


def test_current_stage_is_the_open_stay(fixture_con):
    mismatched = fixture_con.execute("""
        SELECT j.account_id FROM account_journeys j JOIN account_stage_history h
        ON h.account_id = j.account_id AND h.left_at IS NULL
        WHERE j.current_stage <> h.stage""").fetchall()
    assert mismatched == []
    assert fixture_con.execute("SELECT current_stage FROM account_journeys "
                               "WHERE account_id = 'A11'").fetchall() == [("evaluation",)]


def test_engagement_cycles_number_the_stays(fixture_con):
    rows = fixture_con.execute(
        "SELECT stage, engagement_cycle FROM account_stage_history WHERE account_id = 'A05' "
        "ORDER BY entered_at").fetchall()
    assert rows == [("client", 1), ("between_engagements", 1), ("client", 2),
                    ("between_engagements", 2)]


def test_the_window_is_a_setting(tmp_path):
    # With a 30-day memory, A01's March webinar registration is seen without its January
    # pricing view: a step back to consideration.
    con = built_journeys(tmp_path)
    build.build(con, AnalysisParams(stage_inference=StageInferenceConfig(
        method="window", window_days=30)), as_of=AS_OF)
    assert stays(con, "A01") == ["awareness", "consideration", "evaluation", "consideration"]


def test_the_hmm_method_runs_and_records_its_method(tmp_path):
    con = built_journeys(tmp_path)
    build.build(con, AnalysisParams(stage_inference=StageInferenceConfig(method="hmm")),
                    as_of=AS_OF)
    methods = {r[0] for r in con.execute(
        "SELECT DISTINCT method FROM account_stage_history").fetchall()}
    assert methods == {"hmm", "engagement"}
    confidence = con.execute("SELECT min(confidence), max(confidence) "
                             "FROM account_stage_history WHERE method = 'hmm'").fetchall()[0]
    assert 0 <= confidence[0] <= confidence[1] <= 1


def test_inference_parameters_are_part_of_the_build_fingerprint(tmp_path):
    con = built_journeys(tmp_path)
    default = build.build_fingerprint(con, AnalysisParams(), AS_OF)
    for change in ({"window_days": 100}, {"method": "window"}, {"renewal_cycles": False}):
        other = build.build_fingerprint(
            con, AnalysisParams(stage_inference=StageInferenceConfig(**change)), AS_OF)
        assert default != other, change


def test_an_empty_warehouse_has_an_empty_history():
    con = warehouse.connect()
    build.build(con, AnalysisParams(), as_of=dt.datetime(2025, 1, 1))
    assert con.execute("SELECT count(*) FROM account_stage_history").fetchall() == [(0,)]
