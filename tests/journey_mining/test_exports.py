"""The XES export is written by DuckDB a batch at a time: pm4py reads it back as the same
log (cases, events, directly-follows), with every value escaped and microseconds kept."""

from __future__ import annotations

import datetime as dt

import duckdb
import pm4py

from journey_mining import exports, mining
from tests.journeys_fixture import built_journeys


def _read(path):
    return pm4py.read_xes(str(path), return_legacy_log_object=False)


def test_pm4py_reads_the_streamed_xes_as_the_journeys_log(tmp_path):
    con = built_journeys(tmp_path / "in")
    mining.mine(con)
    path = exports.write_xes(con, tmp_path / "log.xes", batch_rows=7)  # many batches
    log = _read(path)
    frame = exports.account_log_frame(con)
    assert len(log) == len(frame) == con.execute(
        "SELECT count(*) FROM int_journey_events").fetchall()[0][0]
    assert log.groupby("case:concept:name").size().to_dict() == frame.groupby(
        "case:concept:name").size().to_dict()
    assert pm4py.discover_dfg(log)[0] == pm4py.discover_dfg(frame)[0]
    assert list(log["touchpoint_id"]) == list(frame["touchpoint_id"])  # event order kept


def test_values_are_escaped_and_microseconds_kept(tmp_path):
    con = duckdb.connect()
    con.execute("""CREATE TABLE int_journey_events AS SELECT * FROM (VALUES
        ('A&1', 1, 'form <submit> "x" & ''y''', TIMESTAMP '2025-03-01 09:00:00.123456',
         'consideration', 'web', NULL, 'web_events:w1'),
        ('A&1', 2, 'line' || chr(10) || 'break', TIMESTAMP '2025-03-01 09:00:01.5',
         NULL, 'crm', 'C<1>', 'crm_activities:a1'))
        AS t(account_id, event_order, activity, occurred_at, stage, channel, contact_id,
             touchpoint_id)""")
    log = _read(exports.write_xes(con, tmp_path / "odd.xes"))
    assert list(log["case:concept:name"]) == ["A&1", "A&1"]
    assert list(log["concept:name"]) == ['form <submit> "x" & \'y\'', "line\nbreak"]
    assert list(log["time:timestamp"]) == [
        dt.datetime(2025, 3, 1, 9, 0, 0, 123456, tzinfo=dt.UTC),
        dt.datetime(2025, 3, 1, 9, 0, 1, 500000, tzinfo=dt.UTC)]
    assert log["contact_id"].isna().tolist() == [True, False]
    assert log["stage"].isna().tolist() == [False, True]


def test_an_empty_log_is_a_valid_file(tmp_path):
    con = duckdb.connect()
    con.execute("CREATE TABLE int_journey_events (account_id VARCHAR, event_order BIGINT, "
                "activity VARCHAR, occurred_at TIMESTAMP, stage VARCHAR, channel VARCHAR, "
                "contact_id VARCHAR, touchpoint_id VARCHAR)")
    text = exports.write_xes(con, tmp_path / "empty.xes").read_text()
    assert text.startswith("<?xml") and text.rstrip().endswith("</log>")
    assert "<trace>" not in text
