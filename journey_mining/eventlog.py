"""Event logs for process mining, built in DuckDB from the journey events.

Two levels of abstraction (`stage`, `activity`) and three case notions
(`account`, `contact`, `engagement_cycle`), all from one SQL definition,
`sql/mining/event_log.sql`, with the choices bound as parameters. Consecutive
repeats of an activity can be collapsed into one event (default), keeping their
count in `n_repeats`: a run of five page views is one step of a path, not five.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from journey_mining.errors import JourneyError
from journey_mining.sql_models import SQL_DIR, read_sql
from journey_mining.warehouse import drop_tables

__all__ = [
    "CASE_NOTIONS",
    "LEVELS",
    "MINING_SQL",
    "PM4PY_COLUMNS",
    "event_log",
    "from_frame",
    "materialise",
    "mining_sql",
    "to_pm4py",
]

MINING_SQL = SQL_DIR / "mining"
LEVELS = ("stage", "activity")
CASE_NOTIONS = ("account", "contact", "engagement_cycle")
PM4PY_COLUMNS = {"case_id": "case:concept:name", "activity": "concept:name",
                 "timestamp": "time:timestamp"}


def mining_sql(name: str) -> str:
    """The text of sql/mining/<name>.sql (a query over the view `event_log`)."""
    return read_sql(f"mining/{name}")


def event_log(
    con: duckdb.DuckDBPyConnection,
    level: str = "stage",
    case_notion: str = "account",
    collapse: bool = True,
) -> duckdb.DuckDBPyRelation:
    """The event log of the built journeys: case_id, activity, timestamp, event_index, ...

    Grain: one row per event (per run of repeats when `collapse`), ordered by case
    and event_index.
    """
    if level not in LEVELS:
        raise JourneyError(f"unknown level '{level}' (levels: {', '.join(LEVELS)})")
    if case_notion not in CASE_NOTIONS:
        raise JourneyError(
            f"unknown case notion '{case_notion}' (case notions: {', '.join(CASE_NOTIONS)})"
        )
    return con.sql(
        mining_sql("event_log"),
        params={"level": level, "case_notion": case_notion, "collapse": collapse},
    )


def materialise(con: duckdb.DuckDBPyConnection, log: duckdb.DuckDBPyRelation,
                name: str, temporary: bool = True) -> duckdb.DuckDBPyRelation:
    """Compute a log once, in case and event order; a relation is lazy and each query
    over it would recompute the log. The mining step keeps its logs as warehouse tables
    (`temporary=False`: `stage_log`, `activity_log`) that notebooks and pm4py read; a
    temporary log is a view of this connection over the computed rows.

    The name is given to DuckDB's relational API, never formatted into SQL."""
    if not name.isidentifier():
        raise JourneyError(f"'{name}' is not a valid table name")
    ordered = log.order("case_id, event_index")
    if temporary:
        con.register(name, ordered.materialize())
    else:
        drop_tables(con, [name])  # what CREATE OR REPLACE did: the new log replaces the old
        ordered.create(name)
    return con.table(name)


def from_frame(
    con: duckdb.DuckDBPyConnection,
    frame: pd.DataFrame,
    case_id: str = "case:concept:name",
    activity: str = "concept:name",
    timestamp: str = "time:timestamp",
) -> duckdb.DuckDBPyRelation:
    """Any event table (a pm4py DataFrame, say) as an event log relation.

    Ties in time keep the frame's row order, as pm4py does.
    """
    ordered = frame.reset_index(drop=True)
    # The frame's own column names stay out of the SQL: the three columns are renamed here.
    source = pd.DataFrame({"_case": ordered[case_id], "_activity": ordered[activity],
                           "_timestamp": ordered[timestamp], "_row": range(len(ordered))})
    return con.from_df(source).query("source", read_sql("mining/event_log_from_frame"))


def to_pm4py(log: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """The log as the DataFrame pm4py expects (case:concept:name, concept:name, time:timestamp)."""
    frame = log.order("case_id, event_index").df()
    frame = frame.rename(columns=PM4PY_COLUMNS)
    frame["time:timestamp"] = pd.to_datetime(frame["time:timestamp"], utc=True)
    return frame


