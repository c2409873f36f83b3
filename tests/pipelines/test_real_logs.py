"""Real public logs through `journey run` with a config file only (issue 12): the stored
activity DFG and variants equal pm4py's figures for the same file. Skipped without
../shared (a clone outside CI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from journey_mining.stages import activity_name
from tests.conftest import SHARED_REAL, user_env

JOURNEY = str(Path(sys.executable).parent / "journey")
needs_shared = pytest.mark.skipif(not SHARED_REAL.is_dir(), reason="needs ../shared/data/real")


# The config a user writes for an event log exported as CSV: which file is the CRM
# activity export, which of its columns are the contract's, and a stage map.
EVENT_LOG_CONFIG = {
    "ingest": {"sources": {"crm_activities": {
        "files": ["*log*"],
        "columns": {"event_id": "activity_id", "time:timestamp": "occurred_at",
                    "case:concept:name": "account_id", "concept:name": "activity_type"}}}},
    "analysis": {"collapse_repeats": False, "stage_map": "stage_map.yml"},
}


def run_journey(tmp_path: Path, frame: pd.DataFrame, stage_map: dict,
                config: dict = EVENT_LOG_CONFIG, file_name: str = "event_log.csv.gz",
                map_name: str = "stage_map.yml") -> duckdb.DuckDBPyConnection:
    """Write the export, the stage map and the config, run `journey run` as a user would."""
    exports = tmp_path / "exports"
    exports.mkdir()
    frame.to_csv(exports / file_name, index=False)
    (tmp_path / map_name).write_text(yaml.safe_dump(stage_map))
    (tmp_path / "journey.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [JOURNEY, "run", "--input", str(exports), "--config", str(tmp_path / "journey.yml"),
         "--warehouse", str(tmp_path / "w.duckdb"), "--outputs", str(tmp_path / "out"),
         "--reports", str(tmp_path / "reports"), "--no-static-images"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
        env=user_env(tmp_path / ".prefect", shared_api=True))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "report:" in result.stdout
    return duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)


def check_against_reference(con, reference: dict) -> None:
    dfg = {f"{a} -> {b}": n for a, b, n in con.execute(
        "SELECT from_activity, to_activity, transitions FROM activity_transitions").fetchall()}
    assert dfg == {" -> ".join(activity_name(x) for x in k.split(" -> ")): v
                   for k, v in reference["dfg"].items()}
    variants = con.execute("SELECT variant, cases FROM path_variants WHERE level = 'activity' "
                           "ORDER BY cases DESC, variant").fetchall()
    assert len(variants) == reference["variants"]
    assert sum(n for _, n in variants) == reference["cases"]
    top = sorted(((" > ".join(activity_name(x) for x in v.split(" > ")), n)
                  for v, n in reference["top10_variants"]), key=lambda x: (-x[1], x[0]))
    assert [(v, n) for v, n in variants[:10]] == top
    assert con.execute("SELECT count(*) FROM rejected_rows").fetchall() == [(0,)]


@needs_shared
def test_the_receipt_log_runs_with_a_config_only(tmp_path):
    frame = pd.read_csv(SHARED_REAL / "receipt" / "receipt.csv.gz")
    frame.insert(0, "event_id", frame["concept:instance"])
    stage_map = {"signals": {"crm": {"Confirmation of receipt": "awareness",
                                     "T02 Check confirmation of receipt": "consideration",
                                     "T04 Determine confirmation of receipt": "evaluation",
                                     "T10 Determine necessity to stop indication": "client"}}}
    con = run_journey(tmp_path, frame, stage_map)
    check_against_reference(con, json.loads(
        (SHARED_REAL / "receipt" / "pm4py_reference.json").read_text()))
    # Every activity stays in the activity log, mapped to a stage or not.
    activities = con.execute(
        "SELECT count(*) FROM (SELECT from_activity FROM activity_transitions UNION "
        "SELECT to_activity FROM activity_transitions)").fetchall()[0][0]
    assert activities == 27


@needs_shared
def test_the_helpdesk_log_runs_with_a_config_only(tmp_path):
    import pm4py

    log = pm4py.read_xes(str(SHARED_REAL / "helpdesk" / "helpdesk.xes.gz"))
    frame = log[["case:concept:name", "concept:name", "time:timestamp"]].copy()
    frame.insert(0, "event_id", [f"e{i}" for i in range(len(frame))])
    frame["time:timestamp"] = pd.to_datetime(frame["time:timestamp"], utc=True).map(
        lambda t: t.isoformat())
    stage_map = {"signals": {"crm": {"Assign seriousness": "awareness",
                                     "Take in charge ticket": "consideration",
                                     "Resolve ticket": "evaluation",
                                     "Closed": "client"}}}
    con = run_journey(tmp_path, frame, stage_map)
    check_against_reference(con, json.loads(
        (SHARED_REAL / "helpdesk" / "pm4py_reference.json").read_text()))


def test_a_generated_purchase_log_runs_with_a_config_only(tmp_path):
    rows, n = [], 0
    for c in range(40):
        day = 0
        for _ in range(1 + c % 4):
            day += 7 + (c * 13) % 50
            n += 1
            rows.append((f"o{n}", pd.Timestamp("2024-01-01") + pd.Timedelta(days=day),
                         f"cust{c:02d}", "purchase"))
    config = {
        "ingest": {"sources": {"crm_activities": {
            "files": ["orders*"],
            "columns": {"order_id": "activity_id", "ordered_at": "occurred_at",
                        "customer_id": "account_id", "kind": "activity_type"}}}},
        "analysis": {"stage_map": "purchase_stage_map.yml", "churn_kind": "non_contractual",
                     "engagements": {"start": ["purchase"], "instant": True}}}
    con = run_journey(
        tmp_path, pd.DataFrame(rows, columns=["order_id", "ordered_at", "customer_id", "kind"]),
        {"signals": {"crm": {"purchase": "client"}}}, config, "orders_2024.csv",
        "purchase_stage_map.yml")
    assert con.execute("SELECT count(*) FROM engagements").fetchall() == [(n,)]
    returned = sum(1 for c in range(40) if c % 4)
    assert con.execute("SELECT re_engaged_accounts FROM journey_kpis").fetchall() == [
        (returned,)]
    bands = con.execute("SELECT risk_band, min(churn_probability) FROM churn_scores "
                        "GROUP BY 1").fetchall()
    # scored with a probability above 0 where banded above low, or (too little history
    # for any model) neither a probability nor a band
    assert all((p is None) if band is None else (band == "low" or p > 0) for band, p in bands)
