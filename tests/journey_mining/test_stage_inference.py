"""Stage states (contract v2): the stage an account is in, inferred from all its signals,
measured against the generator's latent truth on seeds the sample does not use."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from journey_mining import ingest, stage_inference, warehouse
from journey_mining.config import AnalysisParams, StageInferenceConfig
from journey_mining.generator import GeneratorSpec, generate_exports
from tests.journeys_fixture import AS_OF, built_journeys

HELD_OUT_SEEDS = (3, 4)  # the committed sample is seed 7; 1 and 2 chose the window length


@pytest.fixture(scope="module", params=HELD_OUT_SEEDS)
def simulated(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"seed{request.param}")
    generate_exports(folder, GeneratorSpec(n_accounts=800, seed=request.param))
    con = warehouse.connect()
    ingest.load_exports(con, folder)
    warehouse.build(con, AnalysisParams())
    truth = stage_inference.stage_paths(
        pd.read_csv(folder / "truth" / "stage_paths.csv", parse_dates=["entered_at"]))
    yield con, truth
    con.close()


def test_default_inference_is_close_to_the_latent_truth(simulated):
    con, truth = simulated
    history = con.execute("SELECT * FROM account_stage_history").df()
    card = stage_inference.scorecard(stage_inference.stage_paths(history), truth)
    assert card["accounts"] >= 790
    assert card["path_equal"] >= 0.5
    assert abs(card["back_step"] - card["back_step_truth"]) <= 0.05
    assert abs(card["skip"] - card["skip_truth"]) <= 0.05
    assert abs(card["mean_length"] / card["mean_length_truth"] - 1) <= 0.10
    assert card["top_transitions_shared"] >= 8


def test_the_default_method_beats_signal_labels_and_the_hmm(simulated):
    con, truth = simulated
    labels = stage_inference.scorecard(stage_inference.signal_label_paths(con), truth)
    default = stage_inference.scorecard(stage_inference.stage_paths(
        stage_inference.infer_stage_history(con)), truth)
    hmm = stage_inference.scorecard(stage_inference.stage_paths(
        stage_inference.infer_stage_history(con, stage_inference.InferenceParams(method="hmm"))),
        truth)
    assert default["path_equal"] > hmm["path_equal"] > labels["path_equal"]
    assert labels["back_step"] > 0.8  # what the issue measured: labels zig-zag


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
    warehouse.build(con, AnalysisParams(stage_inference=StageInferenceConfig(
        method="window", window_days=30)), as_of=AS_OF)
    assert stays(con, "A01") == ["awareness", "consideration", "evaluation", "consideration"]


def test_the_hmm_method_runs_and_records_its_method(tmp_path):
    con = built_journeys(tmp_path)
    warehouse.build(con, AnalysisParams(stage_inference=StageInferenceConfig(method="hmm")),
                    as_of=AS_OF)
    methods = {r[0] for r in con.execute(
        "SELECT DISTINCT method FROM account_stage_history").fetchall()}
    assert methods == {"hmm", "engagement"}
    confidence = con.execute("SELECT min(confidence), max(confidence) "
                             "FROM account_stage_history WHERE method = 'hmm'").fetchall()[0]
    assert 0 <= confidence[0] <= confidence[1] <= 1


def test_inference_parameters_are_part_of_the_build_fingerprint(tmp_path):
    con = built_journeys(tmp_path)
    default = warehouse.build_fingerprint(con, AnalysisParams(), AS_OF)
    for change in ({"window_days": 100}, {"method": "window"}, {"renewal_cycles": False}):
        other = warehouse.build_fingerprint(
            con, AnalysisParams(stage_inference=StageInferenceConfig(**change)), AS_OF)
        assert default != other, change


def test_an_empty_warehouse_has_an_empty_history():
    con = warehouse.connect()
    warehouse.build(con, AnalysisParams(), as_of=dt.datetime(2025, 1, 1))
    assert con.execute("SELECT count(*) FROM account_stage_history").fetchall() == [(0,)]
