"""Running the pipeline as a process: stop promptly on a signal, and a Prefect API that
dies with us.

Two things a long run must do that no library call can do for itself:

* **Stop when told.** SIGTERM or SIGINT arrives while the main thread is inside a
  DuckDB query, where no Python signal handler runs until the query ends (the
  adversarial run waited two minutes). The C-level handler still writes the
  signal number to a wake-up socket at once; a watcher thread reads it and
  interrupts every open warehouse connection, so the query fails within moments,
  the transaction in progress rolls back, and the Python handler raises in the
  main thread. Locks are released by the `finally` blocks on the way out.
* **Leave nothing behind.** Prefect's temporary API server is a child process
  that survives a `kill -9` of its parent. `local_prefect_api` starts the same
  server itself, with the kernel told to end it when its parent dies
  (PR_SET_PDEATHSIG), and stops it on the way out.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from journey_mining import build, spark_engine, warehouse
from journey_mining.errors import ConfigError

__all__ = [
    "RunStopped",
    "exit_now",
    "is_stop",
    "local_prefect_api",
    "nothing_new",
    "quiet_tracebacks",
    "stop_local_apis",
    "stop_on_signals",
]


class RunStopped(BaseException):  # noqa: N818 - it is a stop, not an error
    """The run was stopped by a signal; what it was doing was rolled back."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


_STOPS: list[int] = []  # signals received by the innermost `stop_on_signals` in force


def is_stop(exc: BaseException) -> bool:
    """Whether `exc` is the run being stopped, not a failure: our own `RunStopped`, or
    any error raised after a stop signal arrived (DuckDB reports the interrupt we
    caused as its own "Query interrupted"). A stop is never retried, never recorded
    as an optional step's failure and never ends in a build recorded as complete."""
    import duckdb

    return (isinstance(exc, RunStopped | KeyboardInterrupt | duckdb.InterruptException)
            or bool(_STOPS))


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)
                    ) -> Iterator[None]:
    """Turn SIGTERM/SIGINT into `RunStopped` in the main thread, interrupting DuckDB first."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    done = threading.Event()

    received = _STOPS
    received.clear()

    def raise_stopped(signum, frame):
        received.append(signum)
        raise RunStopped(signum)

    def watch() -> None:
        while not done.is_set():
            try:
                data = reader.recv(16)
            except OSError:
                return
            if not data or done.is_set():
                return
            received.extend(data)
            warehouse.interrupt_all()

    previous = {s: signal.signal(s, raise_stopped) for s in signals}
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="journey-signal-watcher", daemon=True)
    watcher.start()
    try:
        yield
    except RunStopped:
        raise
    except BaseException as exc:
        # DuckDB may run our handler itself while it checks for signals, and report
        # the stop as its own "Query interrupted" error: it is still our stop.
        if received:
            raise RunStopped(received[0]) from exc
        raise
    finally:
        done.set()
        received.clear()
        signal.set_wakeup_fd(previous_fd)
        for s, handler in previous.items():
            signal.signal(s, handler)
        with contextlib.suppress(OSError):
            writer.send(b"\0")
        watcher.join(timeout=2)
        reader.close()
        writer.close()


def _die_with_parent() -> None:
    """In the child before exec: end it when the parent dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_prefect_api(timeout: float = 120.0, services: bool = False
                      ) -> Iterator[str | None]:
    """A temporary Prefect API for one run, unless PREFECT_API_URL points at one already.

    The same server Prefect would start on its own (uvicorn, UI off), but tied to
    this process: it ends when we return, raise, or are killed. Yields its URL. With
    `services` it also runs Prefect's background services, the scheduler among them
    (what `journey serve` needs: without it no scheduled run is ever created).
    """
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    if "prefect" in sys.modules:  # e.g. inside prefect_test_harness: its API is in force
        from prefect.settings import PREFECT_API_URL

        if PREFECT_API_URL.value():
            yield PREFECT_API_URL.value()
            return
    import importlib.util

    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_FINAL": "1",
           **({} if services else {"PREFECT__SERVER_EPHEMERAL": "1"})}
    # Prefect reads its settings when first imported: set the URL before that.
    os.environ["PREFECT_API_URL"] = url
    package = Path(importlib.util.find_spec("prefect").origin).parent
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(package.parent),
         "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "error", "--lifespan", "on"],
        # Its own session: Ctrl-C in a terminal (SIGINT to the whole process group) must
        # not kill the API before the run has stopped, or Prefect spends a minute
        # retrying its last log lines. It still dies with us (PR_SET_PDEATHSIG).
        env=env, preexec_fn=_die_with_parent, stdin=subprocess.DEVNULL,
        start_new_session=True)
    _SERVERS.append(server)
    # Stopped at exit, after Prefect has sent its last log lines (atexit runs in
    # reverse order of registration, and Prefect registers its log worker later).
    atexit.register(stop_local_apis)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the local Prefect API exited with code {server.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local Prefect API did not start within {timeout:.0f} s")
            time.sleep(0.2)
    except BaseException:
        stop_local_apis()
        raise
    yield url


_SERVERS: list[subprocess.Popen] = []


def crash_stale_runs(deployment: str) -> int:
    """Mark the deployment's runs that are still Running or Pending as Crashed; returns
    how many. Only for the local API `journey serve` starts: nothing can be running
    there before it serves, so such a run is one whose serve was killed mid-run, and it
    would hold the deployment's only run slot for ever (no scheduled run would start)."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    async def crash() -> int:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING]))))
            for run in runs:
                await client.set_flow_run_state(
                    run.id, Crashed(message="its journey serve was stopped mid-run"),
                    force=True)
            return len(runs)

    return asyncio.run(crash())


def stop_local_apis() -> None:
    """Stop the Prefect API servers this process started (idempotent)."""
    while _SERVERS:
        server = _SERVERS.pop()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def exit_now(code: int) -> None:
    """End the process at once after an error or a stop: close the warehouse, stop the
    local API, flush the terminal, and skip interpreter teardown (where Prefect would
    retry sending logs to a stopped API and DuckDB's bindings print leak warnings)."""
    warehouse.close_all()
    stop_local_apis()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class _NoTraceback(logging.Filter):
    """Keep the log line, drop the traceback under it (the run ends with one clear line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text:
            record.exc_info, record.exc_text = None, None
        if isinstance(record.msg, str) and "\nTraceback (most recent call last)" in record.msg:
            record.msg = record.msg.split("\nTraceback (most recent call last)", 1)[0]
        return True


def quiet_tracebacks() -> None:
    """Drop tracebacks from Prefect's console log lines (`--debug` keeps them)."""
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", ""):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, _NoTraceback) for f in handler.filters):
                handler.addFilter(_NoTraceback())


def nothing_new(warehouse_path, input_dir, config, as_of=None,
                tables_uri: str | None = None) -> bool:
    """True when a run would change nothing: every file of `input_dir` was loaded before
    (same SHA-256) and the build fingerprint (data, parameters, code, where the tables
    are) is the last complete run's. Decided on a read-only connection, before Prefect
    starts."""
    import duckdb

    from journey_mining import ingest

    path = Path(warehouse_path)
    if not path.exists():
        return False
    files = ingest.discover_files(input_dir, config.ingest)
    try:
        con = warehouse.connect(path, read_only=True)
    except duckdb.Error:
        return False  # in use by a writer: let the run say so
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "load_files" not in tables:
            return False
        seen = {r[0] for r in con.execute(
            "SELECT DISTINCT sha256 FROM load_files WHERE status IN ('read', 'empty')"
        ).fetchall()}
        if any(f.sha256 not in seen for f in files):
            return False
        place = spark_engine.tables_place(config.engine.kind, path, tables_uri)
        return build.is_up_to_date(con, config.analysis, as_of, config.outputs, place)[0]
    finally:
        con.close()


def check_tables_place(warehouse_path, kind: str, tables_uri: str | None = None,
                       full_rebuild: bool = False, reads_only: bool = False) -> None:
    """Refuse, in one sentence, a command on a warehouse whose last complete build put its
    model tables somewhere else than this command (engine `kind`, `tables_uri`) would
    read or write them: another engine, a Spark warehouse moved or copied (its views read
    the original's files), or a URI that is not the one it was built at (a typo would
    build a second copy there). `journey run --full-rebuild` builds it again here; a
    command that only reads (`reads_only`: export-marts) has no such way out."""
    path = Path(warehouse_path)
    if full_rebuild or not path.exists():
        return
    place = spark_engine.tables_place(kind, path, tables_uri)
    with warehouse.connected(path, read_only=True) as con:
        built = build.last_build_place(con)
    if built is None or built == place:
        return
    fix = ("give the --warehouse and --config it was built with, or build it again with "
           "`journey run --full-rebuild`" if reads_only
           else "build it again with `journey run --full-rebuild`")
    raise ConfigError(f"{path}: its last build keeps the model tables {_said(built)}, and "
                      f"this command would use them {_said(place)} (another engine, a "
                      f"moved warehouse or another URI): {fix}")


def _said(place: str) -> str:
    """A place of the tables (`spark_engine.tables_place`) as the sentence says it."""
    return ("inside the DuckDB file" if place == "duckdb"
            else f"on Spark at {place.removeprefix('spark ')}")
