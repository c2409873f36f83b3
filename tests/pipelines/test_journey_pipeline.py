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
from pipelines.journey_pipeline import TASKS, _retry_io_only, ingest, journey_pipeline
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
    assert (tmp_path / "reports" / "latest" / "index.html").exists()
    assert {"touchpoints", "stage_transitions", "journey_conformance"} <= set(result["models"])
    assert result["failed_checks"] == 0
    # outputs and report folders are named by the build's as-of date
    assert (tmp_path / "out" / "asof-2025-01-11" / "exports" / "account_log.xes").exists()
    assert Path(result["report"]) == (tmp_path / "reports" / "asof-2025-01-11" /
                                      "index.html").resolve()
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT touchpoint_id FROM touchpoints ORDER BY 1").fetchall() == [
        ("web_events:w1",), ("web_events:w2",)]
    assert con.execute("SELECT row_number FROM rejected_rows").fetchall() == [(4,)]


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
    assert "Traceback" not in result.output


def test_each_run_leaves_prefect_artifacts(exports, tmp_path):
    from prefect.artifacts import Artifact

    journey_pipeline(str(exports), str(tmp_path / "w.duckdb"), outputs=str(tmp_path / "out"),
                     reports_dir=str(tmp_path / "reports"), static_images=False)
    summary = Artifact.get("journey-summary-asof-2025-01-11")
    assert summary is not None and "Customer journeys" in summary.data
    report = (tmp_path / "reports" / "asof-2025-01-11" / "index.html").resolve().as_uri()
    assert f"[Open the report]({report})" in summary.data
    assert Artifact.get("report-asof-2025-01-11").data.endswith(f"({report})")
    funnel = Artifact.get("funnel-asof-2025-01-11")
    assert funnel is not None and "awareness" in funnel.data
    quality = Artifact.get("data-quality-asof-2025-01-11")
    assert quality is not None and "web_events" in quality.data
    assert Artifact.get("churn-risk-top-asof-2025-01-11") is not None
