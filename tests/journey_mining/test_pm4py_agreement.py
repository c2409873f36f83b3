"""Our DuckDB directly-follows graphs and variants equal pm4py's on the same logs."""

from __future__ import annotations

import json

import pandas as pd
import pm4py
import pytest

from journey_mining import discovery, eventlog, warehouse
from tests.conftest import SHARED_REAL

COMBINATIONS = [(level, case, collapse) for level in eventlog.LEVELS
                for case in eventlog.CASE_NOTIONS for collapse in (True, False)]


@pytest.mark.parametrize(("level", "case_notion", "collapse"), COMBINATIONS)
def test_dfg_and_variants_equal_pm4py_on_the_sample(sample_con, level, case_notion, collapse):
    log = eventlog.event_log(sample_con, level, case_notion, collapse)
    frame = eventlog.to_pm4py(log)
    dfg, starts, ends = pm4py.discover_dfg(frame)
    performance, _, _ = pm4py.discover_performance_dfg(frame)
    ours = discovery.discover_dfg(log)
    assert {(r.from_activity, r.to_activity): r.transitions for r in ours.itertuples()} == dfg
    for r in ours.itertuples():
        edge = performance[(r.from_activity, r.to_activity)]
        assert r.median_hours == pytest.approx(edge["median"] / 3600, abs=1e-9)
        assert r.mean_hours == pytest.approx(edge["mean"] / 3600, abs=1e-9)
    endpoints = discovery.discover_start_end(log)
    assert {r.activity: r.starts for r in endpoints.itertuples() if r.starts} == starts
    assert {r.activity: r.ends for r in endpoints.itertuples() if r.ends} == ends
    variants = discovery.discover_variants(log)
    assert dict(zip(variants.variant, variants.cases, strict=True)) == {
        " > ".join(k): v for k, v in pm4py.get_variants(frame).items()}


def _reference(name):
    path = SHARED_REAL / name / "pm4py_reference.json"
    if not path.exists():
        pytest.skip("../shared/data/real is not beside this checkout")
    return json.loads(path.read_text())


def _check_against_reference(frame, reference):
    con = warehouse.connect()
    log = eventlog.from_frame(con, frame)
    dfg = discovery.discover_dfg(log)
    assert {f"{r.from_activity} -> {r.to_activity}": r.transitions
            for r in dfg.itertuples()} == reference["dfg"]
    endpoints = discovery.discover_start_end(log)
    assert {r.activity: r.starts for r in endpoints.itertuples() if r.starts} == \
        reference["start_activities"]
    assert {r.activity: r.ends for r in endpoints.itertuples() if r.ends} == \
        reference["end_activities"]
    variants = discovery.discover_variants(log)
    assert len(variants) == reference["variants"]
    assert variants.cases.sum() == reference["cases"]
    top = [[v, c] for v, c in zip(variants.variant, variants.cases, strict=True)][:10]
    assert sorted(top, key=lambda x: (-x[1], x[0])) == sorted(
        reference["top10_variants"], key=lambda x: (-x[1], x[0]))


def test_real_receipt_log_equals_pm4py_reference():
    reference = _reference("receipt")
    frame = pd.read_csv(SHARED_REAL / "receipt" / "receipt.csv.gz")
    # Mixed +01:00/+02:00 offsets: parse each to its UTC instant.
    frame["time:timestamp"] = pd.to_datetime(frame["time:timestamp"], utc=True, format="ISO8601")
    _check_against_reference(frame, reference)


def test_real_helpdesk_log_equals_pm4py_reference():
    reference = _reference("helpdesk")
    frame = pm4py.read_xes(str(SHARED_REAL / "helpdesk" / "helpdesk.xes.gz"))
    _check_against_reference(frame, reference)
