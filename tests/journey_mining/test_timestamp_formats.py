"""Dates as exports write them (issue 27): US and European numeric dates, strptime formats
per source, and a file whose timestamps mostly fail is a setting to name, not rows to drop."""

from __future__ import annotations

import datetime as dt

import pytest

from journey_mining import ingest, warehouse
from journey_mining.config import IngestConfig
from journey_mining.errors import IngestError
from tests.conftest import write_csv

ACTIVITIES = "activity_id,occurred_at,account_id,activity_type"


def crm(folder, *rows):
    write_csv(folder, "crm_accounts.csv", "account_id,name", "A1,Acme", "A2,Beta")
    write_csv(folder, "crm_activities.csv", ACTIVITIES, *rows)
    return folder


def times(con):
    return [t for (t,) in con.execute(
        "SELECT occurred_at FROM raw_crm_activities ORDER BY activity_id").fetchall()]


US = ("x1,04/18/2024 03:00 PM,A1,meeting", "x2,04/19/2024 09:15 AM,A1,demo",
      "x3,05/02/2024 11:00 AM,A2,meeting")


def test_us_dates_without_a_setting_stop_the_load_naming_the_setting(tmp_path):
    folder = crm(tmp_path / "in", *US)
    con = warehouse.connect()
    with pytest.raises(IngestError) as error:
        ingest.load_exports(con, folder)
    message = str(error.value)
    assert message.startswith("crm_activities.csv: occurred_at does not read as a time in "
                              "3 of 3 rows (e.g. '04/18/2024 03:00 PM')")
    assert "ingest.sources.crm_activities.dayfirst: false" in message
    assert "\n" not in message
    # all or nothing: not even the accounts file was loaded
    assert con.execute("SELECT (SELECT count(*) FROM loads) + (SELECT count(*) FROM "
                       "raw_crm_accounts)").fetchall()[0][0] == 0


@pytest.mark.parametrize("setting", [{"dayfirst": False},
                                     {"timestamp_format": "%m/%d/%Y %I:%M %p"},
                                     {"timestamp_format": ["%Y", "%m/%d/%Y %I:%M %p"][1:]}])
def test_month_first_dates_read_with_either_setting_in_the_source_zone(tmp_path, setting):
    folder = crm(tmp_path / "in", *US)
    con = warehouse.connect()
    ingest.load_exports(con, folder, IngestConfig(sources={"crm_activities": {
        **setting, "timezone": "America/New_York"}}))
    # 3 PM in New York in April (EDT, -04:00) is 19:00 UTC
    assert times(con) == [dt.datetime(2024, 4, 18, 19, 0), dt.datetime(2024, 4, 19, 13, 15),
                          dt.datetime(2024, 5, 2, 15, 0)]


def test_day_first_dates_and_iso_values_in_the_same_file(tmp_path):
    folder = crm(tmp_path / "in", "x1,18/04/2024 15:00,A1,meeting", "x2,02.05.2024,A2,demo",
                 "x3,2024-06-01T08:00:00Z,A1,meeting")
    con = warehouse.connect()
    ingest.load_exports(con, folder, IngestConfig(sources={"crm_activities": {
        "dayfirst": True}}))
    assert times(con) == [dt.datetime(2024, 4, 18, 15, 0), dt.datetime(2024, 5, 2),
                          dt.datetime(2024, 6, 1, 8, 0)]


def test_a_format_with_an_offset_reads_the_offset_written(tmp_path):
    folder = crm(tmp_path / "in", "x1,18.04.2024 15:00 +0200,A1,meeting")
    con = warehouse.connect()
    ingest.load_exports(con, folder, IngestConfig(sources={"crm_activities": {
        "timestamp_format": "%d.%m.%Y %H:%M %z", "timezone": "America/New_York"}}))
    assert times(con) == [dt.datetime(2024, 4, 18, 13, 0)]


def test_ambiguous_dates_say_that_day_or_month_first_must_be_set(tmp_path):
    folder = crm(tmp_path / "in", "x1,04/05/2024 10:00,A1,meeting", "x2,03/02/2024 10:00,A1,demo",
                 "x3,01/02/2024 10:00,A2,demo")
    with pytest.raises(IngestError, match="read month first .* and day first .*set "
                                          "ingest.sources.crm_activities.dayfirst"):
        ingest.load_exports(warehouse.connect(), folder)


def test_a_few_bad_timestamps_are_rejected_rows_whose_reason_names_the_setting(tmp_path):
    folder = crm(tmp_path / "in", "x1,2024-04-18 15:00,A1,meeting", "x2,2024-04-19 09:00,A1,demo",
                 "x3,sometime in May,A2,meeting")
    con = warehouse.connect()
    report = ingest.load_exports(con, folder)
    assert report.rows_rejected == 1
    (reason,) = con.execute("SELECT reason FROM rejected_rows").fetchall()[0]
    assert reason.startswith("unparseable timestamp in occurred_at: sometime in May")
    assert "ingest.sources.crm_activities.timestamp_format" in reason


@pytest.mark.parametrize("bad, why", [("%m/%d", "names no full date"),
                                      ("nope", "is not a strptime format"),
                                      ("%Y-%m-%d %Q", "does not read what it writes")])
def test_a_format_that_cannot_read_a_date_is_a_config_error(bad, why):
    with pytest.raises(ValueError, match=why):
        IngestConfig(sources={"crm_activities": {"timestamp_format": bad}})


def test_numeric_dates_with_an_offset_read_with_dayfirst_as_the_error_says(tmp_path):
    folder = crm(tmp_path / "in", *(f"x{i},18/0{i}/2024 09:00 +0200,A1,meeting"
                                    for i in range(1, 4)))
    with pytest.raises(IngestError, match="they read with ingest.sources.crm_activities."
                                          "dayfirst: true"):
        ingest.load_exports(warehouse.connect(), folder)
    con = warehouse.connect()
    ingest.load_exports(con, folder, IngestConfig(sources={"crm_activities": {
        "dayfirst": True}}))
    assert times(con)[0] == dt.datetime(2024, 1, 18, 7, 0)  # 09:00 at +02:00


def test_every_file_that_needs_a_date_format_is_named_in_one_error(tmp_path):
    """Five US-dated files took five failing runs (one file named each time)."""
    folder = crm(tmp_path / "in", *US)
    write_csv(folder, "web_events.csv", "event_id,occurred_at,anonymous_id,event_name",
              *(f"w{i},04/2{i}/2024 10:00 AM,v{i},page_view" for i in range(3)))
    with pytest.raises(IngestError) as error:
        ingest.load_exports(warehouse.connect(), folder)
    message = str(error.value)
    assert message.startswith("crm_activities.csv: occurred_at does not read as a time")
    assert " | web_events.csv: occurred_at does not read as a time in 3 of 3 rows" in message
    assert "ingest.sources.web_events.dayfirst: false" in message and "\n" not in message
