"""Logs an analyst can open in other process-mining tools.

* XES: the account-level log at touchpoint (activity) level, every event, with
  its stage, channel and contact as event attributes; written by DuckDB, streamed.
* OCEL 2.0: the object-centric view: each touchpoint is an event related to its
  account, contact, opportunity and campaign objects; contacts and opportunities
  are related to their account (object-to-object "belongs to"), each object with its
  attributes; written by DuckDB, streamed.
* The marts as Parquet (`journey export-marts`), for BI tools and other engines, from
  a warehouse of either engine.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import duckdb
import pandas as pd

from journey_mining.sql_models import read_sql
from journey_mining.warehouse import table_exists

__all__ = [
    "BATCH_EVENTS",
    "account_log_frame",
    "export_marts",
    "write_ocel",
    "write_xes",
]


def account_log_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every journey event as a pm4py DataFrame (grain: one row per touchpoint)."""
    frame = con.sql(
        """SELECT account_id AS "case:concept:name", activity AS "concept:name",
                  occurred_at AS "time:timestamp", stage, channel, contact_id, touchpoint_id
           FROM int_journey_events ORDER BY account_id, event_order"""
    ).df()
    frame["time:timestamp"] = pd.to_datetime(frame["time:timestamp"], utc=True)
    return frame


#: Events per range of accounts (or of event order) an export writes at once: what
#: DuckDB sorts and holds for one range is about 0.5 GB of lines at this size, whatever
#: the size of the log. Memory engineering, not a method parameter.
BATCH_EVENTS = 1_000_000

#: Rows per Arrow batch handed to Python while a range is written.
_READ_ROWS = 100_000

_XES_HEADER = (
    '<?xml version="1.0" encoding="utf-8" ?>\n'
    '<log xes.version="1849-2016" xes.features="nested-attributes" '
    'xmlns="http://www.xes-standard.org/">\n'
    '\t<extension name="Time" prefix="time" uri="http://www.xes-standard.org/time.xesext" />\n'
    '\t<extension name="Concept" prefix="concept" '
    'uri="http://www.xes-standard.org/concept.xesext" />\n'
)


def write_xes(con: duckdb.DuckDBPyConnection, path: Path,
              batch_events: int = BATCH_EVENTS) -> Path:
    """The account-level activity log as an XES file pm4py and ProM read, written from
    the warehouse as DuckDB makes its lines (sql/exports/xes_traces.sql), one range of
    accounts at a time: bounded memory at any size (one ORDER BY over every line ran
    out of memory at 100 M events), microseconds kept (pm4py's writer, fed a pandas
    frame of the whole log, took 23 s and its memory at 500 k events and cut
    timestamps to the second). The file appears whole or not at all."""
    with _replaced_whole(path) as out:
        out.write(_XES_HEADER)
        for first, last in _account_ranges(con, batch_events):
            _write_lines(out, _rows(con, "exports/xes_traces",
                                    {"first_account": first, "last_account": last}))
        out.write("</log>\n")
    return path


def write_ocel(con: duckdb.DuckDBPyConnection, path: Path,
               batch_events: int = BATCH_EVENTS) -> Path:
    """OCEL 2.0 as JSON (`.jsonocel`, pm4py.read_ocel2 reads it), written from the
    warehouse as DuckDB makes its items (sql/exports/ocel_*.sql), objects one range of
    accounts at a time and events one range of event order at a time, so memory stays
    bounded at any size. Objects carry their attributes (an account's industry, size
    and country, a contact's role and title, a campaign's name and channel), timestamps
    keep their microseconds. pm4py's writer, fed pandas frames of the whole log, took
    63 s at 1 M events and cut timestamps to the second. The file appears whole or not
    at all."""
    types = con.execute(read_sql("exports/ocel_types")).fetchall()
    with _replaced_whole(path) as out:
        out.write('{"objectTypes": [')
        _write_items(out, [[body for part, _, body in types if part == "objectTypes"]])
        out.write('], "eventTypes": [')
        _write_items(out, [[body for part, _, body in types if part == "eventTypes"]])
        out.write('], "objects": [')
        con.execute(read_sql("exports/ocel_object_accounts"))
        try:
            first_item = True
            for number, (first, last) in enumerate(_account_ranges(con, batch_events)):
                first_item = _write_items(out, _rows(
                    con, "exports/ocel_objects",
                    {"first_account": first, "last_account": last,
                     "with_campaigns": number == 0}), first_item)
        finally:
            con.execute("DROP TABLE IF EXISTS temp.main.ocel_object_accounts")
        out.write('], "events": [')
        first_item = True
        for first, last in con.execute(read_sql("exports/event_batches"),
                                       {"batch_events": batch_events}).fetchall():
            first_item = _write_items(out, _rows(
                con, "exports/ocel_events",
                {"first_order": first, "last_order": last}), first_item)
        out.write("]}\n")
    return path


def _account_ranges(con: duckdb.DuckDBPyConnection, batch_events: int) -> list[tuple]:
    """Consecutive (first, last) account ranges of about `batch_events` events."""
    return con.execute(read_sql("exports/account_batches"),
                       {"batch_events": batch_events}).fetchall()


def _rows(con: duckdb.DuckDBPyConnection, query: str, params: dict):
    """The one-column result of `query`, as lists of strings in the batches DuckDB
    hands over: Python never holds more than one batch."""
    reader = con.sql(read_sql(query), params=params).to_arrow_reader(_READ_ROWS)
    for batch in reader:
        if batch.num_rows:
            yield batch.column(0).to_pylist()


def _write_lines(out, batches) -> None:
    """Lines, each ended by a line break."""
    for lines in batches:
        out.write("\n".join(lines))
        out.write("\n")


def _write_items(out, batches, first_item: bool = True) -> bool:
    """Items of a JSON list, one per line, a comma before each but the list's first.
    Returns whether the list is still empty, for the next range to go on from."""
    for items in batches:
        if not items:
            continue
        out.write(("  " if first_item else "\n, ") + "\n, ".join(items))
        first_item = False
    return first_item


@contextlib.contextmanager
def _replaced_whole(path: Path):
    """A file written beside `path` and moved over it only when complete: a run that
    fails or is stopped mid-export leaves the previous file (or none), never half of
    one that a tool would read as a short log."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="\n") as out:
            yield out
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def export_marts(con: duckdb.DuckDBPyConnection, folder: Path, names: list[str]
                 ) -> tuple[dict[str, Path], list[str]]:
    """Every table of `names` (`steps.mart_tables()` for `journey export-marts`) the
    warehouse holds, as `<folder>/<table>.parquet`, each appearing whole or not at all;
    returns (table -> file, tables not in the warehouse: a step that did not write them,
    e.g. churn scores without clients)."""
    folder.mkdir(parents=True, exist_ok=True)
    written, absent = {}, []
    for name in names:
        if not table_exists(con, name):
            absent.append(name)
            continue
        path = folder / f"{name}.parquet"
        partial = path.with_name(path.name + ".partial")
        try:
            con.table(name).to_parquet(str(partial))
            os.replace(partial, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        written[name] = path
    return written, absent
