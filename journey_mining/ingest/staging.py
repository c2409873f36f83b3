"""Staging: where a load's rows wait between reading them and applying them.

A load reads every file into a staging table per source before its one transaction
starts, so that nothing reaches the warehouse until every file has been judged. The
staging tables live in memory, or, for a load larger than half DuckDB's memory limit,
in a file beside the warehouse: DuckDB keeps temporary tables uncompressed, and a
large load would spill several times its size. This module holds that choice and the
layout of a staging table, whose `_position` orders the rows of a whole load.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from journey_mining.ingest.discovery import SourceFile
from journey_mining.sources import SOURCES, SourceSpec

# The package's own modules share private helpers; the names for users are these.
__all__: list[str] = []

# A row's position in a load: file order times this, plus its row number (one integer).
_FILE_STRIDE = 1 << 40


def _stage_table(con, spec: SourceSpec, schema: str) -> str:
    """Create the staging table of one source: its rows as read, judged, with position and
    content hash, waiting for the duplicate check."""
    table = f"{schema}._stage_{spec.name}"
    columns = ", ".join(
        f"{c} {'TIMESTAMP' if c in spec.timestamps else 'VARCHAR'}" for c in spec.columns)
    con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute(
        f"""CREATE {'TEMP ' if schema == 'temp' else ''}TABLE {table} (
            _file VARCHAR, _position BIGINT, _row_number BIGINT,
            {columns}, _reason VARCHAR, raw VARCHAR, _row_hash VARCHAR)""")
    return table


def _memory_limit_bytes(con) -> int:
    """DuckDB's memory limit of this connection, in bytes."""
    text = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    match = re.fullmatch(r"([\d.]+)\s*([KMGT]?i?B)", str(text).strip())
    if not match:
        return 0
    units = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
             "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
    return int(float(match.group(1)) * units.get(match.group(2), 1))


def _staging_path(con, files: list[SourceFile], setting: str,
                  memory_limit: Callable[..., int] = _memory_limit_bytes) -> Path | None:
    """The file a load stages its rows in, or None to stage in memory.

    In memory, DuckDB keeps temporary tables uncompressed and spills them as they are:
    a 100 M-event load would spill several times its files' size. On disk the staged
    rows are compressed like any table. `auto` goes to disk when the files, counted
    uncompressed (a gzip file as five times its size), would take more than half the
    memory limit (rows in memory take about twice their text); a warehouse in memory
    always stages in memory. `memory_limit(con)` gives the limit in bytes (the load
    passes the package's `_memory_limit_bytes`, so that a test can replace it there).
    """
    rows = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()
    database = rows[0][0] if rows else None
    if setting == "memory" or not database:
        return None
    if setting == "auto":
        size = sum(f.bytes * (5 if f.format.endswith(".gz") else 1) for f in files)
        if size * 2 <= memory_limit(con):
            return None
    return Path(f"{database}.staging")


@contextmanager
def _staging(con, files: list[SourceFile], setting: str,
             memory_limit: Callable[..., int] = _memory_limit_bytes) -> Iterator[str]:
    """The schema a load stages its rows in (see `_staging_path`), removed afterwards.

    A staging file left by a killed load is deleted before the next load starts: it
    was never part of the warehouse.
    """
    path = _staging_path(con, files, setting, memory_limit)
    if path is None:
        try:
            yield "temp"
        finally:  # also after a failed load: a notebook's connection lives on
            for spec in SOURCES.values():
                con.execute(f"DROP TABLE IF EXISTS temp._stage_{spec.name}")
        return
    for stale in (path, Path(f"{path}.wal")):
        stale.unlink(missing_ok=True)
    con.execute("ATTACH $path AS _staging", {"path": str(path)})
    try:
        yield "_staging"
    finally:
        con.execute("DETACH _staging")
        for stale in (path, Path(f"{path}.wal")):
            stale.unlink(missing_ok=True)
