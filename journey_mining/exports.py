"""Logs an analyst can open in other process-mining tools.

* XES: the account-level log at touchpoint (activity) level, every event, with
  its stage, channel and contact as event attributes; written by DuckDB, streamed.
* OCEL 2.0: the object-centric view: each touchpoint is an event related to its
  account, contact, opportunity and campaign objects; contacts and opportunities
  are related to their account (object-to-object "belongs to"); written with pm4py.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from journey_mining.sql_models import read_sql

__all__ = [
    "account_log_frame",
    "journey_ocel",
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


def write_xes(con: duckdb.DuckDBPyConnection, path: Path, batch_rows: int = 100_000) -> Path:
    """The account-level activity log as an XES file pm4py and ProM read, written from
    the warehouse as DuckDB makes its lines (sql/analysis/xes_lines.sql), a batch at a
    time: bounded memory at any size, microseconds kept (pm4py's writer, fed a pandas
    frame of the whole log, took 23 s and its memory at 500 k events and cut timestamps
    to the second)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    reader = con.sql(read_sql("analysis/xes_lines")).to_arrow_reader(batch_rows)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for batch in reader:
            out.write("\n".join(batch.column(0).to_pylist()))
            out.write("\n")
    return path


def journey_ocel(con: duckdb.DuckDBPyConnection):
    """The journeys as a pm4py OCEL: accounts, contacts, opportunities, campaigns."""
    from pm4py.objects.ocel.obj import OCEL

    events = con.sql(
        """SELECT touchpoint_id AS "ocel:eid", activity AS "ocel:activity",
                  occurred_at AS "ocel:timestamp", stage, channel
           FROM int_journey_events ORDER BY event_order"""
    ).df()
    relations = con.sql(
        """WITH e AS (SELECT * FROM int_journey_events)
           SELECT touchpoint_id AS "ocel:eid", activity AS "ocel:activity",
                  occurred_at AS "ocel:timestamp", oid AS "ocel:oid", otype AS "ocel:type",
                  qualifier AS "ocel:qualifier"
           FROM (
               SELECT *, 'account:' || account_id AS oid, 'account' AS otype,
                      'of account' AS qualifier FROM e
               UNION ALL
               SELECT *, 'contact:' || contact_id, 'contact', 'by contact' FROM e
               WHERE contact_id IS NOT NULL
               UNION ALL
               SELECT *, 'opportunity:' || opportunity_id, 'opportunity', 'on opportunity' FROM e
               WHERE opportunity_id IS NOT NULL
               UNION ALL
               SELECT *, 'campaign:' || campaign_id, 'campaign', 'from campaign' FROM e
               WHERE campaign_id IS NOT NULL
           )
           ORDER BY event_order, otype"""
    ).df()
    objects = relations[["ocel:oid", "ocel:type"]].drop_duplicates().reset_index(drop=True)
    o2o = con.sql(
        """SELECT DISTINCT oid AS "ocel:oid", account AS "ocel:oid_2",
                  'belongs to' AS "ocel:qualifier"
           FROM (SELECT 'contact:' || contact_id AS oid, 'account:' || account_id AS account
                 FROM int_journey_events WHERE contact_id IS NOT NULL
                 UNION ALL
                 SELECT 'opportunity:' || opportunity_id, 'account:' || account_id
                 FROM int_journey_events WHERE opportunity_id IS NOT NULL)
           ORDER BY 1, 2"""
    ).df()
    for frame in (events, relations):
        frame["ocel:timestamp"] = pd.to_datetime(frame["ocel:timestamp"], utc=True)
    return OCEL(events=events, objects=objects, relations=relations, o2o=o2o)


def write_ocel(con: duckdb.DuckDBPyConnection, path: Path) -> Path:
    """OCEL 2.0 as JSON (`.jsonocel`), readable with pm4py.read_ocel2."""
    import pm4py

    path.parent.mkdir(parents=True, exist_ok=True)
    pm4py.write_ocel2_json(journey_ocel(con), str(path))
    return path
