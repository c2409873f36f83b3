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


def user_env(prefect_home: Path, seed: bool = True, **extra: str) -> dict[str, str]:
    """The environment of a user's `journey` command: no Prefect API configured, so the
    command starts its own, with `prefect_home` as its Prefect home.

    The home is seeded with a database Prefect has already created and started once (as
    on a user's second run): a new home costs every run ~12 s of migrations and block
    registration before the flow starts, ~45 % of a small run, over about fifty runs in
    the suite. A first run's fresh home is what the wheel test runs (tests/test_wheel.py).
    """
    if seed and not prefect_home.exists():
        shutil.copytree(_prefect_template(), prefect_home)
    env = {**os.environ, "PREFECT_HOME": str(prefect_home), **extra}
    env.pop("PREFECT_API_URL", None)
    return env


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
