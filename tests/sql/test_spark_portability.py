"""The SQL models give DuckDB's answer on Apache Spark (issue 30): every model is in the
portable subset, and each one, transpiled by `spark_sql.to_spark` and run by Spark on
the same input tables, writes the table DuckDB writes (floats to 1e-9 relative).

The Spark tests start one local[2] session for the module (about 8 s) and share one
xdist group, so the two workers never run two JVMs. They are marked `spark`
(`pytest -m spark` runs them alone) and skip, naming what is missing, when pyspark or a
Java runtime is absent (`make test` installs both).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import duckdb
import pytest

from journey_mining.build import model_parameters
from journey_mining.config import Config
from journey_mining.errors import ModelError
from journey_mining.spark_engine import SparkBuild, spark_sql_of
from journey_mining.spark_sql import portability_problems, to_spark
from journey_mining.sql_models import (
    SPARK_SUFFIX,
    SQL_DIR,
    discover_models,
    unknown_parameters,
    used_parameters,
)

# Every model layer, and the SQL the later steps run: a file here that leaves the subset
# would fail on Spark. The exports are written by DuckDB from the tables (not models).
CHECKED_FOLDERS = ("staging", "intermediate", "states", "marts", "analysis", "mining")

# Files still outside the subset, and why; an entry whose file is portable fails the
# test, so the list never claims more than is there.
NOT_YET_PORTABLE: dict[str, str] = {
    "states/methods/window_stays.sql": "the window method (not the default) bounds its RANGE "
                                       "frame by $window_days; Spark takes a literal bound",
}


def _sql_files():
    """The DuckDB SQL of the checked folders; a model with its own Spark SQL beside it
    (`<name>.spark.sql`) runs that on Spark instead, so neither is held to the subset."""
    for folder in CHECKED_FOLDERS:
        for path in sorted((SQL_DIR / folder).rglob("*.sql")):
            if not (path.name.endswith(SPARK_SUFFIX)
                    or path.with_name(path.stem + SPARK_SUFFIX).is_file()):
                yield path


def test_every_sql_file_is_in_the_portable_subset():
    found = {}
    for path in _sql_files():
        problems = portability_problems(path.read_text())
        name = path.relative_to(SQL_DIR).as_posix()
        if problems:
            found[name] = problems
    unexplained = {name: p for name, p in found.items() if name not in NOT_YET_PORTABLE}
    assert not unexplained, unexplained
    assert set(NOT_YET_PORTABLE) <= set(found), "portable now: remove from NOT_YET_PORTABLE"


# Windows over every row of a table, in the models Spark builds: Spark runs each as one
# task (all rows through one core), so none may be over an event-sized table. Allowed:
# a window over a GROUP BY's rows, and these, each over a table of the size named.
WHOLE_TABLE_WINDOWS: dict[str, str] = {
    "marts/stage_funnel.sql": "one row per stage",
}
BUILD_LAYERS = ("staging", "intermediate", "states", "marts")


def _whole_table_windows(sql: str) -> list[str]:
    """The windows of a query that neither partition (themselves or by the named window
    they use) nor run over a GROUP BY's rows."""
    import sqlglot
    from sqlglot import exp

    found = []
    for window in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Window):
        if window.arg_key == "windows":
            continue  # a named window's definition: judged where it is used
        select = window.find_ancestor(exp.Select)
        named = {str(w.this): w for w in (select.args.get("windows") or [])}
        definition = named.get(str(window.args.get("alias")), window)
        if not (definition.args.get("partition_by") or select.args.get("group")):
            found.append(window.sql("duckdb"))
    return found


def test_no_model_spark_builds_runs_a_window_over_a_whole_table():
    found = {}
    for layer in BUILD_LAYERS:
        for path in sorted((SQL_DIR / layer).glob("*.sql")):
            windows = _whole_table_windows(path.read_text())
            name = str(path.relative_to(SQL_DIR))
            if windows and name not in WHOLE_TABLE_WINDOWS:
                found[name] = windows
            if not windows and name in WHOLE_TABLE_WINDOWS:
                found[name] = ["listed as allowed, but has none: remove it from the list"]
    assert found == {}


@pytest.mark.parametrize(("sql", "finds"), [
    ("select row_number() over (order by occurred_at) from touchpoints", 1),
    ("select lag(x) over w from t window w as (order by y)", 1),
    ("select lag(x) over w from t window w as (partition by a order by y)", 0),
    ("select sum(count(*)) over (order by d) from t group by d", 0),
])
def test_the_window_check_tells_a_partitioned_window_from_a_whole_table_one(sql, finds):
    assert len(_whole_table_windows(sql)) == finds


@pytest.mark.parametrize(("sql", "problem"), [
    ("select * from a asof left join b on a.k = b.k and a.t >= b.t", "ASOF join"),
    ("select * replace (1 as x) from t", "SELECT * REPLACE"),
    ("select len(x) from t", "len()"),
    ("select hash(x) from t", "hash()"),
    ("select regexp_replace(x, 'a', 'b') from t", "regexp_replace()"),
    ("select list(x order by y desc) from t", "list(... ORDER BY ... DESC)"),
    ("select sum(x) over (order by t range between to_days($d) preceding and current row) "
     "from t", "a window frame bounded by an expression"),
])
def test_the_subset_check_names_each_construct_spark_answers_differently(sql, problem):
    (found,) = portability_problems(sql)
    assert found.startswith(problem)
    with pytest.raises(ValueError, match="not portable SQL"):
        to_spark(sql)


@pytest.mark.parametrize("sql", [
    "select length(name), array_length(tags) from t",
    "select regexp_replace(domain, '^(www\\.)?(.*)$', '\\2') from t",
    "select regexp_replace(x, 'a', 'b', 'g') from t",
    "select list(x order by y) from t",
    "select sum(x) over (order by t rows between unbounded preceding and 1 preceding) from t",
])
def test_the_subset_check_passes_what_the_rules_make_equal(sql):
    assert portability_problems(sql) == []


# -- on Spark ---------------------------------------------------------------------------

def _spark_missing() -> str | None:
    """Why Spark cannot start here, in the command's own words (None: it can)."""
    from journey_mining.errors import ConfigError
    from journey_mining.spark_engine import check_available

    try:
        check_available()
    except ConfigError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def spark():
    missing = _spark_missing()
    if missing:
        pytest.skip(missing)
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (SparkSession.builder.master("local[2]").appName("journey-mining tests")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
               .config("spark.log.structuredLogging.enabled", "false")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# Rules checked on rows a reader can check by eye: each query gives DuckDB's answer.
RULE_CASES = {
    "epoch keeps the fraction of a second":
        "select epoch(timestamp '2025-01-01 00:00:01.250') as s",
    "date_diff in days counts midnights, not 24-hour spans":
        "select date_diff('day', timestamp '2025-01-01 23:00', "
        "timestamp '2025-01-02 01:00') as d",
    "to_days adds whole days":
        "select timestamp '2025-01-01 06:00' + to_days(3) as t",
    "list keeps its order and its NULLs":
        "select list(v order by k) as l from (values (2, 'b'), (1, null), (3, 'c')) t(k, v)",
    "list distinct in order":
        "select list(distinct v order by v) as l from (values ('b'), ('a'), ('b')) t(v)",
    "a JSON field read by a key with a space":
        "select json_extract_string('{\"deal size\": 5}', '$.\"' || 'deal size' || '\"') as v",
    "text that is not JSON is NULL":
        "select try_cast('{oops' as json) is null as bad, "
        "try_cast('{\"a\": 1}' as json)::varchar as good",
    "a full, case-insensitive match":
        "select regexp_full_match('Google', 'goo.*', 'i') as a, "
        "regexp_full_match('my google', 'goo.*', 'i') as b",
    "a slice by both ends":
        "select list_slice(['a', 'b', 'c', 'd'], 2, 3) as s",
    "a back-reference in a replacement":
        "select regexp_replace('https://www.example.com/x', "
        "'^([a-z]+://)?(www\\.)?([^/]+).*$', '\\3') as host",
    "three quantiles in one call, read by position":
        "select q[1] as median, q[3] as p90 from (select quantile_cont(x, [0.5, 0.75, 0.9]) "
        "as q from (select x::double as x from (values (1), (2), (4), (10)) t(x)))",
    "one quantile":
        "select quantile_cont(x::double, 0.25) as q from (values (1), (2), (4), (10)) t(x)",
}


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
@pytest.mark.parametrize("case", list(RULE_CASES), ids=list(RULE_CASES))
def test_a_rule_gives_duckdbs_answer_on_spark(spark, case):
    sql = RULE_CASES[case]
    expected = duckdb.sql(sql).fetchall()
    got = [tuple(_plain(v) for v in row) for row in spark.sql(to_spark(sql)).collect()]
    assert got == [tuple(_plain(v) for v in row) for row in expected]


def _plain(value):
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "asDict"):
        return _plain(list(value.asDict().values()))
    if isinstance(value, float):
        return round(value, 9)
    return value


@pytest.fixture(scope="module")
def sample_built(sample_warehouse) -> Path:
    return sample_warehouse


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_every_model_gives_duckdbs_table_on_spark(spark, sample_built, tmp_path):
    """Each SQL model, run by Spark on the input tables DuckDB built from the sample,
    writes DuckDB's table: same columns in the same order with the same types, and the
    same rows (as a multiset), floats to 1e-9 relative. The Python models (the stays) are
    read, not run. (A generated world goes through `journey run` on both engines in
    tests/pipelines/test_spark_engine.py, every table compared.)"""
    differences = models_differing_on_spark(spark, sample_built, tmp_path)
    assert differences == {}


def models_differing_on_spark(spark, warehouse: Path, work: Path) -> dict[str, str]:
    """Per model whose Spark table differs from DuckDB's, what differs."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        names = [row[0] for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' UNION ALL "
            "SELECT view_name FROM duckdb_views() WHERE schema_name = 'main' "
            "AND NOT internal").fetchall()]
        for name in names:
            path = work / "in" / f"{name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY (FROM \"{name}\") TO '{path}' (FORMAT parquet)")
            spark.read.parquet(str(path)).createOrReplaceTempView(name)
        parameters = model_parameters(Config().analysis)
        differences = {}
        for model in discover_models():
            if model.sql is None:
                continue
            out = work / "out" / model.name
            sql = spark_sql_of(model)
            try:
                spark.sql(sql, args=used_parameters(parameters, sql, ":")).write.parquet(
                    str(out))
            except Exception as exc:  # the engine's own error, for the assertion message
                differences[model.name] = str(exc).strip().splitlines()[0]
                continue
            found = relation_difference(con, f'"{model.name}"',
                                        f"read_parquet('{out}/*.parquet')",
                                        CLOCK_COLUMNS.get(model.name, set()))
            if found:
                differences[model.name] = found
        return differences
    finally:
        con.close()


# Columns a clock fills, not the data.
CLOCK_COLUMNS = {"run_parameters": {"built_at"}}


def relation_difference(con, duck: str, spark: str, skip: set[str] = frozenset()
                        ) -> str | None:
    """None when two relations (SQL relation texts, DuckDB's side first) have the same
    columns with the same types and the same rows as a multiset, floats to 1e-9 relative
    and the `skip` columns left out; else what differs."""
    columns = con.execute(f"DESCRIBE SELECT * FROM {duck}").fetchall()
    spark_columns = con.execute(f"DESCRIBE SELECT * FROM {spark}").fetchall()
    duck_types = [(c[0], _same_kind(c[1])) for c in columns]
    spark_types = [(c[0], _same_kind(c[1])) for c in spark_columns]
    if duck_types != spark_types:
        return f"columns {duck_types} on DuckDB, {spark_types} on Spark"
    compared = ", ".join(_comparable(column, kind) for column, kind, *_ in columns
                         if column not in skip)
    missing, extra = (con.execute(
        f"SELECT count(*) FROM (SELECT {compared} FROM {one} EXCEPT ALL "
        f"SELECT {compared} FROM {other})").fetchall()[0][0]
        for one, other in ((duck, spark), (spark, duck)))
    if missing or extra:
        return f"{missing} of DuckDB's rows not on Spark, {extra} of Spark's not on DuckDB"
    return None


def _same_kind(kind: str) -> str:
    """Column types that read alike: DuckDB's JSON is text; Spark's zoned timestamps are
    read back as naive UTC ones (spark_engine.SparkBuild.publish)."""
    return {"JSON": "VARCHAR", "TIMESTAMP WITH TIME ZONE": "TIMESTAMP"}.get(kind, kind)


def _comparable(column: str, kind: str) -> str:
    """A column as compared: floats to 10 significant digits (1e-9 relative), others as
    text (timestamps, lists and structs alike)."""
    if kind in ("DOUBLE", "FLOAT", "REAL") or kind.startswith("DECIMAL"):
        return f"printf('%.9e', \"{column}\"::DOUBLE) AS \"{column}\""
    return f"\"{column}\"::VARCHAR AS \"{column}\""



def _override_models(folder: Path, with_model: bool = True) -> Path:
    """A layer with one model outside the subset (`len()` of a list and a `$parameter`)
    and its own Spark SQL beside it."""
    layer = folder / "staging"
    layer.mkdir(parents=True)
    if with_model:
        (layer / "pairs.sql").write_text(
            "select k, len([k, k + $step]) as n, k + $step as next_k from numbers")
    (layer / f"pairs{SPARK_SUFFIX}").write_text(
        "select k, size(array(k, k + :step)) as n, k + :step as next_k from numbers")
    return folder


def test_a_spark_version_beside_a_model_is_its_spark_sql_not_a_model(tmp_path):
    (model,) = discover_models(_override_models(tmp_path), layers=("staging",))
    assert model.name == "pairs" and "len(" in model.sql
    assert spark_sql_of(model) == (tmp_path / "staging" / "pairs.spark.sql").read_text()
    assert portability_problems(model.sql)  # why it needs one


def test_a_spark_version_without_its_model_is_named(tmp_path):
    with pytest.raises(ModelError, match=r"staging/pairs.spark.sql is the Spark version "
                                         r"of a model pairs.sql that is not there"):
        discover_models(_override_models(tmp_path, with_model=False), layers=("staging",))


@pytest.mark.parametrize(("file", "sql", "said"), [
    ("pairs.spark.sql", "select k + :stepp as next_k from numbers",
     "staging/pairs.spark.sql binds :stepp, which the build does not give (it gives :step)"),
    ("pairs.sql", "select k + $stepp as next_k from numbers",
     "staging/pairs.sql binds $stepp, which the build does not give (it gives $step)"),
    ("pairs.spark.sql", "select k + from", "staging/pairs.spark.sql does not parse as spark")])
def test_a_parameter_the_build_does_not_give_is_named_before_the_build(
        tmp_path, file, sql, said):
    """Found when the models are checked (before `journey run` starts Prefect), not when
    Spark reaches the model, minutes into a build."""
    folder = _override_models(tmp_path)
    models = discover_models(folder, layers=("staging",))
    assert unknown_parameters(models, {"step"}) == []
    (folder / "staging" / file).write_text(sql)
    problems = unknown_parameters(discover_models(folder, layers=("staging",)), {"step"})
    assert len(problems) == 1 and problems[0].startswith(said)


def test_a_spark_version_counts_in_the_fingerprint_of_spark_builds_only(tmp_path, monkeypatch):
    """Adding a `.spark.sql` rebuilds a Spark warehouse, never a DuckDB one."""
    from journey_mining import build as build_lib

    folder = _override_models(tmp_path / "sql")
    (folder / "staging" / "pairs.spark.sql").unlink()
    monkeypatch.setattr(build_lib, "SQL_DIR", folder)
    before = build_lib.code_fingerprint(), build_lib.code_fingerprint(spark=True)
    _override_models(tmp_path / "again")
    shutil.copy(tmp_path / "again" / "staging" / "pairs.spark.sql", folder / "staging")
    assert build_lib.code_fingerprint() == before[0]
    assert build_lib.code_fingerprint(spark=True) != before[1]


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_a_failing_spark_version_is_named_as_the_file_spark_ran(spark, tmp_path):
    """The error names `pairs.spark.sql`, the file to edit, not the DuckDB model."""
    folder = _override_models(tmp_path / "sql")
    (folder / "staging" / "pairs.spark.sql").write_text("select no_such_column from numbers")
    (model,) = discover_models(folder, layers=("staging",))
    con = duckdb.connect(str(tmp_path / "journeys.duckdb"))
    con.execute("CREATE TABLE numbers AS SELECT range AS k FROM range(5)")
    build = SparkBuild(spark, tmp_path / "journeys.duckdb")
    build.share(con, "numbers")
    with pytest.raises(ModelError, match=r"^model staging/pairs\.spark\.sql failed on Spark: "):
        build.run_sql_model(con, model, {"step": 2})


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_a_model_with_its_own_spark_sql_runs_that_on_spark(spark, tmp_path):
    """The build on Spark runs the `.spark.sql` (the DuckDB file's `len()` would fail
    there), binds its `:parameters`, and publishes DuckDB's table."""
    (model,) = discover_models(_override_models(tmp_path / "sql"), layers=("staging",))
    con = duckdb.connect(str(tmp_path / "journeys.duckdb"))
    con.execute("CREATE TABLE numbers AS SELECT range AS k FROM range(5)")
    build = SparkBuild(spark, tmp_path / "journeys.duckdb")
    build.share(con, "numbers")
    build.run_sql_model(con, model, {"step": 2, "unused": 1})
    on_spark = sorted(con.execute("FROM pairs").fetchall())
    expected = sorted(con.execute(model.sql, used_parameters({"step": 2}, model.sql))
                      .fetchall())
    assert on_spark == expected == [(k, 2, k + 2) for k in range(5)]


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_a_folder_warehouse_keeps_only_the_committed_build(spark, tmp_path):
    """The build of a folder warehouse (no URI): its tables are Parquet under
    journeys.tables/<build id>, the catalog's views read them; after the commit only
    earlier builds' folders go (a user's own folder stays), and a failed build removes
    its own folder and nothing else."""
    catalog = tmp_path / "journeys.duckdb"
    root = tmp_path / "journeys.tables"
    (root / "0123456789ab" / "touchpoints").mkdir(parents=True)  # an earlier build
    (root / "notes").mkdir()
    (model,) = discover_models(_override_models(tmp_path / "sql"), layers=("staging",))
    con = duckdb.connect(str(catalog))
    con.execute("CREATE TABLE numbers AS SELECT range AS k FROM range(5)")
    kept = SparkBuild(spark, catalog)
    kept.share(con, "numbers")
    kept.run_sql_model(con, model, {"step": 1})
    kept.keep_only_this()
    assert sorted(p.name for p in root.iterdir()) == sorted([kept.build_id, "notes"])
    assert (root / kept.build_id / "pairs").is_dir()
    assert str(root / kept.build_id / "pairs") in con.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = 'pairs'").fetchall()[0][0]
    failed = SparkBuild(spark, catalog)
    failed.share(con, "numbers")
    assert (root / failed.build_id / "numbers").is_dir()
    failed.discard()
    assert sorted(p.name for p in root.iterdir()) == sorted([kept.build_id, "notes"])
    assert con.execute("SELECT max(next_k) FROM pairs").fetchall() == [(5,)]
