"""Ingest per CONTRACT.md section 1: formats, time zones, emails, bad input, idempotence."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap

import duckdb
import pandas as pd
import pytest

from journey_mining import ingest, warehouse
from journey_mining.config import IngestConfig
from journey_mining.errors import MissingColumnError, UnknownFileError
from tests.conftest import WEB_HEADER, table_rows, write_csv


def web_rows(con):
    return con.execute(
        "SELECT event_id, occurred_at::VARCHAR, anonymous_id, event_name, email "
        "FROM raw_web_events ORDER BY event_id"
    ).fetchall()


def rejects(con):
    return con.execute(
        "SELECT source, file, row_number, reason FROM rejected_rows ORDER BY file, row_number"
    ).fetchall()


# -- time zones and emails -------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "zone", "utc"),
    [
        ("2025-01-10T10:00:00+02:00", "UTC", "2025-01-10 08:00:00"),
        ("2025-01-10T10:00:00Z", "Europe/Berlin", "2025-01-10 10:00:00"),
        ("2025-01-10 10:00:00", "UTC", "2025-01-10 10:00:00"),
        ("2025-01-10 10:00:00", "Europe/Berlin", "2025-01-10 09:00:00"),
        ("2025-07-10 10:00:00", "Europe/Berlin", "2025-07-10 08:00:00"),  # summer time
        ("2025-01-10 10:00:00", "America/New_York", "2025-01-10 15:00:00"),
        ("2025-01-10T10:00:00.250-0530", "UTC", "2025-01-10 15:30:00.25"),
        ("2025-01-10", "UTC", "2025-01-10 00:00:00"),
    ],
)
def test_timestamps_are_converted_to_utc(con, tmp_path, text, zone, utc):
    write_csv(tmp_path, "web_events.csv", WEB_HEADER, f"w1,{text},a1,page_view,")
    config = IngestConfig(sources={"web_events": {"timezone": zone}})
    ingest.load_exports(con, tmp_path, config)
    assert web_rows(con)[0][1] == utc


def test_default_source_time_zone_applies_to_every_source(con, tmp_path):
    write_csv(tmp_path, "web_events.csv", WEB_HEADER, "w1,2025-01-10 10:00:00,a1,page_view,")
    ingest.load_exports(con, tmp_path, IngestConfig(timezone="Asia/Tokyo"))
    assert web_rows(con)[0][1] == "2025-01-10 01:00:00"


def test_emails_are_lower_cased_and_trimmed(con, tmp_path):
    write_csv(tmp_path, "web_events.csv", WEB_HEADER,
              'w1,2025-01-10T10:00:00Z,a1,form_submit,"  Ann.Lee@ACME.com "')
    ingest.load_exports(con, tmp_path)
    assert web_rows(con)[0][4] == "ann.lee@acme.com"


# -- formats -------------------------------------------------------------------------

ROWS = [
    {"event_id": "w1", "occurred_at": "2025-01-10T10:00:00+01:00", "anonymous_id": "a1",
     "event_name": "page_view", "email": None},
    {"event_id": "w2", "occurred_at": "2025-01-11T10:00:00Z", "anonymous_id": "a1",
     "event_name": "form_submit", "email": "Ann@Acme.com"},
]
EXPECTED = [("w1", "2025-01-10 09:00:00", "a1", "page_view", None),
            ("w2", "2025-01-11 10:00:00", "a1", "form_submit", "ann@acme.com")]


@pytest.mark.parametrize("name", ["web_events.csv", "web_events.csv.gz", "web_events.parquet",
                                  "web_events.jsonl", "web_events.jsonl.gz"])
def test_every_format_loads_the_same_rows(con, tmp_path, name):
    path = tmp_path / name
    frame = pd.DataFrame(ROWS)
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    elif ".jsonl" in name:
        text = "".join(json.dumps(r) + "\n" for r in ROWS).encode()
        path.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    else:
        frame.to_csv(path, index=False, compression="gzip" if name.endswith(".gz") else None)
    ingest.load_exports(con, tmp_path)
    assert web_rows(con) == EXPECTED


def test_typed_parquet_timestamps_keep_their_instant(con, tmp_path):
    frame = pd.DataFrame({"event_id": ["w1"], "anonymous_id": ["a1"], "event_name": ["x"],
                          "occurred_at": [pd.Timestamp("2025-01-10 10:00", tz="Europe/Paris")]})
    frame.to_parquet(tmp_path / "web_events.parquet")
    ingest.load_exports(con, tmp_path)
    assert web_rows(con)[0][1] == "2025-01-10 09:00:00"


def test_config_renames_columns_and_points_at_other_file_names(con, tmp_path):
    write_csv(tmp_path, "hubspot_export.csv", "Record ID,Date,Company,Type",
              "r1,2025-01-10T10:00:00Z,acc1,Meeting")
    config = IngestConfig(sources={"crm_activities": {
        "files": ["hubspot_*"],
        "columns": {"Record ID": "activity_id", "Date": "occurred_at", "Company": "account_id",
                    "Type": "activity_type"}}})
    ingest.load_exports(con, tmp_path, config)
    assert con.execute(
        "SELECT activity_id, account_id, activity_type FROM raw_crm_activities").fetchall() == [
        ("r1", "acc1", "Meeting")]


# -- bad input -------------------------------------------------------------------------

def test_row_without_required_value_is_rejected_with_file_row_and_reason(con, tmp_path):
    write_csv(tmp_path, "web_events.csv", WEB_HEADER,
              "w1,2025-01-10T10:00:00Z,a1,page_view,",
              ",2025-01-10T10:00:00Z,a1,page_view,",
              "w3,2025-01-10T10:00:00Z,,page_view,")
    report = ingest.load_exports(con, tmp_path)
    assert rejects(con) == [
        ("web_events", "web_events.csv", 3, "missing required value: event_id"),
        ("web_events", "web_events.csv", 4, "missing required value: anonymous_id"),
    ]
    assert (report.rows_loaded, report.rows_rejected) == (1, 2)


def test_unparseable_timestamp_is_rejected_and_raw_row_kept(con, tmp_path):
    write_csv(tmp_path, "web_events.csv", WEB_HEADER, "w1,2024-02-30 10:00,a1,page_view,")
    ingest.load_exports(con, tmp_path)
    (reason, raw), = con.execute("SELECT reason, raw FROM rejected_rows").fetchall()
    assert reason.startswith("unparseable timestamp in occurred_at: 2024-02-30 10:00 (set "
                             "ingest.sources.web_events.timestamp_format")
    assert json.loads(raw) == {"event_id": "w1", "occurred_at": "2024-02-30 10:00",
                               "anonymous_id": "a1", "event_name": "page_view", "email": None}


def test_csv_line_with_too_many_fields_is_rejected_with_its_line_number(con, tmp_path):
    write_csv(tmp_path, "web_events.csv", WEB_HEADER,
              "w1,2025-01-10T10:00:00Z,a1,page_view,",
              "w2,2025-01-10T10:00:00Z,a1,page_view,,surplus",
              "w3,2025-01-10T10:00:00Z,a1,page_view,")
    ingest.load_exports(con, tmp_path)
    assert [r[2] for r in rejects(con)] == [3]
    assert con.execute("SELECT raw FROM rejected_rows").fetchall()[0][0].endswith("surplus")
    assert con.execute(
        "SELECT event_id, _row_number FROM raw_web_events ORDER BY 1").fetchall() == [
        ("w1", 2), ("w3", 4)]


def test_malformed_jsonl_line_is_rejected_with_its_line_number(con, tmp_path):
    (tmp_path / "email_events.jsonl").write_text(
        '{"event_id":"m1","occurred_at":"2025-01-10T10:00:00Z","email":"a@b.co","event_type":"open"}\n'
        '{"event_id":"m2", broken\n'
        '\n'
        '["not", "an", "object"]\n')
    ingest.load_exports(con, tmp_path)
    assert [(r[2], r[3]) for r in rejects(con)] == [
        (2, "unreadable row: malformed JSON"), (4, "unreadable row: not a JSON object")]


def test_conflicting_duplicate_is_rejected_and_first_version_kept(con, tmp_path):
    write_csv(tmp_path, "web_events.csv", WEB_HEADER,
              "w1,2025-01-10T10:00:00Z,a1,page_view,",
              "w1,2025-01-10T10:00:00Z,a1,pricing_view,")
    ingest.load_exports(con, tmp_path)
    assert web_rows(con) == [("w1", "2025-01-10 10:00:00", "a1", "page_view", None)]
    assert rejects(con) == [("web_events", "web_events.csv", 3,
                             "conflicting duplicate: event_id w1 first seen in web_events.csv "
                             "row 2 with different content")]


def test_missing_required_column_names_file_and_column_and_loads_nothing(con, tmp_path):
    write_csv(tmp_path, "crm_accounts.csv", "account_id,name", "acc1,Acme")
    bad = write_csv(tmp_path, "web_events.csv", "event_id,occurred_at,event_name",
                    "w1,2025-01-10T10:00:00Z,page_view")
    with pytest.raises(MissingColumnError) as error:
        ingest.load_exports(con, tmp_path)
    assert str(bad) in str(error.value) and "'anonymous_id'" in str(error.value)
    assert table_rows(con, "raw_crm_accounts") == []
    assert table_rows(con, "loads") == []


def test_an_export_of_no_supported_format_is_an_error(con, tmp_path):
    write_csv(tmp_path, "crm_accounts.csv", "account_id,name", "acc1,Acme")
    write_csv(tmp_path, "web_events.xlsx", "a,b", "1,2")
    with pytest.raises(UnknownFileError, match="web_events.xlsx: unsupported format"):
        ingest.load_exports(con, tmp_path)
    assert table_rows(con, "raw_crm_accounts") == []


def test_a_file_that_matches_no_source_is_skipped_with_the_patterns_in_force(con, tmp_path):
    write_csv(tmp_path, "crm_accounts.csv", "account_id,name", "acc1,Acme")
    (tmp_path / "README.txt").write_text("exported from HubSpot on Monday\n")
    report = ingest.load_exports(con, tmp_path)
    assert report.rows_loaded == 1 and report.rows_rejected == 0
    (warning,) = [w for w in report.warnings if "README.txt" in w]
    assert "skipped, file name matches no source (patterns: crm_accounts: crm_accounts*" in warning
    assert "ingest.strict: true" in warning


def test_strict_discovery_makes_an_unmatched_file_an_error(con, tmp_path):
    write_csv(tmp_path, "crm_accounts.csv", "account_id,name", "acc1,Acme")
    write_csv(tmp_path, "contacts_2025.csv", "a,b", "1,2")
    config = IngestConfig(strict=True, sources={"crm_contacts": {"files": ["people_*"]}})
    with pytest.raises(UnknownFileError, match=r"contacts_2025.csv: file name matches no "
                                               r"source \(patterns: .*crm_contacts: people_\*"):
        ingest.load_exports(con, tmp_path, config)
    assert table_rows(con, "raw_crm_accounts") == []


def test_file_patterns_match_in_any_letter_case(con, tmp_path):
    write_csv(tmp_path, "HubSpot_Accounts_Oct.CSV", "account_id,name", "acc1,Acme")
    config = IngestConfig(sources={"crm_accounts": {"files": ["hubspot_accounts*"]}})
    report = ingest.load_exports(con, tmp_path, config)
    assert report.rows_loaded == 1 and not report.warnings


def test_failure_half_way_leaves_the_warehouse_as_it_was(con, tmp_path, monkeypatch):
    write_csv(tmp_path / "first", "crm_accounts.csv", "account_id,name", "acc1,Acme")
    ingest.load_exports(con, tmp_path / "first")
    before = {t: table_rows(con, t) for t in ("raw_crm_accounts", "raw_web_events",
                                              "rejected_rows", "loads", "load_files")}
    write_csv(tmp_path / "second", "crm_accounts.csv", "account_id,name", "acc2,Beta")
    write_csv(tmp_path / "second", "web_events.csv", WEB_HEADER,
              "w1,2025-01-10T10:00:00Z,a1,page_view,", "w2,bad,a1,page_view,")
    real = ingest._reconcile

    def crash_on_web(con_, spec, *args):
        if spec.name == "web_events":  # accounts were already written in this load
            raise OSError("disk full")
        return real(con_, spec, *args)

    monkeypatch.setattr(ingest, "_reconcile", crash_on_web)
    with pytest.raises(OSError):
        ingest.load_exports(con, tmp_path / "second")
    after = {t: table_rows(con, t) for t in before}
    assert after == before
    # nor do the staged rows stay in memory on the connection
    assert not con.execute("SELECT table_name FROM duckdb_tables() "
                           "WHERE starts_with(table_name, '_stage_')").fetchall()


def test_process_killed_mid_load_leaves_the_warehouse_usable_and_unchanged(tmp_path):
    db = tmp_path / "w.duckdb"
    write_csv(tmp_path / "first", "crm_accounts.csv", "account_id,name", "acc1,Acme")
    write_csv(tmp_path / "second", "crm_accounts.csv", "account_id,name", "acc2,Beta")
    write_csv(tmp_path / "second", "web_events.csv", WEB_HEADER,
              "w1,2025-01-10T10:00:00Z,a1,page_view,")
    script = textwrap.dedent(f"""
        import os
        from journey_mining import ingest, warehouse
        from journey_mining.config import IngestConfig
        con = warehouse.connect({str(db)!r})
        ingest.load_exports(con, {str(tmp_path / 'first')!r})
        con.close()
        con = warehouse.connect({str(db)!r})
        real = ingest._reconcile
        def die(con_, spec, *args):
            if spec.name == "web_events":
                os._exit(9)   # killed: no rollback, no close
            return real(con_, spec, *args)
        ingest._reconcile = die
        ingest.load_exports(con, {str(tmp_path / 'second')!r}, IngestConfig(staging="disk"))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert result.returncode == 9, result.stderr.decode()
    staging = tmp_path / "w.duckdb.staging"
    assert staging.exists()  # the killed load had staged its rows beside the warehouse
    con = duckdb.connect(str(db))
    assert con.execute("SELECT account_id FROM raw_crm_accounts").fetchall() == [("acc1",)]
    assert con.execute("SELECT count(*) FROM loads").fetchall() == [(1,)]
    con.close()
    # The next load starts clean: the stale staging file is not read, and is gone after.
    con = warehouse.connect(db)
    report = ingest.load_exports(con, tmp_path / "second", IngestConfig(staging="disk"))
    assert (report.rows_loaded, report.rows_duplicate) == (2, 0)
    assert not staging.exists()


@pytest.mark.parametrize("staging", ["memory", "disk"])
def test_staging_on_disk_or_in_memory_loads_the_same(tmp_path, staging):
    """Large loads stage on disk (compressed, beside the warehouse), small ones in
    memory: the same rows, rejects and counts either way, and nothing left behind."""
    a, b = _overlap_fixture(tmp_path)
    db = tmp_path / "w.duckdb"
    con = warehouse.connect(db)
    config = IngestConfig(staging=staging)
    assert _counts(ingest.load_exports(con, a, config)) == (7, 5, 0, 2, 0)
    assert _counts(ingest.load_exports(con, b, config)) == (8, 3, 3, 2, 1)
    assert [r[0] for r in web_rows(con)] == ["w1", "w2", "w3", "w5", "w6", "w7"]
    assert [r[2:] for r in rejects(con) if r[3].startswith("conflicting")] == [
        (5, "conflicting duplicate: event_id w1 was loaded before from "
            "web_events_2025-01.csv row 2 with different content"),
        (9, "conflicting duplicate: event_id w7 first seen in web_events_2025-01-28.csv "
            "row 8 with different content")]
    assert not [p for p in tmp_path.iterdir() if ".staging" in p.name]


# -- idempotence and overlapping exports ----------------------------------------------

def _overlap_fixture(tmp_path):
    """Export a, then export b overlapping it. Counts below are worked out by hand."""
    a, b = tmp_path / "a", tmp_path / "b"
    write_csv(a, "crm_accounts.csv", "account_id,name", "acc1,Acme", "acc2,Beta")
    write_csv(a, "web_events_2025-01.csv", WEB_HEADER,
              "w1,2025-01-10T09:00:00Z,anon1,page_view,",                 # new
              'w2,2025-01-11T10:00:00+01:00,anon1,form_submit," Ann@Acme.COM "',  # new
              "w3,2025-01-30T12:00:00Z,anon2,page_view,",                 # new
              "w4,not-a-date,anon2,page_view,",                           # rejected
              ",2025-01-31T08:00:00Z,anon3,page_view,")                   # rejected
    write_csv(b, "crm_accounts.csv", "account_id,name", "acc1,Acme", "acc2,Beta")  # same bytes
    write_csv(b, "web_events_2025-01-28.csv", WEB_HEADER,
              "w3,2025-01-30T13:00:00+01:00,anon2,page_view,",            # duplicate of a
              "w5,2025-02-01T09:00:00Z,anon2,pricing_view,",              # new
              "w2,2025-01-11T09:00:00Z,anon1,form_submit,ann@acme.com",   # duplicate of a
              "w1,2025-01-10T09:00:00Z,anon1,pricing_view,",              # conflict with a
              "w6,2025-02-02T09:00:00Z,anon3,page_view,",                 # new
              "w6,2025-02-02T09:00:00Z,anon3,page_view,",                 # duplicate in b
              "w7,2025-02-03T09:00:00Z,anon3,page_view,",                 # new
              "w7,2025-02-03T10:00:00Z,anon3,page_view,")                 # conflict in b
    return a, b


def _counts(report):
    return (report.rows_read, report.rows_loaded, report.rows_duplicate, report.rows_rejected,
            report.files_skipped)


def test_overlapping_exports_load_exactly_once(con, tmp_path):
    a, b = _overlap_fixture(tmp_path)
    assert _counts(ingest.load_exports(con, a)) == (7, 5, 0, 2, 0)
    assert _counts(ingest.load_exports(con, a)) == (0, 0, 0, 0, 2)  # unchanged files skipped
    assert _counts(ingest.load_exports(con, b)) == (8, 3, 3, 2, 1)  # accounts file: same bytes
    assert [r[0] for r in web_rows(con)] == ["w1", "w2", "w3", "w5", "w6", "w7"]
    assert web_rows(con)[0][3] == "page_view"  # w1's first version stays
    assert len(rejects(con)) == 4
    # Forced re-reads of both folders add nothing and record no reject twice.
    assert _counts(ingest.load_exports(con, a, full_reload=True)) == (7, 0, 5, 2, 0)
    assert _counts(ingest.load_exports(con, b, full_reload=True)) == (10, 0, 8, 2, 0)
    assert len(web_rows(con)) == 6 and len(rejects(con)) == 4
    assert con.execute("SELECT count(*) FROM raw_crm_accounts").fetchall() == [(2,)]


def test_loads_table_records_each_load(con, tmp_path):
    a, b = _overlap_fixture(tmp_path)
    ingest.load_exports(con, a)
    ingest.load_exports(con, b)
    assert con.execute(
        "SELECT load_id, files_seen, files_read, files_skipped, rows_read, rows_loaded, "
        "rows_duplicate, rows_rejected FROM loads ORDER BY load_id").fetchall() == [
        (1, 2, 2, 0, 7, 5, 0, 2), (2, 2, 1, 1, 8, 3, 3, 2)]
    assert con.execute(
        "SELECT file, status, rows_loaded FROM load_files WHERE load_id = 2 ORDER BY file"
    ).fetchall() == [("crm_accounts.csv", "skipped", 0), ("web_events_2025-01-28.csv", "read", 3)]


def test_auto_staging_goes_to_disk_when_the_files_outgrow_half_the_memory_limit(
        tmp_path, monkeypatch):
    """`auto` stages on disk when the files (a gzip file counted five times) would take
    more than half of DuckDB's memory limit, in memory otherwise."""
    a, _ = _overlap_fixture(tmp_path)
    db = tmp_path / "w.duckdb"
    size = sum(p.stat().st_size for p in a.iterdir())
    seen = []

    def on_file(_f):
        seen.append((tmp_path / "w.duckdb.staging").exists())

    for limit, expected in ((2 * size, False), (2 * size - 1, True)):
        monkeypatch.setattr(ingest, "_memory_limit_bytes", lambda _con, n=limit: n)
        seen.clear()
        con = warehouse.connect(db)
        ingest.load_exports(con, a, full_reload=True, on_file=on_file)
        con.close()
        assert set(seen) == {expected}
    assert not (tmp_path / "w.duckdb.staging").exists()


@pytest.mark.parametrize("setting, expected", [("3GB", 3e9), ("512MB", 512e6), ("8GiB", 8 * 2**30)])
def test_the_memory_limit_is_read_back_from_duckdb_in_bytes(setting, expected):
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{setting}'")
    # DuckDB reports it rounded to one decimal in binary units ("2.7 GiB")
    assert abs(ingest._memory_limit_bytes(con) - expected) / expected < 0.04
