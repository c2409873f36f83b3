"""The XES export is written by DuckDB a batch at a time: pm4py reads it back as the same
log (cases, events, directly-follows), with every value escaped and microseconds kept."""

from __future__ import annotations

import datetime as dt

import duckdb
import pm4py
import pytest

from journey_mining import exports, mining
from tests.journeys_fixture import built_journeys


def _read(path):
    return pm4py.read_xes(str(path), return_legacy_log_object=False)


def test_pm4py_reads_the_streamed_xes_as_the_journeys_log(tmp_path):
    con = built_journeys(tmp_path / "in")
    mining.mine(con)
    path = exports.write_xes(con, tmp_path / "log.xes", batch_events=7)  # many batches
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


# -- OCEL 2.0 ------------------------------------------------------------------------

def test_pm4py_reads_the_streamed_ocel_with_every_event_relation_and_object(tmp_path):
    con = built_journeys(tmp_path / "in")
    mining.mine(con)
    ocel = pm4py.read_ocel2(str(exports.write_ocel(con, tmp_path / "j.jsonocel",
                                                   batch_events=5)))
    events = con.sql("SELECT * FROM int_journey_events").df()
    assert sorted(ocel.events["ocel:eid"]) == sorted(events["touchpoint_id"])
    relations = {(r["ocel:eid"], r["ocel:oid"], r["ocel:qualifier"])
                 for _, r in ocel.relations.iterrows()}
    expected = set()
    for _, e in events.iterrows():
        expected.add((e.touchpoint_id, f"account:{e.account_id}", "of account"))
        for column, kind, qualifier in (("contact_id", "contact", "by contact"),
                                        ("opportunity_id", "opportunity", "on opportunity"),
                                        ("campaign_id", "campaign", "from campaign")):
            if e[column] is not None and e[column] == e[column]:
                expected.add((e.touchpoint_id, f"{kind}:{e[column]}", qualifier))
    assert relations == expected
    assert set(ocel.objects["ocel:oid"]) == {oid for _, oid, _ in expected}
    belongs = {(r["ocel:oid"], r["ocel:oid_2"]) for _, r in ocel.o2o.iterrows()}
    contacts = events.dropna(subset=["contact_id"])
    assert belongs >= {(f"contact:{c}", f"account:{a}")
                       for c, a in zip(contacts.contact_id, contacts.account_id, strict=True)}
    # the account log read off the OCEL has the journeys' directly-follows graph
    flat = pm4py.ocel_flattening(ocel, "account")
    frame = exports.account_log_frame(con)
    frame["case:concept:name"] = "account:" + frame["case:concept:name"]
    assert pm4py.discover_dfg(flat)[0] == pm4py.discover_dfg(frame)[0]


def test_ocel_objects_carry_their_attributes_and_times_their_microseconds(tmp_path):
    con = duckdb.connect()
    con.execute("""CREATE TABLE int_journey_events AS SELECT * FROM (VALUES
        ('crm_activities:a"1', 'A1', 'C1', 'O1', NULL, NULL, 'sales outreach',
         'demo <booked>', TIMESTAMP '2025-03-01 09:00:00.123456', 'evaluation', 'crm', 1),
        ('web_events:w1', 'A1', NULL, NULL, 'K1', 'Spring & "Summer"', 'paid search',
         'pricing_page', TIMESTAMP '2025-03-01 09:00:00.5', NULL, 'web', 2))
        AS t(touchpoint_id, account_id, contact_id, opportunity_id, campaign_id,
             campaign_name, marketing_channel, activity, occurred_at, stage, channel,
             event_order)""")
    con.execute("""CREATE TABLE stg_crm__accounts AS SELECT 'A1' AS account_id,
        'Acme & Sons' AS account_name, 'Manufacturing' AS industry, 250 AS employees,
        NULL AS country""")
    con.execute("""CREATE TABLE stg_crm__contacts AS SELECT 'C1' AS contact_id,
        'A1' AS account_id, 'decider' AS role, 'Head of "Ops"' AS title""")
    ocel = pm4py.read_ocel2(str(exports.write_ocel(con, tmp_path / "odd.jsonocel")))
    objects = ocel.objects.set_index("ocel:oid")
    assert objects.loc["account:A1", "industry"] == "Manufacturing"
    assert objects.loc["account:A1", "account_name"] == "Acme & Sons"
    assert objects.loc["account:A1", "employees"] == 250
    assert objects.loc["contact:C1", "role"] == "decider"
    assert objects.loc["contact:C1", "title"] == 'Head of "Ops"'
    assert objects.loc["campaign:K1", "campaign_name"] == 'Spring & "Summer"'
    assert objects.loc["campaign:K1", "marketing_channel"] == "paid search"
    events = ocel.events.set_index("ocel:eid")
    assert events.loc['crm_activities:a"1', "ocel:activity"] == "demo <booked>"
    assert [t.to_pydatetime().replace(tzinfo=None) for t in events["ocel:timestamp"]] == [
        dt.datetime(2025, 3, 1, 9, 0, 0, 123456), dt.datetime(2025, 3, 1, 9, 0, 0, 500000)]
    assert events.loc["web_events:w1", "marketing_channel"] == "paid search"
    assert events.loc['crm_activities:a"1', "stage"] == "evaluation"


def test_an_empty_ocel_is_valid_json(tmp_path):
    import json

    con = duckdb.connect()
    con.execute("""CREATE TABLE int_journey_events (touchpoint_id VARCHAR, account_id VARCHAR,
        contact_id VARCHAR, opportunity_id VARCHAR, campaign_id VARCHAR,
        campaign_name VARCHAR, marketing_channel VARCHAR, activity VARCHAR,
        occurred_at TIMESTAMP, stage VARCHAR, channel VARCHAR, event_order BIGINT)""")
    con.execute("CREATE TABLE stg_crm__accounts (account_id VARCHAR, account_name VARCHAR, "
                "industry VARCHAR, employees INTEGER, country VARCHAR)")
    con.execute("CREATE TABLE stg_crm__contacts (contact_id VARCHAR, account_id VARCHAR, "
                "role VARCHAR, title VARCHAR)")
    doc = json.loads(exports.write_ocel(con, tmp_path / "empty.jsonocel").read_text())
    assert doc == {"objectTypes": [], "eventTypes": [], "objects": [], "events": []}


# -- written a range at a time -------------------------------------------------------

def test_the_xes_is_the_same_file_whatever_the_size_of_a_range(tmp_path):
    con = built_journeys(tmp_path / "in")
    whole = exports.write_xes(con, tmp_path / "whole.xes").read_text()
    ranged = exports.write_xes(con, tmp_path / "ranged.xes", batch_events=1).read_text()
    assert ranged == whole


def _spanning_log(con):
    """Contact C1 and opportunity O1 on accounts A1 and B1, which one-event ranges put
    in different ranges; a campaign on the second account only."""
    con.execute("""CREATE TABLE int_journey_events AS SELECT * FROM (VALUES
        ('t1', 'A1', 'C1', 'O1', NULL, NULL, NULL, 'meeting',
         TIMESTAMP '2025-03-01 09:00:00', 'evaluation', 'crm', 1),
        ('t2', 'B1', 'C1', 'O1', 'K1', 'Spring', 'paid search', 'pricing_page',
         TIMESTAMP '2025-02-01 09:00:00', NULL, 'web', 2),
        ('t3', 'B1', NULL, NULL, NULL, NULL, NULL, 'pricing_page',
         TIMESTAMP '2025-03-02 09:00:00', NULL, 'web', 3))
        AS t(touchpoint_id, account_id, contact_id, opportunity_id, campaign_id,
             campaign_name, marketing_channel, activity, occurred_at, stage, channel,
             event_order)""")
    con.execute("CREATE TABLE stg_crm__accounts AS SELECT 'A1' AS account_id, "
                "'Acme' AS account_name, 'Retail' AS industry, 5 AS employees, "
                "'FR' AS country")
    con.execute("CREATE TABLE stg_crm__contacts AS SELECT 'C1' AS contact_id, "
                "'A1' AS account_id, 'buyer' AS role, 'CFO' AS title")


def test_an_object_on_accounts_in_two_ranges_is_written_once_with_both(tmp_path):
    import json

    con = duckdb.connect()
    _spanning_log(con)
    docs = [json.loads(exports.write_ocel(con, tmp_path / f"{n}.jsonocel",
                                          batch_events=n).read_text()) for n in (1, 1000)]
    ranged, whole = docs
    ids = [o["id"] for o in ranged["objects"]]
    assert sorted(ids) == ["account:A1", "account:B1", "campaign:K1", "contact:C1",
                           "opportunity:O1"]
    objects = {o["id"]: o for o in ranged["objects"]}
    for oid in ("contact:C1", "opportunity:O1"):
        assert [r["objectId"] for r in objects[oid]["relationships"]] == [
            "account:A1", "account:B1"]
    assert objects["opportunity:O1"]["attributes"][0]["value"].startswith("2025-02-01")
    assert [e["id"] for e in ranged["events"]] == ["t1", "t2", "t3"]
    key = {part: sorted(json.dumps(item, sort_keys=True) for item in items)
           for part, items in whole.items()}
    assert {part: sorted(json.dumps(item, sort_keys=True) for item in items)
            for part, items in ranged.items()} == key
    assert len(pm4py.read_ocel2(str(tmp_path / "1.jsonocel")).objects) == 5


def test_an_export_that_fails_leaves_the_previous_file_and_no_partial_one(tmp_path):
    con = duckdb.connect()
    _spanning_log(con)
    path = exports.write_ocel(con, tmp_path / "j.jsonocel")
    before = path.read_text()
    con.execute("DROP TABLE stg_crm__contacts")  # the objects' query now fails
    with pytest.raises(duckdb.CatalogException):
        exports.write_ocel(con, path, batch_events=1)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["j.jsonocel"]

