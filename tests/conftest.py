"""Shared fixtures: tiny export folders a reader can check by eye, and the sample warehouse."""

from __future__ import annotations

import os
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
