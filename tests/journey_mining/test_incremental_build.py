"""Incremental builds: a build after a small load rebuilds in part what can have changed,
and gives exactly the tables a full build of the same warehouse gives, also when the new
rows are form fills that tie a visitor's old visits to an account (late identities)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from journey_mining import build, ingest, warehouse
from journey_mining.config import AnalysisParams
from journey_mining.generator import GeneratorSpec, generate_exports
from journey_mining.sql_models import discover_models

# Columns a build stamps with its own clock, not made from the data.
BUILD_CLOCK = {"run_parameters": ["built_at"]}


def _split_nights(folder: Path, later: Path) -> int:
    """Move every web form fill (a row with an email) of the plain CSV web exports, and the
    last quarter's email events, to `later`: the second night's load. Returns the number
    of form fills moved."""
    later.mkdir()
    fills = []
    for path in sorted(folder.glob("web_events_*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        has_email = frame.email.str.strip() != ""
        fills.append(frame[has_email])
        frame[~has_email].to_csv(path, index=False)
    pd.concat(fills).to_csv(later / "web_events_form_fills.csv", index=False)
    last_quarter = sorted(folder.glob("email_events_*.jsonl.gz"))[-1]
    shutil.move(last_quarter, later / last_quarter.name)
    return sum(len(f) for f in fills)


def _model_tables() -> list[str]:
    return [t for model in discover_models() for t in model.tables]


def _differences(left: Path, right: Path) -> dict[str, tuple[int, int]]:
    """Per model table, the rows only in one warehouse and only in the other (EXCEPT ALL
    both ways: duplicates count), build clock columns aside."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{left}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{right}' AS b (READ_ONLY)")
    found = {}
    for table in _model_tables():
        skip = BUILD_CLOCK.get(table)
        cols = f"* EXCLUDE ({', '.join(skip)})" if skip else "*"
        only_a = con.execute(f"SELECT count(*) FROM (SELECT {cols} FROM a.{table} "
                             f"EXCEPT ALL SELECT {cols} FROM b.{table})").fetchall()[0][0]
        only_b = con.execute(f"SELECT count(*) FROM (SELECT {cols} FROM b.{table} "
                             f"EXCEPT ALL SELECT {cols} FROM a.{table})").fetchall()[0][0]
        if only_a or only_b:
            found[table] = (only_a, only_b)
    con.close()
    return found


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory):
    """A warehouse built after night 1, then loaded with night 2 and built incrementally,
    and a copy of it built in full: (incremental, full, form fills moved, log records)."""
    root = tmp_path_factory.mktemp("incremental")
    exports, later = root / "exports", root / "later"
    generate_exports(exports, GeneratorSpec(n_accounts=90, seed=41))
    moved = _split_nights(exports, later)
    params = AnalysisParams()
    inc = root / "incremental.duckdb"
    with warehouse.connected(inc) as con:
        ingest.load_exports(con, exports)
        build.build(con, params)
        ingest.load_exports(con, later)
    full = root / "full.duckdb"
    shutil.copy(inc, full)
    with warehouse.connected(inc) as con:
        build.build(con, params)
        parts = con.execute("SELECT count(*) FROM int_touchpoints_staged WHERE load_id = 2"
                            ).fetchall()[0][0]
    with warehouse.connected(full) as con:
        build.build(con, params, full=True)
    return inc, full, moved, parts


def test_an_incremental_build_gives_the_full_builds_tables_row_for_row(two_nights):
    inc, full, moved, new_rows = two_nights
    assert moved > 20 and new_rows > moved  # form fills and the email events of a quarter
    assert _differences(inc, full) == {}


def test_form_fills_tie_old_visits_and_those_rows_are_rebuilt(two_nights):
    """The late identities are real in this data: visits loaded on night 1 belong to an
    account only after night 2 (so a build that kept every old row would be wrong)."""
    inc, full, _, _ = two_nights
    with duckdb.connect(str(full), read_only=True) as con:
        retied = con.execute("""
            SELECT count(*) FROM int_touchpoints_staged
            WHERE load_id = 1 AND source = 'web_events' AND account_id IS NOT NULL
              AND anonymous_id IN (SELECT anonymous_id FROM int_touchpoints_staged
                                   WHERE load_id = 2 AND source = 'web_events')""").fetchall()
    assert retied[0][0] > 0


def test_the_second_build_is_partial_and_full_rebuild_is_not(tmp_path):
    exports, later = tmp_path / "exports", tmp_path / "later"
    generate_exports(exports, GeneratorSpec(n_accounts=30, seed=43))
    _split_nights(exports, later)
    params = AnalysisParams()

    def parts(con, **options) -> dict:
        in_part: dict = {}
        build.build(con, options.pop("params", params), in_part=in_part, **options)
        return in_part

    staged = "int_touchpoints_staged"
    with warehouse.connected(tmp_path / "w.duckdb") as con:
        ingest.load_exports(con, exports)
        assert parts(con) == {staged: "no earlier build recorded in model_state"}
        ingest.load_exports(con, later)
        new_rows = con.execute("SELECT count(*) FROM raw_web_events WHERE _load_id = 2"
                               ).fetchall()[0][0] + con.execute(
            "SELECT count(*) FROM raw_email_events WHERE _load_id = 2").fetchall()[0][0]
        new, rebuilt = parts(con)[staged]
        assert new == new_rows and rebuilt > new  # the fills tie visits loaded before
        assert parts(con) == {staged: (0, 0)}  # nothing new: none
        assert parts(con, full=True) == {staged: "asked for (--full-rebuild or a full reload)"}
        # Other settings: the last build's rows were made with others, so in full.
        assert parts(con, params=AnalysisParams(dormancy_days=200)) == {
            staged: "the settings, the stage map file, the SQL or the code changed"}
        con.execute(f"DROP TABLE {staged}")
        assert parts(con, params=AnalysisParams(dormancy_days=200)) == {
            staged: "its table is missing"}


def test_a_dropped_model_table_is_something_new(sample_warehouse, tmp_path):
    """A run on an unchanged folder builds again when a model's table was dropped since
    (by hand, by a tool), instead of "nothing new" over a warehouse that lacks it."""
    copy = tmp_path / "w.duckdb"
    shutil.copy(sample_warehouse, copy)
    params = AnalysisParams()
    with warehouse.connected(copy) as con:
        _, fingerprint = build.is_up_to_date(con, params)
        build.record_build(con, fingerprint)
        assert build.is_up_to_date(con, params)[0]
        con.execute("DROP TABLE int_touchpoints_staged")
        assert build.missing_models(con) == ["int_touchpoints_staged"]
        assert not build.is_up_to_date(con, params)[0]
