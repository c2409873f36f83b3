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
from journey_mining.warehouse import SQL_DIR

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
    """The text of sql/mining/<name>.sql."""
    return (MINING_SQL / f"{name}.sql").read_text()


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
    """Compute a log once into a table (temporary unless `temporary=False`); a relation is
    lazy and each query over it would recompute the log. The mining step keeps its logs
    as warehouse tables (`stage_log`, `activity_log`) that notebooks and pm4py read."""
    if not name.isidentifier():
        raise JourneyError(f"'{name}' is not a valid table name")
    kind = "TEMP TABLE" if temporary else "TABLE"
    log.query("event_log", f"CREATE OR REPLACE {kind} {name} AS SELECT * FROM event_log "
                           "ORDER BY case_id, event_index")
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
    rel = con.from_df(ordered[[case_id, activity, timestamp]].assign(_row=range(len(ordered))))
    return rel.query(
        "source",
        f"""SELECT "{case_id}"::VARCHAR AS case_id, "{activity}"::VARCHAR AS activity,
                   "{timestamp}" AS timestamp,
                   row_number() OVER by_case::INTEGER AS event_index,
                   lead("{activity}"::VARCHAR) OVER by_case AS next_activity,
                   (epoch(lead("{timestamp}") OVER by_case) - epoch("{timestamp}")) / 3600.0
                       AS hours_to_next
            FROM source
            WINDOW by_case AS (PARTITION BY "{case_id}" ORDER BY "{timestamp}", _row)""",
    )


def to_pm4py(log: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """The log as the DataFrame pm4py expects (case:concept:name, concept:name, time:timestamp)."""
    frame = log.order("case_id, event_index").df()
    frame = frame.rename(columns=PM4PY_COLUMNS)
    frame["time:timestamp"] = pd.to_datetime(frame["time:timestamp"], utc=True)
    return frame


