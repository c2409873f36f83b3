"""The scratch tables of a load, and the SQL text that names things in it.

Reading one file leaves temporary tables and views on the connection (`_scan`, the
rows as read; `_broken`, the rows the reader could not split; what they are built
from). Every step of a load builds SQL around them, so the quoting of names and
literals, a row's position in a scratch table and the dropping of the scratch tables
live here, below every other module of the package.
"""

from __future__ import annotations

import duckdb

# The package's own modules share private helpers; the names for users are these.
__all__: list[str] = []


def _quote(identifier: str) -> str:
    """A name as a quoted SQL identifier (a file's column may be called anything)."""
    return '"' + identifier.replace('"', '""') + '"'


def _sql_text(value: str) -> str:
    """A name as an SQL string literal (a JSON key, written into a statement)."""
    return "'" + value.replace("'", "''") + "'"


def _drop(con: duckdb.DuckDBPyConnection, *tables: str) -> None:
    """Drop the named tables where they exist."""
    for table in tables:
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _drop_scan(con) -> None:
    """Drop what reading one file left: `_scan` (a table or a view) and what it reads."""
    kinds = dict(con.execute(
        """SELECT table_name, table_type FROM information_schema.tables
           WHERE table_catalog = 'temp'""").fetchall())
    for name in ("_scan", "_runs", "_scan_raw", "_broken"):
        if name in kinds:
            con.execute(f"DROP {'VIEW' if kinds[name] == 'VIEW' else 'TABLE'} {name}")


def _position(table: str) -> str:
    """1-based insertion position of a row of a temp table filled in file order.

    Rows written inside a transaction get row ids from a large offset, so the
    position is the row id minus the table's first row id.
    """
    return f"rowid - (SELECT min(rowid) FROM {table}) + 1"
