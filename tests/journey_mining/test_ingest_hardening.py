"""Ingest under attack and carelessness (issue 10): nothing leaked, nothing lost, nothing
counted twice, nothing from the future taking over."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import pandas as pd
import pytest

from journey_mining import build, ingest, warehouse
from journey_mining.config import AnalysisParams, IngestConfig
from journey_mining.errors import MissingColumnError, UnreadableFileError
from tests.conftest import WEB_HEADER, write_csv
from tests.journeys_fixture import AS_OF, write_journey_exports

KEY = "k3y"


def every_text(con) -> str:
    """Every text value of every table and view column of the warehouse, one per line."""
    chunks = []
    for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
        for row in con.execute(f"SELECT * FROM {table}").fetchall():
            chunks.extend(str(v) for v in row if isinstance(v, str))
    return "\n".join(chunks)


# -- 1. pseudonymisation leaks nothing ------------------------------------------------------

@pytest.fixture
def private_with_dirt(tmp_path):
    folder = write_journey_exports(tmp_path / "in")
    write_csv(folder, "web_events_dirt.csv", WEB_HEADER + ",page_url",
              # too many fields: the reader cannot split it
              "wd1,2025-02-01T09:00:00Z,visitor-secret-1,page_view,mia@acme.com,/x,extra,more",
              # too few fields
              "wd2,2025-02-01T09:00:00Z,visitor-secret-2",
              # an email and a visitor id inside a link of a valid row
              "wd3,2025-02-02T09:00:00Z,visitor-secret-3,page_view,,"
              "https://acme.com/form?email=Noah%40acme.com&vid=visitor-secret-3&c=nina@acme.com",
              # rejected (bad time) but splittable: its raw row is kept, pseudonymised
              "wd4,not a time,visitor-secret-4,form_submit,olga@acme.com,/y")
    with gzip.open(folder / "email_events_dirt.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"event_id": "md1", "occurred_at": "2025-02-03T09:00:00Z",
                                 "email": "pia@beta.io", "event_type": "click",
                                 "url": "https://beta.io/?e=quinn@beta.io"}) + "\n")
        handle.write('{"event_id": "md2", "occurred_at": "2025-02-03", "email": "rob@beta.io"\n')
        # valid JSON, rejected (bad time): its line is the raw row, pseudonymised
        handle.write(json.dumps({"event_id": "md3", "occurred_at": "soon", "email": "sara@beta.io",
                                 "event_type": "click", "url": "https://beta.io/?e=tom@beta.io",
                                 "note": "kept"}) + "\n")
    # a short visitor id is not searched for inside text, but its own key is hashed
    (folder / "web_events_dirt.jsonl").write_text(json.dumps(
        {"event_id": "wd5", "occurred_at": "later", "anonymous_id": "vs5",
         "event_name": "page_view", "email": "uma@acme.com"}) + "\n")
    con = warehouse.connect()
    ingest.load_exports(con, folder, IngestConfig(pseudonymise=True), pseudonym_key=KEY)
    build.build(con, AnalysisParams(), as_of=AS_OF)
    yield con
    con.close()


SECRETS = ["mia@acme.com", "noah@acme.com", "Noah%40acme.com", "nina@acme.com",
           "olga@acme.com", "pia@beta.io", "quinn@beta.io", "rob@beta.io", "ann@acme.com",
           "visitor-secret-1", "visitor-secret-2", "visitor-secret-3", "visitor-secret-4", KEY,
           "sara@beta.io", "tom@beta.io", "uma@acme.com", '"vs5"']


@pytest.mark.parametrize("secret", SECRETS)
def test_no_input_identifier_is_stored_in_clear_anywhere(private_with_dirt, secret):
    assert secret.lower() not in every_text(private_with_dirt).lower()


def test_embedded_email_gets_the_same_pseudonym_as_the_email_column(private_with_dirt):
    url = private_with_dirt.execute(
        "SELECT page_url FROM raw_web_events WHERE event_id = 'wd3'").fetchall()[0][0]
    assert ingest.pseudonymise_value("noah@acme.com", KEY, True) in url
    assert ingest.pseudonymise_value("visitor-secret-3", KEY, False) in url


def test_unsplittable_rows_keep_their_shape_and_line(private_with_dirt):
    rows = private_with_dirt.execute(
        "SELECT file, row_number, raw FROM rejected_rows ORDER BY file, row_number").fetchall()
    by_line = {(f, n): raw for f, n, raw in rows}
    wd1 = by_line[("web_events_dirt.csv", 2)]
    assert wd1.count(",") == 7 and "2025-02-01T09:00:00Z" in wd1
    assert ingest.pseudonymise_value("mia@acme.com", KEY, True) in wd1
    assert ("email_events_dirt.jsonl.gz", 2) in by_line
    # a valid JSONL line that was rejected keeps every key, its private values hashed
    md3 = json.loads(by_line[("email_events_dirt.jsonl.gz", 3)])
    assert md3["note"] == "kept" and md3["occurred_at"] == "soon"
    assert md3["email"] == ingest.pseudonymise_value("sara@beta.io", KEY, True)
    assert ingest.pseudonymise_value("tom@beta.io", KEY, True) in md3["url"]
    wd5 = json.loads(by_line[("web_events_dirt.jsonl", 1)])
    assert wd5["anonymous_id"] == ingest.pseudonymise_value("vs5", KEY, False)


# -- 2. far-future timestamps --------------------------------------------------------------

def test_a_far_future_timestamp_is_rejected_with_a_reason(con, tmp_path):
    write_csv(tmp_path, "web_events.csv", WEB_HEADER,
              "w1,2025-01-10T10:00:00Z,a1,page_view,", "w2,2999-01-01T00:00:00Z,a1,page_view,")
    report = ingest.load_exports(con, tmp_path)
    assert report.rows_loaded == 1 and report.rows_rejected == 1
    (reason,) = con.execute("SELECT reason FROM rejected_rows").fetchall()[0]
    assert reason.startswith("timestamp in the future: occurred_at 2999-01-01 00:00:00")
    assert "ingest.future_tolerance_hours" in reason


def test_the_future_tolerance_is_a_setting(con, tmp_path):
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_csv(tmp_path, "web_events.csv", WEB_HEADER, f"w1,{soon},a1,page_view,")
    report = ingest.load_exports(con, tmp_path, IngestConfig(future_tolerance_hours=48))
    assert report.rows_loaded == 1


def test_default_as_of_never_exceeds_the_build_time(con):
    # Rows loaded before this check existed may still be in the future.
    warehouse.ensure_schema(con)
    con.execute("INSERT INTO raw_web_events (event_id, occurred_at, anonymous_id, event_name, "
                "_load_id, _file, _row_number, _row_hash) VALUES "
                "('w1', '2999-01-01', 'a', 'page_view', 1, 'f', 2, 'h')")
    build.build(con, AnalysisParams())
    as_of = con.execute("SELECT as_of FROM run_parameters").fetchall()[0][0]
    assert as_of <= dt.datetime.now(dt.UTC).replace(tzinfo=None)


# -- 4. one bad row is one entry, at its true line -----------------------------------------

def test_one_unreadable_row_is_one_reject_with_every_reason(con, tmp_path):
    write_csv(tmp_path, "web_events.csv", WEB_HEADER,
              "w1,2025-01-10T10:00:00Z,a1,page_view,",
              "w2,2025-01-10T10:00:00Z",                           # 3 fields missing
              "w3,2025-01-10T10:00:00Z,a1,page_view,,x,y",         # 2 extra fields
              "w4,2025-01-10T10:00:00Z,a1,page_view,")
    report = ingest.load_exports(con, tmp_path)
    rows = con.execute("SELECT row_number, reason FROM rejected_rows ORDER BY 1").fetchall()
    assert [n for n, _ in rows] == [3, 4]
    assert "missing columns" in rows[0][1] and "too many columns" in rows[1][1]
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (4, 2, 2)


def test_row_numbers_stay_true_after_embedded_newlines_and_blank_lines(con, tmp_path):
    (tmp_path / "web_events.csv").write_text(
        "event_id,occurred_at,anonymous_id,event_name,email,page_url\n"
        'w1,2025-01-10T10:00:00Z,a1,page_view,,"two\nlines"\n'        # lines 2-3
        "\n"                                                          # line 4: blank
        "w2,2025-01-10T10:00:00Z,a1,page_view,,/a\n"                  # line 5
        "w3,2025-01-10T10:00:00Z\n"                                   # line 6: broken
        'w4,2025-01-10T10:00:00Z,a1,page_view,,"three\nmore\nlines"\n'  # lines 7-9
        "w5,not a time,a1,page_view,,/b\n")                           # line 10: rejected
    ingest.load_exports(con, tmp_path)
    loaded = con.execute("SELECT event_id, _row_number FROM raw_web_events ORDER BY 1").fetchall()
    assert loaded == [("w1", 2), ("w2", 5), ("w4", 7)]
    rejected = con.execute("SELECT row_number FROM rejected_rows ORDER BY 1").fetchall()
    assert rejected == [(6,), (10,)]


# -- 5. encodings --------------------------------------------------------------------------

def latin1_file(folder):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "crm_accounts.csv"
    path.write_bytes("account_id,name\nA1,Café Müller\nA2,Société Générale\nA3,Plain\n"
                     .encode("latin-1"))
    return path


def test_a_file_mostly_in_another_encoding_is_an_error_that_names_the_setting(con, tmp_path):
    latin1_file(tmp_path)
    with pytest.raises(UnreadableFileError, match="ingest.sources.crm_accounts.encoding"):
        ingest.load_exports(con, tmp_path)
    assert con.execute("SELECT count(*) FROM raw_crm_accounts").fetchall() == [(0,)]


def test_a_few_latin1_rows_are_rejected_naming_the_setting_that_reads_them(con, tmp_path):
    """3 of 12 accounts in Latin-1 were dropped with a reason that did not say what to set
    (issue 27); the reason names it now."""
    rows = [f"a{i},Plain {i}".encode() for i in range(9)] + [
        "b1,Café Müller".encode("latin-1"), "b2,Société Générale".encode("latin-1"),
        "b3,Ärzte Köln".encode("latin-1")]
    (tmp_path / "crm_accounts.csv").write_bytes(b"account_id,name\n" + b"\n".join(rows)
                                                + b"\n")
    report = ingest.load_exports(con, tmp_path)
    assert (report.rows_loaded, report.rows_rejected) == (9, 3)
    reasons = [r[0] for r in con.execute("SELECT reason FROM rejected_rows").fetchall()]
    assert all("set ingest.sources.crm_accounts.encoding: latin-1" in r for r in reasons)
    assert f"{tmp_path / 'crm_accounts.csv'}: 3 rows are not valid UTF-8 and were rejected; " \
           "set ingest.sources.crm_accounts.encoding: latin-1" in " ".join(report.warnings)


def test_the_encoding_setting_reads_latin1(con, tmp_path):
    latin1_file(tmp_path)
    config = IngestConfig(sources={"crm_accounts": {"encoding": "latin-1"}})
    ingest.load_exports(con, tmp_path, config)
    names = [r[0] for r in con.execute("SELECT name FROM raw_crm_accounts ORDER BY 1").fetchall()]
    assert names == ["Café Müller", "Plain", "Société Générale"]


# -- 6. other holes ------------------------------------------------------------------------

def test_integral_float_ids_from_parquet_match_text_ids(con, tmp_path):
    pd.DataFrame({"account_id": [900000.0], "name": ["Acme"]}).to_parquet(
        tmp_path / "crm_accounts_1.parquet")
    write_csv(tmp_path, "crm_accounts_2.csv", "account_id,name", "900000,Acme")
    report = ingest.load_exports(con, tmp_path)
    assert con.execute("SELECT account_id FROM raw_crm_accounts").fetchall() == [("900000",)]
    assert (report.rows_loaded, report.rows_duplicate) == (1, 1)


def test_a_header_only_file_records_no_load(con, tmp_path):
    write_csv(tmp_path, "web_events.csv", WEB_HEADER)
    report = ingest.load_exports(con, tmp_path)
    assert not report.recorded and report.files_empty == 1
    assert any("no data rows" in w for w in report.warnings)
    assert con.execute("SELECT count(*) FROM loads").fetchall() == [(0,)]


def test_a_mapping_from_a_column_the_file_lacks_is_reported(con, tmp_path):
    write_csv(tmp_path, "web_events.csv", WEB_HEADER, "w1,2025-01-10T10:00:00Z,a1,page_view,")
    config = IngestConfig(sources={"web_events": {"columns": {"Page URL": "page_url"}}})
    report = ingest.load_exports(con, tmp_path, config)
    assert report.warnings == ["web_events.csv: ingest.sources.web_events.columns maps "
                               "'Page URL' to 'page_url', but the file has no column 'Page URL'"]


def test_a_missing_required_column_names_the_mapping_that_did_not_apply(con, tmp_path):
    write_csv(tmp_path, "web_events.csv", "id,occurred_at,anonymous_id,event_name",
              "w1,2025-01-10T10:00:00Z,a1,page_view")
    config = IngestConfig(sources={"web_events": {"columns": {"Event ID": "event_id"}}})
    with pytest.raises(MissingColumnError, match="maps 'Event ID' to it"):
        ingest.load_exports(con, tmp_path, config)


def test_jsonl_keys_absent_null_or_renamed_are_told_apart(con, tmp_path):
    """JSONL is read for the source's columns and the config's renames only: a key that
    is always null is still a column (its rows are rejected for the value), a key that
    never occurs is a missing column, named with the keys the file does have."""
    lines = [{"Event ID": "w1", "occurred_at": "2025-01-10T10:00:00Z", "anonymous_id": None,
              "event_name": "page_view", "extra": 1},
             {"Event ID": "w2", "occurred_at": "2025-01-10T11:00:00Z", "anonymous_id": None,
              "event_name": "page_view"}]
    (tmp_path / "web_events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    config = IngestConfig(sources={"web_events": {"columns": {"Event ID": "event_id"}}})
    report = ingest.load_exports(con, tmp_path, config)
    assert report.rows_rejected == 2
    assert {r[0] for r in con.execute("SELECT reason FROM rejected_rows").fetchall()} == {
        "missing required value: anonymous_id"}
    raw = json.loads(con.execute(
        "SELECT raw FROM rejected_rows WHERE row_number = 1").fetchall()[0][0])
    assert raw == lines[0]  # the line as written, keys the pipeline does not use included

    (tmp_path / "web_events.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in x.items() if k != "anonymous_id"}) + "\n"
                for x in lines))
    with pytest.raises(MissingColumnError,
                       match=r"'anonymous_id'.*file has: Event ID, event_name, extra, "
                             r"occurred_at\)"):
        ingest.load_exports(con, tmp_path, config, full_reload=True)


# -- line numbers of a large CSV with a break ------------------------------------------------

def test_numbering_the_lines_of_a_big_csv_with_one_blank_line_holds_no_list_per_line(
        tmp_path, con):
    """One trailing blank line sent a 1.66 GB file from 3.2 GB to 5.8 GB of memory: the
    line numbers were a Python list with an entry per line. They are runs now, one per
    break, so the Python heap of the load stays small whatever the file's length."""
    import tracemalloc

    folder = tmp_path / "in"
    folder.mkdir()
    lines = [f"e{i},2025-01-01T00:00:00Z,v{i % 97},page_view,\n" for i in range(200_000)]
    (folder / "web_events.csv").write_text(WEB_HEADER + "\n" + "".join(lines) + "\n")
    tracemalloc.start()
    try:
        report = ingest.load_exports(con, folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.rows_loaded == 200_000
    assert con.execute("SELECT min(_row_number), max(_row_number) FROM raw_web_events"
                       ).fetchall() == [(2, 200_001)]
    assert peak < 8 * 2**20  # a list per line: over 30 MB for these 200,000 lines


@pytest.mark.parametrize(("delimiter", "encoding"), [
    (None, None), (";", None), ("|", "latin-1"), (None, "utf-16")])
def test_a_lone_quote_beside_blank_lines_and_multi_line_fields_loses_no_record(
        tmp_path, con, delimiter, encoding):
    d = delimiter or ","
    text = (d.join(["event_id", "occurred_at", "anonymous_id", "event_name", "page_url"]) + "\n"
            + d.join(["e1", "2025-05-01 10:00:00", "v", "page_view", "https://a.io/x"]) + "\n\n"
            + d.join(["e2", "2025-05-01 10:00:00", "v", "page_view",
                      'https://a.io/27in-5"-monitor']) + "\n"
            + d.join(["e3", "2025-05-01 10:00:00", "v", "page_view", '"multi\nline"']) + "\n"
            + d.join(["e4", "2025-05-01 10:00:00", "v"]) + "\n"
            + d.join(["e5", "2025-05-01 10:00:00", "v", "page_view", '"a ""b"" c"']) + "\n")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "web_events.csv").write_bytes(text.encode(encoding or "utf-8"))
    source = {k: v for k, v in (("delimiter", delimiter), ("encoding", encoding)) if v}
    report = ingest.load_exports(con, folder, IngestConfig(sources={"web_events": source}))
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (5, 4, 1)
    assert report.warnings == []
    assert con.execute("SELECT event_id, _row_number FROM raw_web_events ORDER BY 1"
                       ).fetchall() == [("e1", 2), ("e2", 4), ("e3", 5), ("e5", 8)]
    assert con.execute("SELECT row_number FROM rejected_rows").fetchall() == [(7,)]


@pytest.mark.parametrize(("written", "utc"), [
    ("2025-05-01 10:00:00", "2025-05-01 14:00:00"),              # the configured New York
    ("2025-05-01 10:00:00 UTC", "2025-05-01 10:00:00"),
    ("2025-05-01 10:00:00 EST", "2025-05-01 15:00:00"),          # EST is -05:00 in May too
    ("2025-05-01 10:00:00 EDT", "2025-05-01 14:00:00"),
    ("2025-05-01 10:00:00 Europe/Berlin", "2025-05-01 08:00:00"),
    ("2025-05-01 10:00:00 Etc/GMT+2", "2025-05-01 12:00:00"),    # POSIX sign: UTC-2
    ("2025-05-01 10:00:00 GMT+2", "2025-05-01 08:00:00"),
    ("2025-05-01 10:00:00 UTC-05:00", "2025-05-01 15:00:00"),
    ("2025-05-01 10:00:00 EST5EDT", "2025-05-01 14:00:00"),
    ("2025-05-01 10:00:00 +02:00", "2025-05-01 08:00:00"),       # a space before the offset
    ("2025-05-01 10:00:00 PM", "2025-05-02 02:00:00"),           # 22:00 in New York
    ("2025-05-01 12:30 a.m.", "2025-05-01 04:30:00"),
    ("2025-05-01 10:00:00 IST", None),                           # India, Ireland or Israel
    ("2025-05-01 10:00:00 XYZ", None),
    ("2025-05-01 10:00:00 +2", None),
])
def test_the_zone_written_in_a_timestamp_wins_or_the_row_is_rejected(tmp_path, con, written,
                                                                     utc):
    folder = tmp_path / "in"
    write_csv(folder, "web_events.csv", WEB_HEADER, f"e1,{written},v,page_view,")
    ingest.load_exports(con, folder, IngestConfig(timezone="America/New_York"))
    stored = con.execute("SELECT strftime(occurred_at, '%Y-%m-%d %H:%M:%S') FROM raw_web_events"
                         ).fetchall()
    reasons = con.execute("SELECT reason FROM rejected_rows").fetchall()
    if utc is None:
        assert stored == [] and "time zone" in reasons[0][0]
    else:
        assert stored == [(utc,)] and reasons == []


def test_a_record_longer_than_the_readers_limit_names_its_true_line(con, tmp_path):
    """DuckDB said "CSV Error on Line: 1" for a 50 MB line 3 and the cause was cut off."""
    (tmp_path / "crm_accounts.csv").write_text(
        "account_id,name\nA1,Acme\nA2," + "x" * 3_000_000 + "\nA3,Beta\n")
    with pytest.raises(UnreadableFileError) as error:
        ingest.load_exports(con, tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'crm_accounts.csv'}: cannot be read: line 3 is 3.0 MB long, more than "
        "the 2 MB a CSV record may have: is it the right file?")


def test_mixed_line_endings_are_named_not_blamed_on_the_encoding(con, tmp_path):
    (tmp_path / "crm_accounts.csv").write_bytes(
        b"account_id,name\r\nA1,Acme\nA2,Beta\r\nA3,Gamma\rA4,Delta\n")
    with pytest.raises(UnreadableFileError) as error:
        ingest.load_exports(con, tmp_path)
    message = str(error.value)
    assert message.endswith("its lines end in different ways (2 \\r\\n, 2 \\n, 1 \\r alone), "
                            "so no CSV dialect can be detected: save it again with one kind "
                            "of line ending")
    assert "encoding" not in message
