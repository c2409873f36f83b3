"""The Prefect flows end to end, and the `journey` command that runs them."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from journey_mining import steps
from journey_mining.cli import app
from journey_mining.config import Config
from journey_mining.errors import MissingColumnError
from journey_mining.pipelines.journey_pipeline import (
    TASKS,
    _retry_io_only,
    ingest,
    journey_pipeline,
)
from tests.conftest import WEB_HEADER, write_csv

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def exports(tmp_path):
    folder = tmp_path / "exports"
    write_csv(folder, "crm_accounts.csv", "account_id,name,domain", "acc1,Acme,acme.com")
    write_csv(folder, "web_events_2025-01.csv", WEB_HEADER,
              "w1,2025-01-10T09:00:00Z,anon1,page_view,",
              "w2,2025-01-11T09:00:00Z,anon1,form_submit,ann@acme.com",
              "w3,bad,anon1,page_view,")
    return folder


def test_pipeline_flow_loads_and_builds_the_warehouse(exports, tmp_path):
    db = tmp_path / "w.duckdb"
    result = journey_pipeline(str(exports), str(db), outputs=str(tmp_path / "out"),
                              reports_dir=str(tmp_path / "reports"), static_images=False)
    assert (result["load"]["rows_loaded"], result["load"]["rows_rejected"]) == (3, 1)
    assert Path(result["report"]).exists()
    assert (tmp_path / "reports" / "w" / "latest" / "index.html").exists()
    assert {"touchpoints", "stage_transitions", "journey_conformance"} <= set(result["models"])
    assert result["failed_checks"] == 0
    # outputs and report folders are named by the warehouse, then the build's as-of date
    assert (tmp_path / "out" / "w" / "asof-2025-01-11" / "exports" / "account_log.xes").exists()
    assert Path(result["report"]) == (tmp_path / "reports" / "w" / "asof-2025-01-11" /
                                      "index.html").resolve()
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT touchpoint_id FROM touchpoints ORDER BY 1").fetchall() == [
        ("web_events:w1",), ("web_events:w2",)]
    assert con.execute("SELECT row_number FROM rejected_rows").fetchall() == [(4,)]


def test_warehouses_with_the_same_as_of_date_keep_their_reports_apart(exports, tmp_path):
    """Two warehouses built from exports with the same last date, one more with the same
    file name in another folder: each report and its `latest` stay its own."""
    kwargs = {"outputs": str(tmp_path / "out"), "reports_dir": str(tmp_path / "reports"),
              "static_images": False}
    first = journey_pipeline(str(exports), str(tmp_path / "a" / "w.duckdb"), **kwargs)
    other = tmp_path / "other"
    write_csv(other, "crm_accounts.csv", "account_id,name,domain", "acc1,Acme,acme.com")
    write_csv(other, "web_events_2025-01.csv", WEB_HEADER,
              "w1,2025-01-11T09:00:00Z,anon1,form_submit,ann@acme.com")
    second = journey_pipeline(str(other), str(tmp_path / "b" / "w.duckdb"), **kwargs)
    demo = journey_pipeline(str(other), str(tmp_path / "a" / "demo.duckdb"), **kwargs)
    reports = tmp_path / "reports"
    homes = {Path(r["report"]).parent.parent.name for r in (first, second, demo)}
    assert len(homes) == 3 and {"w", "demo"} < homes  # the second w.duckdb: w-<hash>
    # The first warehouse has two touchpoints, the others one: each latest shows its own.
    for result, touchpoints, path in ((first, 2, "a/w.duckdb"), (second, 1, "b/w.duckdb"),
                                      (demo, 1, "a/demo.duckdb")):
        home = Path(result["report"]).parent.parent
        assert Path(result["report"]).parent.name == "asof-2025-01-11"
        assert (f'<div class="kpi"><b>{touchpoints}</b>touchpoints</div>'
                in (home / "latest" / "index.html").read_text())
        assert (home / ".warehouse").read_text().strip() == str((tmp_path / path).resolve())
    # Running the first warehouse again finds its own folder, not the second's.
    again = journey_pipeline(str(exports), str(tmp_path / "a" / "w.duckdb"), **kwargs,
                             full_reload=True)
    assert Path(again["report"]).parent.parent == reports / "w"


def test_running_again_on_the_same_folder_adds_nothing(exports, tmp_path):
    db = tmp_path / "w.duckdb"
    kwargs = {"outputs": str(tmp_path / "out"), "reports_dir": str(tmp_path / "reports"),
              "static_images": False}
    journey_pipeline(str(exports), str(db), **kwargs)
    again = journey_pipeline(str(exports), str(db), **kwargs)
    assert again["load"]["rows_loaded"] == 0 and again["load"]["files_skipped"] == 2


def test_ingest_flow_fails_with_the_library_error_and_does_not_retry_it(exports, tmp_path):
    write_csv(exports, "email_events.csv", "event_id,occurred_at,email", "m1,2025-01-01,a@b.co")
    with pytest.raises(MissingColumnError, match="event_type"):
        ingest(str(exports), str(tmp_path / "w.duckdb"))
    ctx = steps.RunContext(tmp_path / "w2.duckdb", Config(), exports)
    state = TASKS["load"](ctx, return_state=True)
    assert not _retry_io_only(None, None, state)


def test_cli_run_prints_where_the_outputs_are(exports, tmp_path):
    db = tmp_path / "cli.duckdb"
    result = CliRunner().invoke(app, ["run", "--input", str(exports), "--warehouse", str(db),
                                      "--outputs", str(tmp_path / "out"),
                                      "--reports", str(tmp_path / "reports"),
                                      "--no-static-images"])
    assert result.exit_code == 0, result.output
    assert "loaded 3 new rows" in result.output and str(db) in result.output
    assert result.output.strip().splitlines()[-1].startswith("report: ")


def test_cli_reports_a_bad_folder_in_one_line_and_exits_non_zero(tmp_path):
    write_csv(tmp_path, "leads.csv", "a,b", "1,2")
    result = CliRunner().invoke(app, ["run", "--input", str(tmp_path),
                                      "--warehouse", str(tmp_path / "w.duckdb")])
    assert result.exit_code == 1
    assert "error:" in result.output and "leads.csv" in result.output
    assert "no export files" in result.output  # a stray file is skipped, not the error
    assert "Traceback" not in result.output


def test_each_run_leaves_prefect_artifacts(exports, tmp_path):
    from prefect.artifacts import Artifact

    journey_pipeline(str(exports), str(tmp_path / "w.duckdb"), outputs=str(tmp_path / "out"),
                     reports_dir=str(tmp_path / "reports"), static_images=False)
    summary = Artifact.get("journey-summary-asof-2025-01-11")
    assert summary is not None and "Customer journeys" in summary.data
    report = (tmp_path / "reports" / "w" / "asof-2025-01-11" / "index.html").resolve().as_uri()
    assert f"[Open the report]({report})" in summary.data
    assert Artifact.get("report-asof-2025-01-11").data.endswith(f"({report})")
    funnel = Artifact.get("funnel-asof-2025-01-11")
    assert funnel is not None and "awareness" in funnel.data
    quality = Artifact.get("data-quality-asof-2025-01-11")
    assert quality is not None and "web_events" in quality.data
    assert Artifact.get("churn-risk-top-asof-2025-01-11") is not None


def test_cli_run_infers_renewals_and_pins_observed_stages(tmp_path):
    """Issue 24 through the command users run: a renewal cycle between engagements, a
    recorded stage change pinning the stage, the run's Stage states line, and the
    renewal setting turned off by config."""
    folder = tmp_path / "exports"
    write_csv(folder, "crm_accounts.csv", "account_id,name,domain",
              "R1,Renewco,renew.co", "P1,Pinco,pin.co")
    write_csv(folder, "crm_activities.csv", "activity_id,occurred_at,account_id,activity_type",
              "a1,2024-01-05 10:00:00,R1,meeting", "a2,2024-02-01 10:00:00,R1,proposal_sent",
              "a3,2024-03-01 10:00:00,R1,deal_won", "a4,2024-03-10 10:00:00,R1,project_started",
              "a5,2024-06-01 10:00:00,R1,project_completed",
              "a6,2024-09-01 10:00:00,R1,meeting", "a7,2024-09-20 10:00:00,R1,proposal_sent",
              "a8,2024-10-01 10:00:00,R1,deal_won",
              "b1,2024-01-05 10:00:00,P1,meeting",
              "b2,2024-02-01 10:00:00,P1,Lifecycle Stage Consideration")
    stage_map = tmp_path / "stage_map.yml"
    default = (Path(__file__).parents[2] / "journey_mining/config/stage_map.yml").read_text()
    stage_map.write_text(default.replace("  crm:\n", "  crm:\n    lifecycle_stage_consideration:"
                                         " consideration\n", 1)
                         + "\nobserved:\n  crm: [lifecycle_stage_consideration]\n")

    def run(name: str, renewal_cycles: bool):
        config = tmp_path / f"{name}.yml"
        config.write_text(f"analysis:\n  stage_map: {stage_map}\n  stage_inference:\n"
                          f"    renewal_cycles: {str(renewal_cycles).lower()}\n")
        db = tmp_path / f"{name}.duckdb"
        result = CliRunner().invoke(app, ["run", "--input", str(folder), "--warehouse", str(db),
                                          "--config", str(config),
                                          "--outputs", str(tmp_path / f"out-{name}"),
                                          "--reports", str(tmp_path / f"rep-{name}"),
                                          "--no-static-images"])
        assert result.exit_code == 0, result.output
        with duckdb.connect(str(db), read_only=True) as con:
            rows = con.execute("SELECT account_id, stage, method, is_renewal, engagement_cycle "
                               "FROM account_stage_history ORDER BY account_id, entered_at"
                               ).fetchall()
        return result.output, rows

    output, rows = run("on", True)
    assert "Stage states (evidence, renewal cycles on)" in output
    assert [(s, m) for a, s, m, *_ in rows if a == "P1"] == [
        ("evaluation", "evidence"), ("consideration", "observed")]
    assert [(s, r, c) for a, s, _, r, c in rows if a == "R1"] == [
        ("evaluation", False, 1), ("decision", False, 1), ("client", False, 1),
        ("between_engagements", False, 1), ("evaluation", True, 2), ("decision", True, 2),
        ("client", False, 2)]
    output, rows = run("off", False)
    assert "renewal cycles off" in output
    assert [s for a, s, *_ in rows if a == "R1"][3:] == ["between_engagements", "client"]
