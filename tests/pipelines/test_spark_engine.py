"""`journey run` with `engine.kind: spark`, as a user runs it (issue 30): the report is
written, every model's table equals the default engine's on the same exports, with the
warehouse a URI (`file://`, which goes through Hadoop's FileSystem as s3a:// or hdfs://
would, and keeps a local copy of its files beside the catalog), `journey export-marts`
writes the same Parquet from both engines, and a build that fails on Spark changes
nothing a reader sees. A folder warehouse is the same build without the remote copy:
its bookkeeping is tested on a small build in tests/sql/test_spark_portability.py.

One small generated world with a seed and settings of its own (not the sample's). The
commands run as subprocesses, each with its own Spark session (~8 s to start) and
Prefect server of the test process (`user_env`); the module shares one xdist group with
the other Spark tests.
"""

from __future__ import annotations

import duckdb
import pytest

from journey_mining.generator import GeneratorSpec, generate_exports
from tests.pipelines.test_adversarial import journey
from tests.sql.test_spark_portability import _spark_missing, relation_difference

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark"), pytest.mark.slow]

SPARK_CONFIG = """\
engine:
  kind: spark
  master: local[2]
  conf:
    spark.sql.shuffle.partitions: 2
"""
# The same engine with a URI warehouse: the catalog is a local file the config names.
URI_CONFIG = SPARK_CONFIG.replace("engine:\n", "engine:\n  catalog: uri_catalog/journeys.duckdb\n")
STALE_BUILD = "0123456789ab"  # a folder named like a build, left by an earlier run

# Columns a clock or the run's own fingerprint fills, not the data.
CLOCK_COLUMNS = {"built_at", "loaded_at", "trained_at", "fitted_at", "finished_at",
                 "started_at_run", "recorded_at", "fingerprint"}
# Tables about the run itself (when, with which settings), not the journeys.
BOOKKEEPING = {"build_state", "loads", "load_files", "model_state", "model_fits",
               "model_runs", "kpi_history", "run_issues", "data_test_results"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    missing = _spark_missing()
    if missing:
        pytest.skip(missing)
    work = tmp_path_factory.mktemp("spark_engine")
    generate_exports(work / "exports", GeneratorSpec(n_accounts=50, seed=67, regress=0.3,
                                                     skip=0.2))
    duck = journey("run", "--input", "exports", "--warehouse", "duck.duckdb",
                   "--outputs", "out_duck", "--reports", "rep_duck", "--no-static-images",
                   cwd=work, shared_api=True)
    (work / "uri.yml").write_text(URI_CONFIG)
    for root in (work / "lake" / "journeys.tables", work / "uri_catalog" / "journeys.tables"):
        (root / STALE_BUILD / "touchpoints").mkdir(parents=True)
        (root / STALE_BUILD / "touchpoints" / "part-0.parquet").write_bytes(b"old")
        (root / "notes").mkdir()  # not a build: a user's folder stays
    uri = journey("run", "--input", "exports", "--warehouse", (work / "lake").as_uri(),
                  "--config", "uri.yml", "--outputs", "out_uri", "--reports", "rep_uri",
                  "--no-static-images", cwd=work, shared_api=True)
    return work, duck, uri


def test_journey_run_on_spark_writes_the_report(runs):
    work, _, uri = runs
    assert uri.returncode == 0, uri.stderr[-3000:]
    assert "engine: spark (local[2])" in uri.stderr
    # Prefect's own line format (py4j's logging once replaced it with Python's default)
    assert " | INFO    | Task run 'build-" in uri.stderr and "INFO:prefect" not in uri.stderr
    assert (work / "uri_catalog" / "journeys.duckdb").is_file()
    report = next((work / "rep_uri").rglob("index.html"))
    assert "report:" in uri.stdout and report.stat().st_size > 100_000


def test_a_uri_warehouse_keeps_the_build_there_and_its_files_beside_the_catalog(runs):
    work, _, uri = runs
    assert uri.returncode == 0, uri.stderr[-3000:]
    assert f"the models' tables go to {(work / 'lake').as_uri()}/journeys.tables" in uri.stderr
    remote, local = work / "lake" / "journeys.tables", work / "uri_catalog" / "journeys.tables"
    # The earlier build is gone from both; what is not a build stays.
    (build,) = {p.name for p in remote.iterdir()} - {"notes"}
    assert {p.name for p in local.iterdir()} == {build, "notes"} and build != STALE_BUILD
    # Spark wrote every model at the URI; the views read the catalog's copy of its files.
    written = {p.name for p in (remote / build).iterdir()}
    assert {"stg_crm__accounts", "account_journeys", "stage_funnel", "engagements"} <= written
    assert "touchpoints" not in written  # a view model: computed by Spark, never written
    for name in ("account_journeys", "stage_funnel"):
        assert (sorted(p.name for p in (remote / build / name).glob("*.parquet"))
                == sorted(p.name for p in (local / build / name).glob("*.parquet")) != [])
    # The loaded tables were uploaded for Spark, and not kept twice on this machine.
    assert (remote / build / "raw_web_events").is_dir()
    assert not (local / build / "raw_web_events").exists()
    con = duckdb.connect(str(work / "uri_catalog" / "journeys.duckdb"), read_only=True)
    sql = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'account_journeys'"
                      ).fetchall()[0][0]
    assert str(local / build / "account_journeys") in sql


def test_every_table_equals_the_default_engines(runs):
    work, duck, uri = runs
    assert uri.returncode == duck.returncode == 0, (uri.stderr[-2000:], duck.stderr[-2000:])
    con = duckdb.connect(str(work / "uri_catalog" / "journeys.duckdb"), read_only=True)
    con.execute(f"ATTACH '{work / 'duck.duckdb'}' AS duck (READ_ONLY)")
    names = [row[0] for row in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = 'journeys' "
        "AND schema_name = 'main' UNION ALL SELECT view_name FROM duckdb_views() "
        "WHERE database_name = 'journeys' AND schema_name = 'main' AND NOT internal"
    ).fetchall()]
    views = {row[0] for row in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE database_name = 'journeys' "
        "AND NOT internal").fetchall()}
    assert {"touchpoints", "account_journeys", "engagements", "stage_funnel"} <= views
    differing = {}
    for name in sorted(set(names) - BOOKKEEPING):
        found = relation_difference(con, f'duck.main."{name}"', f'journeys.main."{name}"',
                                    CLOCK_COLUMNS)
        if found:
            differing[name] = found
    assert differing == {}
    assert len(names) > 60


def test_export_marts_writes_the_same_parquet_from_both_engines(runs):
    work, *_ = runs
    spark = journey("export-marts", "--warehouse", (work / "lake").as_uri(), "--config",
                    "uri.yml", "--to", "marts_spark", cwd=work)
    duck = journey("export-marts", "--warehouse", "duck.duckdb", "--to", "marts_duck",
                   cwd=work)
    assert spark.returncode == 0 and duck.returncode == 0, (spark.stderr, duck.stderr)
    files = sorted(p.name for p in (work / "marts_spark").glob("*.parquet"))
    assert files == sorted(p.name for p in (work / "marts_duck").glob("*.parquet"))
    assert {"account_journeys.parquet", "account_stage_history.parquet",
            "stage_funnel.parquet", "engagements.parquet"} <= set(files)
    con = duckdb.connect()
    # A column with no value yet (no churn model on a small world) still has its type:
    # BI tools refuse Parquet's null type.
    untyped = {(name, column) for name in files for column, kind, *_ in con.execute(
        f"DESCRIBE SELECT * FROM '{work / 'marts_duck' / name}'").fetchall()
        if kind.strip('"') == "NULL"}
    assert untyped == set()
    differing = {}
    for name in files:
        if name.removesuffix(".parquet") in BOOKKEEPING:
            continue
        found = relation_difference(con, f"'{work / 'marts_duck' / name}'",
                                    f"'{work / 'marts_spark' / name}'", CLOCK_COLUMNS)
        if found:
            differing[name] = found
    assert differing == {}


def test_a_build_that_fails_on_spark_changes_nothing_readers_see(runs):
    """On the URI warehouse, where a build has two copies to leave as they were: Spark's
    at the URI and the catalog's beside it."""
    work, _, uri = runs
    assert uri.returncode == 0
    catalog = work / "uri_catalog" / "journeys.duckdb"
    roots = (work / "lake" / "journeys.tables", work / "uri_catalog" / "journeys.tables")
    before = _snapshot(catalog), [sorted(p.name for p in root.iterdir()) for root in roots]
    planted = (
        "import journey_mining.spark_engine as se\n"
        "from journey_mining.errors import ModelError\n"
        "run = se.SparkBuild.run_sql_model\n"
        "def failing(self, con, model, parameters):\n"
        "    if model.name == 'stg_crm__contacts':\n"
        "        import pathlib\n"
        "        remote = pathlib.Path('lake/journeys.tables') / self.build_id\n"
        "        pathlib.Path('failed_build.txt').write_text(' '.join([\n"
        "            self.build_id, str((remote / 'stg_crm__accounts').is_dir()),\n"
        "            str((self.folder / 'stg_crm__accounts').is_dir())]))\n"
        "        raise ModelError('model staging/stg_crm__contacts.sql failed "
        "on Spark: planted')\n"
        "    return run(self, con, model, parameters)\n"
        "se.SparkBuild.run_sql_model = failing\n")
    failed = journey("run", "--input", "exports", "--warehouse", (work / "lake").as_uri(),
                     "--config", "uri.yml", "--outputs", "out_uri", "--reports", "rep_uri",
                     "--no-static-images", "--full-rebuild", cwd=work, python=planted,
                     shared_api=True)
    assert failed.returncode != 0
    assert "stg_crm__contacts" in failed.stdout + failed.stderr
    # The failed build had written its earlier models at the URI and beside the catalog.
    build, remote_written, local_written = (work / "failed_build.txt").read_text().split()
    assert (remote_written, local_written) == ("True", "True")
    after = _snapshot(catalog), [sorted(p.name for p in root.iterdir()) for root in roots]
    assert after == before


def _snapshot(catalog) -> dict[str, int]:
    """What a reader sees: every mart's row count and a checksum of its rows."""
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        return {name: con.execute(
            f'SELECT count(*), sum(hash(columns(*))) FROM (FROM "{name}")').fetchall()[0]
            for name in ("touchpoints", "account_journeys", "engagements", "stage_funnel",
                         "account_stage_history")}
    finally:
        con.close()


def test_a_warehouse_is_used_where_its_tables_are_or_refused_in_one_sentence(runs):
    """Found by a new user: a Spark config on a DuckDB warehouse said "nothing new", an
    export from a mistyped URI exported the catalog's other URI, and an export from a
    moved Spark folder ended in a traceback. Each is now one sentence naming where the
    tables are and what to do, before Spark or Prefect starts, and changes nothing."""
    work, duck, uri = runs
    assert duck.returncode == uri.returncode == 0
    (work / "spark.yml").write_text(SPARK_CONFIG)
    catalog = work / "uri_catalog" / "journeys.duckdb"
    before = _snapshot(work / "duck.duckdb"), _snapshot(catalog)
    lake = (work / "lake").as_uri()
    typo = (work / "lkae").as_uri()
    engine = journey("run", "--input", "exports", "--warehouse", "duck.duckdb", "--config",
                     "spark.yml", "--no-static-images", cwd=work)
    other_uri = journey("run", "--input", "exports", "--warehouse", typo, "--config",
                        "uri.yml", "--no-static-images", cwd=work)
    export = journey("export-marts", "--warehouse", typo, "--config", "uri.yml", "--to",
                     "typo_marts", cwd=work)
    (work / "a_file").write_text("")
    to_file = journey("export-marts", "--warehouse", lake, "--config", "uri.yml", "--to",
                      "a_file", cwd=work)
    for result in (engine, other_uri, export, to_file):
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "engine: spark" not in result.stderr + result.stdout
    assert engine.stderr.startswith(
        "error: duck.duckdb: its last build keeps the model tables inside the DuckDB file, "
        f"and this command would use them on Spark at {work / 'duck.tables'}")
    assert "journey run --full-rebuild" in engine.stderr
    for result in (other_uri, export):
        assert (f"keeps the model tables on Spark at {lake}/journeys.tables, and this "
                f"command would use them on Spark at {typo}/journeys.tables") in result.stderr
    assert to_file.stderr.strip() == "error: --to a_file: a file is there; give a folder for " \
                                     "the Parquet files"
    assert not (work / "lkae").exists() and not (work / "typo_marts").exists()
    assert (_snapshot(work / "duck.duckdb"), _snapshot(catalog)) == before
