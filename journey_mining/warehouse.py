"""The DuckDB warehouse: connection, locks, transactions and the loaded layer's schema.

The warehouse has two kinds of tables:

* loaded tables (`raw_<source>`, `rejected_rows`, `loads`, `load_files`), appended to
  by ingest and never rebuilt: they are the system of record;
* model tables (`stg_*`, `int_*`, the stage states and the marts), rebuilt from the
  loaded tables by `build.build` (the runner is `sql_models`), in one transaction.

This module imports nothing of the library above it: every other module may use it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import os
import re
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from journey_mining.errors import WarehouseError, WarehouseLockedError
from journey_mining.sources import SOURCES

__all__ = [
    "WAREHOUSE_MARKER",
    "check_writable",
    "close_all",
    "connect",
    "connected",
    "drop_tables",
    "ensure_schema",
    "exclusive",
    "home_folder",
    "interrupt_all",
    "record_issue",
    "reset_run_issues",
    "run_issues",
    "store_frame",
    "table_exists",
    "transaction",
    "use_resources",
]


_OPEN: weakref.WeakSet = weakref.WeakSet()
_LIMITS = None  # config.ResourceLimits of this run (use_resources); None: DuckDB's defaults


def use_resources(limits) -> None:
    """Apply `limits` (config `resources`: memory_limit, temp_directory, threads) to every
    warehouse connection opened from now on in this process."""
    global _LIMITS
    _LIMITS = limits


def connect(path: str | Path = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse with the session settings every query relies on (UTC clock)."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        raise _held_elsewhere(path, exc) from None
    con.execute("SET TimeZone = 'UTC'")
    # DuckDB 2.0's compressed materialization narrows a sum() to the type of its input's
    # statistics before an ORDER BY: per-file row counts of a stored table summed to
    # -31,869 instead of 33,667 (or a conversion error). Off for every connection.
    con.execute("SET disabled_optimizers = 'compressed_materialization'")
    if _LIMITS is not None:
        con.execute("SET memory_limit = $limit", {"limit": _LIMITS.duckdb_memory_limit()})
        if _LIMITS.threads:
            con.execute("SET threads = $threads", {"threads": int(_LIMITS.threads)})
        if str(path) != ":memory:" and not read_only:
            spill = _LIMITS.temp_directory or f"{Path(path).resolve()}.tmp"
            con.execute("SET temp_directory = $dir", {"dir": str(spill)})
    _OPEN.add(con)
    return con


def check_not_open_elsewhere(path: str | Path) -> None:
    """Fail at once, in one sentence, when another process has the warehouse open (a
    notebook's connection, even read-only, keeps a run from writing): found before
    Prefect starts, not after three retries of the load."""
    if Path(path).exists():
        connect(path).close()


def disk_full_error(exc: BaseException, step: str) -> WarehouseError | None:
    """A full disk in one sentence (DuckDB's or the OS's "No space left on device"),
    naming the file it could not write and what was kept; None for any other error."""
    import errno

    text = str(exc)
    if not ("No space left on device" in text or getattr(exc, "errno", None) == errno.ENOSPC):
        return None
    found = re.search(r'write (?:to )?file "([^"]+)"', text)
    where = found.group(1) if found else getattr(exc, "filename", None) or "a file"
    return WarehouseError(
        f"{where}: the disk is full (no space left on device) during the step '{step}'; "
        "the step was rolled back and what earlier steps committed is kept: free space "
        "there (or set resources.temp_directory elsewhere) and run again")


def _held_elsewhere(path, exc: duckdb.IOException) -> Exception:
    """DuckDB's lock error in one sentence: which process holds the file (a notebook's
    connection, usually) and what to do; any other I/O error as it was."""
    found = re.search(r"Conflicting lock is held in (.+?) \(PID (\d+)\)", str(exc))
    if "Could not set lock" not in str(exc):
        return exc
    who = f" ({Path(found.group(1)).name}, PID {found.group(2)})" if found else ""
    return WarehouseLockedError(
        f"{path}: the warehouse is open in another process{who}, e.g. a notebook's "
        "connection; close it (con.close()) or wait for it, then run again")


@contextmanager
def connected(path: str | Path, read_only: bool = False
              ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A warehouse connection for one step, closed when the step ends (also on error)."""
    con = connect(path, read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def close_all() -> None:
    """Close every warehouse connection still open (interrupting what runs on it)."""
    for con in list(_OPEN):
        with contextlib.suppress(Exception):
            con.interrupt()
        with contextlib.suppress(Exception):
            con.close()


def interrupt_all() -> None:
    """Interrupt the query running on every open warehouse connection (safe from a thread).

    The interrupted statement raises; the transaction around it rolls back.
    """
    for con in list(_OPEN):
        with contextlib.suppress(Exception):
            con.interrupt()


def check_writable(path: str | Path) -> None:
    """Fail at once, in one sentence, if the warehouse file or its folder cannot be written.

    DuckDB writes a WAL beside the file and the run a lock file, so the folder must be
    writable too. Tried for real (not `os.access`), so read-only mounts count.
    """
    path = Path(path).resolve()
    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), Path("/"))
    if not folder.is_dir():
        raise WarehouseError(f"{path}: cannot create the warehouse: {folder} is not a folder")
    try:
        if path.exists():
            with path.open("r+b"):
                pass
        probe = folder / f".{path.name}.{os.getpid()}.probe"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        what = path if path.exists() and isinstance(exc, PermissionError) else folder
        raise WarehouseError(
            f"{path}: the warehouse cannot be written ({exc.strerror.lower()}: {what}); "
            "choose another --warehouse or fix the permissions") from None


def _lock_file(lock_path: Path):
    """The run's lock file, locked; None when another process holds it."""
    while True:
        handle = lock_path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        # The holder before us removes the lock file when it ends; a lock taken on
        # the removed file is no lock, so take it again on the file that is there.
        try:
            same = os.stat(lock_path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return handle
        handle.close()


def _lock_identity(path: Path):
    """The warehouse file itself, locked (flock: by inode, so a hard link or a symlink to
    it takes the same lock); None when another process holds it. DuckDB's own locks
    are fcntl record locks, which flock does not touch. A warehouse not created yet
    has no other name, so there is nothing to lock: an open file stands in."""
    if not path.exists():
        return open(os.devnull, "rb")  # noqa: SIM115 - closed with the lock
    handle = path.open("rb")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


_SHARED: set[str] = set()  # warehouses the command of this process holds for its flow


@contextmanager
def exclusive(path: str | Path, wait_seconds: float = 0.0,
              share_in_process: bool = False) -> Iterator[None]:
    """Hold the warehouse for one run: a second run is refused at once, never interleaved.

    DuckDB locks a file only while a connection is open; a pipeline run opens and
    closes several, so the run holds two advisory locks for its whole length: one on
    `<warehouse>.lock` (which says who holds it) and one on the warehouse file itself,
    so that a symlink or hard link to the same file is refused too. Locks die with the
    process, so a killed run frees them. With `wait_seconds`, a held lock is waited
    for that long (scheduled runs queue behind a manual one instead of failing).
    With `share_in_process`, later `exclusive` calls of this process on the same
    warehouse go through while it is held: `journey run` takes the lock before Prefect
    starts (a refusal in a second, no gap while the API starts) and the flow it runs
    takes it again.
    """
    check_writable(path)
    path = Path(path).resolve()
    if str(path) in _SHARED:
        yield
        return
    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    while True:
        handle = _lock_file(lock_path)
        identity = _lock_identity(path) if handle is not None else None
        if identity is not None:
            break
        if handle is not None:
            handle.close()
            holder = "another run, through another name of the same file (a link)"
        else:
            holder = "another process"
            with contextlib.suppress(OSError):
                holder = lock_path.read_text().strip() or holder
        if time.monotonic() < deadline:
            time.sleep(1.0)
            continue
        raise WarehouseLockedError(
            f"{path} is in use by another run ({holder}); wait for it to finish") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} since {dt.datetime.now():%Y-%m-%d %H:%M:%S}")
    handle.flush()
    if share_in_process:
        _SHARED.add(str(path))
    try:
        yield
    finally:
        _SHARED.discard(str(path))
        # Nothing left behind: the lock file goes before the lock is released.
        with contextlib.suppress(OSError):
            lock_path.unlink()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
        identity.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: commit when the block ends, roll back if it raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the loaded tables if absent. Their columns come from the source specs."""
    for spec in SOURCES.values():
        columns = ",\n  ".join(
            f"{_quote(c)} {'TIMESTAMP' if c in spec.timestamps else 'VARCHAR'}"
            for c in spec.columns
        )
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS {spec.raw_table} (
  {columns},
  _load_id BIGINT NOT NULL,
  _file VARCHAR NOT NULL,
  _row_number BIGINT NOT NULL,
  _row_hash VARCHAR NOT NULL
)"""
        )
    con.execute(
        """CREATE TABLE IF NOT EXISTS rejected_rows (
  source VARCHAR NOT NULL,
  file VARCHAR NOT NULL,
  row_number BIGINT,
  reason VARCHAR NOT NULL,
  raw VARCHAR,
  load_id BIGINT NOT NULL
)"""
    )
    # Pseudonymised loads: per visitor id, the keyed hash of its lower-case form and its
    # pseudonym, so later loads find the id inside text in any letter case.
    con.execute(
        """CREATE TABLE IF NOT EXISTS visitor_digests (
  digest VARCHAR NOT NULL,
  pseudonym VARCHAR NOT NULL,
  load_id BIGINT NOT NULL
)"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS loads (
  load_id BIGINT PRIMARY KEY,
  started_at TIMESTAMP NOT NULL,
  finished_at TIMESTAMP NOT NULL,
  input_dir VARCHAR NOT NULL,
  files_seen INTEGER NOT NULL,
  files_read INTEGER NOT NULL,
  files_skipped INTEGER NOT NULL,
  rows_read BIGINT NOT NULL,
  rows_loaded BIGINT NOT NULL,
  rows_duplicate BIGINT NOT NULL,
  rows_rejected BIGINT NOT NULL
)"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS load_files (
  load_id BIGINT NOT NULL,
  source VARCHAR NOT NULL,
  file VARCHAR NOT NULL,
  sha256 VARCHAR NOT NULL,
  bytes BIGINT NOT NULL,
  status VARCHAR NOT NULL,          -- read | skipped (same checksum already loaded)
  rows_read BIGINT NOT NULL,
  rows_loaded BIGINT NOT NULL,
  rows_duplicate BIGINT NOT NULL,
  rows_rejected BIGINT NOT NULL
)"""
    )


def store_frame(con: duckdb.DuckDBPyConnection, name: str, frame, append: bool = False) -> None:
    """Write a DataFrame computed in Python as a warehouse table (replace, or append by name)."""
    con.register("_frame_to_store", frame)
    try:
        if append:
            con.execute(f"CREATE TABLE IF NOT EXISTS {name} AS "
                        "SELECT * FROM _frame_to_store LIMIT 0")
            # A column a newer version records is added to the rows stored before (empty).
            have = {r[0] for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = $t",
                {"t": name}).fetchall()}
            for column, kind in con.execute(
                    "SELECT column_name, data_type FROM duckdb_columns() "
                    "WHERE table_name = '_frame_to_store'").fetchall():
                if column not in have:
                    con.execute(f"ALTER TABLE {name} ADD COLUMN {_quote(column)} {kind}")
            con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _frame_to_store")
        else:
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _frame_to_store")
    finally:
        con.unregister("_frame_to_store")


def drop_tables(con: duckdb.DuckDBPyConnection, names) -> None:
    """Drop the tables (or views) of these declared names that exist."""
    existing = dict(con.execute(
        "SELECT table_name, 'TABLE' FROM duckdb_tables() UNION ALL "
        "SELECT view_name, 'VIEW' FROM duckdb_views() WHERE NOT internal").fetchall())
    for name in names:
        if name in existing:
            con.execute(f"DROP {existing[name]} {_quote(name)}")


_RUN_ISSUES_DDL = ("run_issues (step VARCHAR NOT NULL, problem VARCHAR NOT NULL, "
                   "recorded_at TIMESTAMP)")


def reset_run_issues(con: duckdb.DuckDBPyConnection) -> None:
    """Start a build with no run issues: what failed in the last one is not this one's."""
    con.execute("CREATE OR REPLACE TABLE " + _RUN_ISSUES_DDL)


def record_issue(con: duckdb.DuckDBPyConnection, step: str, problem: str | BaseException) -> None:
    """Note that an optional analysis of this build failed; the run goes on without it.

    The report and the run summary list these, so a missing chart or table is never
    mistaken for "nothing to show".
    """
    if isinstance(problem, BaseException):
        problem = f"{type(problem).__name__}: {problem}".splitlines()[0][:500]
    con.execute("CREATE TABLE IF NOT EXISTS " + _RUN_ISSUES_DDL)
    con.execute("INSERT INTO run_issues VALUES ($step, $problem, now()::TIMESTAMP)",
                {"step": step, "problem": problem})


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """True when the warehouse has a table (or view) of this name."""
    return sum(n for (n,) in con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = $n UNION ALL "
        "SELECT count(*) FROM duckdb_views() WHERE view_name = $n AND NOT internal",
        {"n": name}).fetchall()) > 0


def run_issues(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """The (step, problem) pairs recorded since the last build, oldest first."""
    if not table_exists(con, "run_issues"):
        return []
    return con.execute("SELECT step, problem FROM run_issues ORDER BY recorded_at").fetchall()


WAREHOUSE_MARKER = ".warehouse"  # in a home folder: the warehouse whose files it holds


def home_folder(root: str | Path, warehouse_path: str | Path, create: bool = False) -> Path:
    """The folder under `root` (reports, outputs) that holds one warehouse's files:
    `<root>/<warehouse stem>`, or `<stem>-<hash of its path>` when that name is taken by
    another warehouse (a.duckdb in two folders). Two warehouses never share a folder, so
    one's `latest` report can never be the other's, whatever their as-of dates.
    With `create`, the folder is made and marked with the warehouse's path."""
    path = Path(warehouse_path).resolve()
    home = Path(root) / path.stem
    marker = home / WAREHOUSE_MARKER
    taken = marker.exists() and marker.read_text(encoding="utf-8").strip() != str(path)
    if taken:
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
        home = Path(root) / f"{path.stem}-{digest}"
        marker = home / WAREHOUSE_MARKER
    if create and not marker.exists():
        home.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(path) + "\n", encoding="utf-8")
    return home

