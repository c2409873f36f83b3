"""Shared fixtures: tiny export folders a reader can check by eye, and the sample warehouse."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "false")

from journey_mining import warehouse  # noqa: E402
from journey_mining.config import Config  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
SHARED_REAL = REPO.parent / "shared" / "data" / "real"


def write_csv(folder: Path, name: str, header: str, *rows: str) -> Path:
    """Write a CSV export: a header line and data lines, exactly as given."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def user_env(prefect_home: Path, seed: bool = True, shared_api: bool = False,
             **extra: str) -> dict[str, str]:
    """The environment of a user's `journey` command: no Prefect API configured, so the
    command starts its own, with `prefect_home` as its Prefect home.

    The home is seeded with a database Prefect has already created and started once (as
    on a user's second run): a new home costs every run ~12 s of migrations and block
    registration before the flow starts, ~45 % of a small run, over about fifty runs in
    the suite. A first run's fresh home is what the wheel test runs (tests/test_wheel.py).

    With `shared_api` the command uses a `prefect server start` already running (one per
    test process), as a user with a Prefect server of their own sets PREFECT_API_URL:
    for the long runs whose subject is not the temporary API (its start, stop and the
    refusals before it are tested on commands that start their own): the ~3.5 s a seeded
    home's API takes to start (measured) less a run.
    """
    if seed and not prefect_home.exists():
        shutil.copytree(_prefect_template(), prefect_home)
    env = {**os.environ, "PREFECT_HOME": str(prefect_home), **extra}
    env.pop("PREFECT_API_URL", None)
    if shared_api:
        env["PREFECT_API_URL"] = _shared_prefect_api()
    return env


@functools.cache
def _shared_prefect_api() -> str:
    """A Prefect server of this test process's own (`prefect server start`, no UI, no
    background services), stopped when the process ends. Returns its API URL."""
    import socket
    import time
    import urllib.request

    home = Path(tempfile.mkdtemp(prefix="prefect-server-"))
    shutil.copytree(_prefect_template(), home, dirs_exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host",
         "127.0.0.1", "--port", str(port), "--no-ui", "--no-services"],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def stop() -> None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(home, ignore_errors=True)

    atexit.register(stop)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"prefect server start exited: {(home / 'server.log').read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return url
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"prefect server start did not answer within 120 s at {url}")


@functools.cache
def _prefect_template() -> Path:
    """A Prefect home whose local API has started and stopped once, made once per test
    process (so no two xdist workers share one)."""
    home = Path(tempfile.mkdtemp(prefix="prefect-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    start_once = ("from prefect.server.api.server import SubprocessASGIServer\n"
                  "server = SubprocessASGIServer(); server.start(timeout=120); server.stop()")
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    subprocess.run([sys.executable, "-c", start_once], env=env, check=True,
                   capture_output=True, timeout=300)
    return home


WEB_HEADER = "event_id,occurred_at,anonymous_id,event_name,email"


@pytest.fixture
def con():
    connection = warehouse.connect()
    warehouse.ensure_schema(connection)
    yield connection
    connection.close()


def table_rows(con, table: str, order: str = "ALL") -> list[tuple]:
    return con.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()


@pytest.fixture(scope="session")
def sample_warehouse(tmp_path_factory) -> Path:
    """The committed sample through the declared steps (`steps.run_all`, no Prefect), once
    per session; the report is written by the tests that read it."""
    from journey_mining import steps

    path = tmp_path_factory.mktemp("sample") / "sample.duckdb"
    steps.run_all(path, SAMPLE, Config(), steps=[s.name for s in steps.STEPS
                                                 if s.name != "report"])
    return path


@pytest.fixture
def sample_con(sample_warehouse):
    connection = warehouse.connect(sample_warehouse, read_only=True)
    yield connection
    connection.close()
