"""The mining step's files open in pm4py, and nothing needs the Graphviz binary."""

from __future__ import annotations

import shutil
import warnings

import pm4py
import pytest

from journey_mining import mining, warehouse


@pytest.fixture(scope="module")
def mined_files(sample_warehouse, tmp_path_factory):
    out = tmp_path_factory.mktemp("mined")
    copy = out / "w.duckdb"
    shutil.copy(sample_warehouse, copy)
    con = warehouse.connect(copy)
    result = mining.mine(con, out)
    yield con, result
    con.close()


def test_process_models_are_written_and_read_back(mined_files):
    _, result = mined_files
    net, initial, final = pm4py.read_pnml(str(result.files["stage_pnml"]))
    assert {t.label for t in net.transitions if t.label} <= {
        "awareness", "consideration", "evaluation", "decision", "client",
        "between_engagements", "advocacy", "former_client"}
    assert len(initial) == 1 and len(final) == 1
    bpmn = pm4py.read_bpmn(str(result.files["activity_bpmn"]))
    assert len(bpmn.get_nodes()) > 10


def test_xes_export_holds_every_journey_event(mined_files):
    con, result = mined_files
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = pm4py.read_xes(str(result.files["xes"]))
    n_events, n_accounts = con.execute(
        "SELECT count(*), count(DISTINCT account_id) FROM int_journey_events").fetchall()[0]
    assert len(frame) == n_events
    assert frame["case:concept:name"].nunique() == n_accounts
    assert {"stage", "channel"} <= set(frame.columns)


def test_ocel_export_has_the_four_object_types(mined_files):
    con, result = mined_files
    ocel = pm4py.read_ocel2(str(result.files["ocel"]))
    assert set(ocel.objects["ocel:type"]) == {"account", "contact", "opportunity", "campaign"}
    n_events = con.execute("SELECT count(*) FROM int_journey_events").fetchall()[0][0]
    assert len(ocel.events) == n_events
    assert len(ocel.o2o) > 0  # contacts and opportunities belong to accounts


def test_mining_needs_no_graphviz_binary(sample_warehouse, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` anywhere on the PATH
    copy = tmp_path / "w.duckdb"
    shutil.copy(sample_warehouse, copy)
    con = warehouse.connect(copy)
    result = mining.mine(con, tmp_path / "out")
    assert result.files["stage_bpmn"].stat().st_size > 0


def test_mined_tables_pass_their_data_tests(mined_files):
    from journey_mining import checks

    con, _ = mined_files
    results = checks.run_checks(con)
    assert {"stage_transitions", "journey_conformance", "stage_timing", "path_variants"} <= {
        r.model for r in results}
    assert [r for r in results if not r.passed] == []


def test_variant_summary_reports_the_long_tail(mined_files):
    _, result = mined_files
    stage = result.summary["stage"]
    assert stage["top_k_coverage"] + stage["long_tail_share"] == pytest.approx(1.0)
    assert stage["variants"] > stage["top_k"]
