"""The DuckDB warehouse: connection, schema of the loaded layer, and the SQL model runner.

The warehouse has two kinds of tables:

* loaded tables (`raw_<source>`, `rejected_rows`, `loads`, `load_files`), appended to
  by ingest and never rebuilt: they are the system of record;
* model tables (`stg_*`, `int_*` and the marts), rebuilt from the loaded tables by
  running every SQL file under `sql/` in dependency order, in one transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import graphlib
import hashlib
import json
import logging
import os
import re
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from journey_mining.errors import WarehouseError, WarehouseLockedError
from journey_mining.sources import SOURCES

_log = logging.getLogger(__name__)

__all__ = [
    "LAYERS",
    "RUN_ISSUES_COLUMNS",
    "SQL_DIR",
    "STATE_LAYERS",
    "Model",
    "build",
    "build_fingerprint",
    "check_writable",
    "close_all",
    "connect",
    "connected",
    "discover_models",
    "drop_tables",
    "ensure_schema",
    "exclusive",
    "infer_stage_states",
    "interrupt_all",
    "last_build_fingerprint",
    "record_build",
    "record_issue",
    "run_issues",
    "run_models",
    "store_frame",
    "transaction",
    "use_resources",
]


def _sql_dir() -> Path:
    """The SQL models: the `journey_mining.sql` package of an installed wheel, or the
    repository's sql/ folder in a checkout (the same folder, mapped by pyproject)."""
    beside = Path(__file__).resolve().parent.parent / "sql"
    if (beside / "marts").is_dir():
        return beside
    from importlib import resources

    return Path(str(resources.files("journey_mining.sql")))


SQL_DIR = _sql_dir()
LAYERS = ("staging", "intermediate", "marts")
# Models that read the inferred stage history: run after stage inference.
STATE_LAYERS = ("states",)


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
    con = duckdb.connect(str(path), read_only=read_only)
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


@dataclass(frozen=True)
class Model:
    """One SQL model file: its name, layer, path and text.

    `materialized` is 'table' unless the file says `-- materialized: view`: a model
    read once, or a plain projection, is a view, so the build does not write a copy.
    """

    name: str
    layer: str
    path: Path
    sql: str

    @property
    def materialized(self) -> str:
        found = re.search(r"^--\s*materialized:\s*(table|view)\b", self.sql, re.M)
        return found.group(1) if found else "table"


def discover_models(sql_dir: Path = SQL_DIR, layers: tuple[str, ...] = LAYERS) -> list[Model]:
    """Every model under sql/<layer>/, in an order where each runs after what it reads."""
    models = {}
    for layer in layers:
        for path in sorted((sql_dir / layer).glob("*.sql")):
            models[path.stem] = Model(path.stem, layer, path, path.read_text())
    graph = {}
    for model in models.values():
        # A dependency is a model named after FROM or JOIN that is not one of the
        # file's own CTEs (so a model must not name a CTE after another model).
        text = re.sub(r"--[^\n]*", "", model.sql).lower()
        read = set(re.findall(r"\b(?:from|join)\s+([a-z_][a-z0-9_]*)", text))
        ctes = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s+as\s*\(", text))
        graph[model.name] = {n for n in read - ctes if n in models and n != model.name}
    order = graphlib.TopologicalSorter(graph).static_order()
    return [models[name] for name in order]


def store_frame(con: duckdb.DuckDBPyConnection, name: str, frame, append: bool = False) -> None:
    """Write a DataFrame computed in Python as a warehouse table (replace, or append by name)."""
    con.register("_frame_to_store", frame)
    try:
        if append:
            con.execute(f"CREATE TABLE IF NOT EXISTS {name} AS "
                        "SELECT * FROM _frame_to_store LIMIT 0")
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


def run_models(
    con: duckdb.DuckDBPyConnection, parameters: dict | None = None, sql_dir: Path = SQL_DIR,
    layers: tuple[str, ...] = LAYERS,
) -> list[str]:
    """Rebuild every model table; returns the model names in run order.

    `parameters` are bound as `$name` placeholders in the model SQL, never
    formatted in. Call inside `transaction` (as `build` does) for all or nothing.
    """
    parameters = parameters or {}
    built = []
    for model in discover_models(sql_dir, layers):
        used = {k: v for k, v in parameters.items() if f"${k}" in model.sql}
        kind = model.materialized.upper()
        try:
            # A model that changed from table to view (or back) replaces the other kind.
            other = "TABLE" if kind == "VIEW" else "VIEW"
            exists = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = $n AND $o = 'TABLE' "
                "UNION ALL SELECT count(*) FROM duckdb_views() WHERE view_name = $n "
                "AND $o = 'VIEW' AND NOT internal", {"n": model.name, "o": other}).fetchall()
            if sum(r[0] for r in exists):
                con.execute(f"DROP {other} {model.name}")
            started = time.perf_counter()
            con.execute(f"CREATE OR REPLACE {kind} {model.name} AS\n{model.sql}", used)
            seconds = time.perf_counter() - started
            _log.debug("model %s/%s (%s) built in %.2f s", model.layer, model.name,
                       kind.lower(), seconds, extra={"model": model.name, "seconds": seconds})
        except duckdb.Error as exc:
            raise duckdb.Error(f"model {model.layer}/{model.name}.sql failed: {exc}") from exc
        built.append(model.name)
    return built


def build(con: duckdb.DuckDBPyConnection, params, as_of=None,
          infer_stages: bool = True) -> list[str]:
    """Rebuild all models with the analysis parameters (`AnalysisParams`), all or nothing.

    Writes the configuration tables the models join (stage ladder and map,
    free-mail domains), then every model. `as_of` overrides `params.as_of`; when
    both are unset the models use the latest occurred_at in the warehouse. Then the
    stage states are inferred into `account_stage_history` (skip with
    `infer_stages=False` to run `infer_stages` yourself, as the benchmark does).
    """
    from journey_mining import stages

    stage_map = stages.load_stage_map(params.stage_map)
    ensure_schema(con)
    with transaction(con):
        stages.register_stage_map(con, stage_map)
        stages.register_free_mail_domains(con, params.free_mail_domains)
        stages.register_engagement_rules(con, params.engagements)
        stages.register_outbound_activities(con, params.outbound_activities)
        con.execute(f"CREATE OR REPLACE TABLE run_issues ({RUN_ISSUES_COLUMNS})")
        built = run_models(
            con,
            {
                "as_of": as_of or params.as_of,
                "dormancy_days": params.dormancy_days,
                "churn_horizon_days": params.churn_horizon_days,
                "inactivity_days": params.engagements.inactivity_days,
                "instant": params.engagements.instant,
                "churn_kind": params.churn_kind,
            },
        )
    if not infer_stages:
        return built
    return [*built, *infer_stage_states(con, params)]


def infer_stage_states(con: duckdb.DuckDBPyConnection, params) -> list[str]:
    """The stage each account is in (contract v2), inferred from the built journeys."""
    from journey_mining import stage_inference

    inference = params.stage_inference
    history, estimated = stage_inference.infer_stage_states(
        con, stage_inference.InferenceParams(
            method=inference.method, window_days=inference.window_days,
            period_days=inference.period_days, fit_accounts=inference.fit_accounts),
        renewal_cycles=inference.renewal_cycles)
    stage_inference.store_stage_history(con, history, estimated)
    with transaction(con):
        states = run_models(con, layers=STATE_LAYERS)
    return ["account_stage_history", "stage_inference_parameters", *states]


RUN_ISSUES_COLUMNS = "step VARCHAR NOT NULL, problem VARCHAR NOT NULL, recorded_at TIMESTAMP"


def record_issue(con: duckdb.DuckDBPyConnection, step: str, problem: str | BaseException) -> None:
    """Note that an optional analysis of this build failed; the run goes on without it.

    The report and the run summary list these, so a missing chart or table is never
    mistaken for "nothing to show".
    """
    if isinstance(problem, BaseException):
        problem = f"{type(problem).__name__}: {problem}".splitlines()[0][:500]
    con.execute(f"CREATE TABLE IF NOT EXISTS run_issues ({RUN_ISSUES_COLUMNS})")
    con.execute("INSERT INTO run_issues VALUES ($step, $problem, now()::TIMESTAMP)",
                {"step": step, "problem": problem})


def run_issues(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """The (step, problem) pairs recorded since the last build, oldest first."""
    exists = con.execute("SELECT count(*) FROM duckdb_tables() "
                         "WHERE table_name = 'run_issues'").fetchall()[0][0]
    if not exists:
        return []
    return con.execute("SELECT step, problem FROM run_issues ORDER BY recorded_at").fetchall()


def build_fingerprint(con: duckdb.DuckDBPyConnection, params, as_of=None) -> str:
    """What a build depends on: loaded data, analysis parameters, SQL and library code."""
    from journey_mining import __version__

    last_load = con.execute(
        "SELECT coalesce(max(load_id), 0) FROM loads WHERE rows_loaded > 0 OR rows_rejected > 0"
    ).fetchall()[0][0]
    code = hashlib.sha256()
    for path in sorted(SQL_DIR.rglob("*.sql")) + sorted(Path(__file__).parent.rglob("*.py")):
        code.update(path.read_bytes())
    payload = {"load": last_load, "params": params.model_dump(mode="json"),
               "as_of": str(as_of), "code": code.hexdigest(), "version": __version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def last_build_fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
    """The fingerprint of the last complete run, or None before the first."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'build_state'").fetchall()[0][0]
    if not exists:
        return None
    rows = con.execute("SELECT fingerprint FROM build_state").fetchall()
    return rows[0][0] if rows else None


def record_build(con: duckdb.DuckDBPyConnection, fingerprint: str) -> None:
    """Remember the fingerprint of a complete run (build, mining, analysis, report)."""
    con.execute("CREATE OR REPLACE TABLE build_state AS "
                "SELECT $fingerprint AS fingerprint, now()::TIMESTAMP AS built_at",
                {"fingerprint": fingerprint})
