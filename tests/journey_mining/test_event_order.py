"""Event order (contract v2): ties in time keep the source order (file name, then row), so
the activity log equals what pm4py reads from the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pm4py

from journey_mining import build, eventlog, ingest, mining, warehouse
from journey_mining.config import AnalysisParams
from tests.conftest import write_csv


def test_events_sharing_a_time_keep_the_file_order(tmp_path):
    # z_submit before a_check in the file, at the same second: the file's order wins
    # over any order by name or id.
    write_csv(tmp_path, "crm_activities.csv", "activity_id,occurred_at,account_id,activity_type",
              "x9,2024-01-01 10:00:00,A1,z_submit", "x1,2024-01-01 10:00:00,A1,a_check",
              "x5,2024-01-01 10:00:00,A1,m_approve")
    con = warehouse.connect()
    ingest.load_exports(con, tmp_path)
    build.build(con, AnalysisParams())
    log = eventlog.event_log(con, "activity", "account", collapse=False)
    assert [r[1] for r in log.order("event_index").fetchall()] == [
        "z_submit", "a_check", "m_approve"]


def test_ties_across_files_follow_file_name_order(tmp_path):
    write_csv(tmp_path, "crm_activities_2.csv", "activity_id,occurred_at,account_id,activity_type",
              "b1,2024-01-01 10:00:00,A1,second")
    write_csv(tmp_path, "crm_activities_1.csv", "activity_id,occurred_at,account_id,activity_type",
              "c1,2024-01-01 10:00:00,A1,first")
    con = warehouse.connect()
    ingest.load_exports(con, tmp_path)
    build.build(con, AnalysisParams())
    log = eventlog.event_log(con, "activity", "account", collapse=False)
    assert [r[1] for r in log.order("event_index").fetchall()] == ["first", "second"]


def test_a_log_full_of_ties_gives_pm4py_s_dfg_and_variants(tmp_path):
    rng = np.random.default_rng(3)
    rows = []
    for case in range(150):
        t = pd.Timestamp("2024-01-01 09:00")
        for _ in range(int(rng.integers(2, 9))):
            # half the events share the time of the one before
            t += pd.Timedelta(0) if rng.random() < 0.5 else pd.Timedelta(minutes=int(
                rng.integers(1, 600)))
            rows.append((f"e{len(rows)}", t, f"K{case:03d}", f"act_{int(rng.integers(0, 6))}"))
    frame = pd.DataFrame(rows, columns=["activity_id", "occurred_at", "account_id",
                                        "activity_type"])
    frame.to_csv(tmp_path / "crm_activities.csv", index=False,
                 date_format="%Y-%m-%d %H:%M:%S")
    con = warehouse.connect()
    ingest.load_exports(con, tmp_path)
    build.build(con, AnalysisParams(collapse_repeats=False))
    mining.mine(con, params=mining.MiningParams(collapse_repeats=False))
    ours = {(a, b): n for a, b, n in con.execute(
        "SELECT from_activity, to_activity, transitions FROM activity_transitions").fetchall()}
    log = pm4py.format_dataframe(frame.assign(occurred_at=pd.to_datetime(frame.occurred_at)),
                                 case_id="account_id", activity_key="activity_type",
                                 timestamp_key="occurred_at")
    dfg, _, _ = pm4py.discover_dfg(log)
    assert ours == dict(dfg)
    variants = {v: n for v, n in con.execute(
        "SELECT variant, cases FROM path_variants WHERE level = 'activity'").fetchall()}
    assert variants == {" > ".join(k): v for k, v in pm4py.get_variants(log).items()}
