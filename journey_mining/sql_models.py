"""The SQL models and the runner that builds them in dependency order.

Every SELECT that makes a table lives in a file under `sql/`:

* `sql/<layer>/<name>.sql` for the layers in `LAYERS` is a *model*: the runner
  creates the table (or view) `<name>` from it. Where the model reads is parsed from
  the SQL itself (sqlglot, DuckDB dialect: FROM, JOIN, comma joins, subqueries), so
  the order the runner takes is the order the SQL needs, with nothing to declare.
* `sql/<layer>/<name>.yml` with a `python:` key is a *Python model*: a table a
  library function computes (the stage-inference methods, which are not SQL). Its
  yml declares `reads:`, the tables the function reads; the runner puts it in the
  graph like any model and stores the frame it returns.
* `sql/<layer>/<name>.yml` beside a SQL model may declare it `incremental:` (see
  `Incremental`): between builds with the same code and settings, the runner rebuilds
  only the rows that can have changed and keeps the others, which a full build would
  give unchanged.
* `sql/<layer>/<name>.spark.sql` beside a SQL model is that model in Spark SQL, run on
  Spark instead of the transpiled file (`engine.kind: spark`), for a model that cannot
  keep to the portable subset (sql/README.md); none needs one today.
* every other `.sql` under `sql/` (`analysis/`, `exports/`, `mining/`, `states/methods/`) is a
  query a library function runs with bound `$parameters` (`read_sql`), never a
  template: identifiers are fixed in the file, values are bound.
"""

from __future__ import annotations

import functools
import graphlib
import importlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import yaml

from journey_mining.errors import JourneyError, ModelError
from journey_mining.warehouse import store_frame

_log = logging.getLogger(__name__)

__all__ = ["LAYERS", "SPARK_SUFFIX", "SQL_DIR", "Incremental", "Model", "discover_models",
           "model_tables", "parameters_of", "read_sql", "reads_of", "run_models",
           "unknown_parameters", "unknown_reads"]


def _sql_dir() -> Path:
    """The SQL models: the `journey_mining.sql` package of an installed wheel, or the
    repository's sql/ folder in a checkout (the same folder, mapped by pyproject)."""
    beside = Path(__file__).resolve().parent.parent / "sql"
    if (beside / "marts").is_dir():
        return beside
    from importlib import resources

    return Path(str(resources.files("journey_mining.sql")))


SQL_DIR = _sql_dir()
# The layers of models, in the order data flows through them (the runner sorts by
# what each model reads; the layer only says where a model's file is).
LAYERS = ("staging", "intermediate", "states", "marts")


@functools.cache
def read_sql(name: str) -> str:
    """The text of `sql/<name>.sql` (e.g. "analysis/drivers_windows"), for a library
    function to run with bound parameters."""
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"no SQL file {path}")
    return path.read_text()


@dataclass(frozen=True)
class Incremental:
    """How a model is rebuilt in part (its yml's `incremental:`).

    The promise the yml makes, and the equality test of both ways checks: the row of
    each `unique_key` is made from the rows of `rows_from` with that key alone, and from
    the rows of each `lookups` table whose column (the same name on both sides) matches
    theirs. Loaded tables only grow, so a row can differ from the last build's only when
    its input row is new (`new_rows`: rows_from's column holding the load that brought
    it, later than the last build's) or when a lookup row it matches was added, removed
    or changed. The lookups are rebuilt in full before it; their previous rows are kept
    until it is built to tell which changed.
    """

    unique_key: str
    rows_from: str
    new_rows: str
    lookups: tuple[tuple[str, str], ...] = ()   # (column, table)

    @classmethod
    def from_spec(cls, spec: dict, path: Path) -> Incremental:
        try:
            return cls(spec["unique_key"], spec["rows_from"], spec["new_rows"],
                       tuple((column, table) for column, table in
                             (spec.get("lookups") or {}).items()))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"{path.parent.name}/{path.name}: incremental needs unique_key, "
                             f"rows_from, new_rows and optional lookups (column: table); "
                             f"{exc!r} is wrong") from None


@dataclass(frozen=True)
class Model:
    """One model: a SQL file, or a Python function declared in a yml (`python:`).

    `materialized` is 'table' unless the file says `-- materialized: view`: a model
    read once, or a plain projection, is a view, so the build does not write a copy.
    """

    name: str
    layer: str
    path: Path
    sql: str | None = None
    python: str | None = None            # "module:function" of a Python model
    declared_reads: tuple[str, ...] = field(default=())
    also_writes: tuple[str, ...] = field(default=())   # a Python model's other tables
    incremental: Incremental | None = None
    spark_sql: str | None = None         # its own Spark SQL (<name>.spark.sql), if any

    @property
    def materialized(self) -> str:
        if self.sql is None:
            return "table"
        found = re.search(r"^--\s*materialized:\s*(table|view)\b", self.sql, re.M)
        return found.group(1) if found else "table"

    def reads(self) -> set[str]:
        """The tables the model reads: parsed from its SQL, or its yml's `reads:`."""
        return set(self.declared_reads) if self.sql is None else reads_of(self.sql, self.path)

    @property
    def tables(self) -> tuple[str, ...]:
        """The tables this model writes: its own, and a Python model's `writes:`."""
        return (self.name, *self.also_writes)

    def function(self) -> Callable:
        """The Python model's function: (connection, analysis parameters) -> its
        DataFrame, or a dict of table name -> DataFrame when it writes several."""
        module, _, name = self.python.partition(":")
        return getattr(importlib.import_module(module), name)


def reads_of(sql: str, path: Path | None = None) -> set[str]:
    """Every table a query reads (FROM, JOIN, comma joins, subqueries), less its CTEs, in
    lower case (DuckDB's names are case-insensitive). A query that does not parse is a
    ModelError naming `path`."""
    import sqlglot

    try:
        return set(_query_facts(sql, "duckdb")[0])
    except sqlglot.errors.ParseError as exc:
        where = f"{path.parent.name}/{path.name}" if path else "SQL"
        raise ModelError(f"{where} does not parse: {str(exc).splitlines()[0]}") from None


def parameters_of(sql: str, dialect: str = "duckdb") -> set[str]:
    """The names a query binds: `$name` in DuckDB SQL, `:name` in Spark SQL (a model's
    own Spark version). Parsed, so `'$.path'` in a string or `::INT` is no parameter."""
    return set(_query_facts(sql, dialect)[1])


@functools.lru_cache(maxsize=512)
def _query_facts(sql: str, dialect: str) -> tuple[frozenset[str], frozenset[str]]:
    """(tables read, parameters bound) of a query, from one parse. Cached on the text:
    sqlglot takes ~30 ms a model, and every build and check reads the same files again
    (about 2.5 s a build otherwise, most of a small build's time)."""
    import sqlglot
    from sqlglot import exp

    read: set[str] = set()
    bound: set[str] = set()
    for tree in sqlglot.parse(sql, read=dialect):
        if tree is None:
            continue
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        read |= {table.name.lower() for table in tree.find_all(exp.Table)} - ctes
        bound |= {node.name for node in tree.find_all(exp.Placeholder) if node.name}
    return frozenset(read), frozenset(bound)


def unknown_parameters(models: list[Model], known: set[str]) -> list[str]:
    """A sentence per model file that binds a parameter the build does not give (a typo,
    or one of another version): found before a build starts, not when the model runs."""
    import sqlglot

    problems = []
    for model in models:
        versions = [(model.path.name, model.sql, "duckdb", "$"),
                    (f"{model.name}{SPARK_SUFFIX}", model.spark_sql, "spark", ":")]
        for name, sql, dialect, mark in versions:
            if sql is None:
                continue
            try:
                unknown = sorted(parameters_of(sql, dialect) - known)
            except sqlglot.errors.ParseError as exc:
                problems.append(f"{model.layer}/{name} does not parse as {dialect} SQL: "
                                f"{str(exc).splitlines()[0]}")
                continue
            if unknown:
                problems.append(
                    f"{model.layer}/{name} binds {', '.join(mark + u for u in unknown)}, "
                    f"which the build does not give (it gives "
                    f"{', '.join(mark + k for k in sorted(known))})")
    return problems


def _python_models(sql_dir: Path, layer: str) -> list[Model]:
    models = []
    for path in sorted((sql_dir / layer).glob("*.yml")):
        spec = yaml.safe_load(path.read_text()) or {}
        if "python" in spec:
            models.append(Model(path.stem, layer, path, python=spec["python"],
                                declared_reads=tuple(spec.get("reads", ())),
                                also_writes=tuple(spec.get("writes", ()))))
    return models


def _incremental_spec(sql_path: Path) -> Incremental | None:
    spec_path = sql_path.with_suffix(".yml")
    if not spec_path.is_file():
        return None
    spec = (yaml.safe_load(spec_path.read_text()) or {}).get("incremental")
    if spec is None:
        return None
    if "run_parameters" in reads_of(sql_path.read_text(), sql_path):
        # Its rows would change with the as-of date, which moves with every load.
        raise ModelError(f"{sql_path.parent.name}/{sql_path.name} reads run_parameters, so "
                         "it cannot be incremental: remove incremental from its yml")
    return Incremental.from_spec(spec, spec_path)


def _incremental_inputs(model: Model) -> set[str]:
    """What an incremental model's partial build reads besides its SQL: it runs after them."""
    if model.incremental is None:
        return set()
    return {model.incremental.rows_from, *(t for _, t in model.incremental.lookups)}


def model_tables(sql_dir: Path = SQL_DIR, layers: tuple[str, ...] = LAYERS) -> list[str]:
    """The names of the tables the models write, from their files alone (no parsing):
    what a step that builds them declares it writes."""
    names = []
    for layer in layers:
        names += [path.stem for path in _model_files(sql_dir / layer)]
        names += [t for model in _python_models(sql_dir, layer) for t in model.tables]
    return names


def unknown_reads(models: list[Model], available: set[str]) -> list[str]:
    """One sentence per model that reads a table no model builds and `available` (the
    configuration and loaded tables) does not hold: a table a later step writes, or a
    typo. The runner would read whatever an earlier run left there, so it refuses."""
    built = {t for model in models for t in model.tables}
    problems = []
    for model in models:
        missing = sorted(model.reads() - built - available)
        if missing:
            problems.append(f"{model.layer}/{model.path.name} reads {', '.join(missing)}, "
                            "which no model builds before it (a table of a later step, or a "
                            "typo)")
    return problems


SPARK_SUFFIX = ".spark.sql"


def _model_files(folder: Path) -> list[Path]:
    """The SQL models of one layer folder: its .sql files but the Spark versions beside
    them, each of which must have its model (else a ModelError naming it)."""
    files = sorted(folder.glob("*.sql"))
    models = [path for path in files if not path.name.endswith(SPARK_SUFFIX)]
    names = {path.stem for path in models}
    for path in files:
        if path.name.endswith(SPARK_SUFFIX) and path.name[:-len(SPARK_SUFFIX)] not in names:
            stem = path.name[:-len(SPARK_SUFFIX)]
            raise ModelError(f"{folder.name}/{path.name} is the Spark version of a model "
                             f"{stem}.sql that is not there: add the model, or remove it")
    return models


def discover_models(sql_dir: Path = SQL_DIR, layers: tuple[str, ...] = LAYERS) -> list[Model]:
    """Every model under sql/<layer>/, in an order where each runs after what it reads."""
    models = {}
    for layer in layers:
        for path in _model_files(sql_dir / layer):
            override = path.with_name(f"{path.stem}{SPARK_SUFFIX}")
            models[path.stem] = Model(
                path.stem, layer, path, path.read_text(), incremental=_incremental_spec(path),
                spark_sql=override.read_text() if override.is_file() else None)
        for model in _python_models(sql_dir, layer):
            models[model.name] = model
    writer = {table: model.name for model in models.values() for table in model.tables}
    graph = {}
    for model in models.values():
        inputs = model.reads() | _incremental_inputs(model)
        graph[model.name] = {writer[n] for n in inputs if n in writer} - {model.name}
    order = graphlib.TopologicalSorter(graph).static_order()
    return [models[name] for name in order]


def _replace_other_kind(con: duckdb.DuckDBPyConnection, name: str, kind: str) -> None:
    """A model that changed from table to view (or back) replaces the other kind."""
    other = "TABLE" if kind == "VIEW" else "VIEW"
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = $n AND $o = 'TABLE' "
        "UNION ALL SELECT count(*) FROM duckdb_views() WHERE view_name = $n "
        "AND $o = 'VIEW' AND NOT internal", {"n": name, "o": other}).fetchall()
    if sum(r[0] for r in exists):
        con.execute(f'DROP {other} "{name}"')


def run_models(
    con: duckdb.DuckDBPyConnection, parameters: dict | None = None, sql_dir: Path = SQL_DIR,
    layers: tuple[str, ...] = LAYERS, context=None, models: list[Model] | None = None,
    increments: dict[str, int] | None = None, in_part: dict | None = None, spark=None,
) -> list[str]:
    """Rebuild every model table; returns the model names in run order.

    `parameters` are bound as `$name` placeholders in the model SQL, never formatted
    in; a Python model is called with the connection and `context` (the build's
    analysis parameters); `models` (in run order) when already discovered.
    `increments`: the incremental models whose table the last build left with the same
    code and settings, each with the last load that build included; they are rebuilt in
    part (`Incremental`), and `in_part` (when given) receives, per model built in part,
    (new rows, rows rebuilt). `spark` (a `spark_engine.SparkBuild`): the SQL models run
    on Spark, and the Python models' tables are shared with it. Call inside
    `warehouse.transaction` for all or nothing.
    """
    parameters = parameters or {}
    models = models if models is not None else discover_models(sql_dir, layers)
    increments = dict(increments or {})
    kept = _keep_previous_lookups(con, models, increments)
    built = []
    try:
        for model in models:
            started = time.perf_counter()
            how = _run_model(con, model, parameters, context, increments.get(model.name),
                             spark)
            if isinstance(how, tuple):
                if in_part is not None:
                    in_part[model.name] = how
                how = "in part"
            seconds = time.perf_counter() - started
            _log.debug("model %s/%s (%s) built in %.2f s", model.layer, model.name, how,
                       seconds, extra={"model": model.name, "seconds": seconds})
            built.extend(model.tables)
    finally:
        for name in kept:
            con.execute(f'DROP TABLE IF EXISTS "{_previous(name)}"')
    return built


def _run_model(con, model: Model, parameters: dict, context, since: int | None,
               spark=None) -> str | tuple[int, int]:
    """Build one model (in part when `since`, the last build's load, is given); returns
    how, for the log, or for a partial build (new rows, rows rebuilt)."""
    kind = model.materialized.upper()
    try:
        if spark is not None and model.sql is None:
            _replace_other_kind(con, model.name, "TABLE")
            _store_python_model(con, model, _call(model, con, context))
            for table in model.tables:
                spark.share(con, table)
            return "table, shared with spark"
        if spark is not None and kind == "TABLE":
            spark.run_sql_model(con, model, parameters)
            return "on spark"
        if spark is not None:
            # A view stays a view on both: Spark's for the models after it, DuckDB's (the
            # same SQL, over the build's tables, below) for readers; nothing is written.
            spark.run_sql_view(model, parameters)
        if since is not None:
            return _build_increment(con, model, used_parameters(parameters, model.sql), since)
        _replace_other_kind(con, model.name, kind)
        if model.sql is None:
            _store_python_model(con, model, _call(model, con, context))
        else:
            con.execute(f'CREATE OR REPLACE {kind} "{model.name}" AS\n{model.sql}',
                        used_parameters(parameters, model.sql))
        return kind.lower()
    except duckdb.InterruptException:
        raise  # a stop, not a failure of the model
    except duckdb.Error as exc:
        raise ModelError(f"model {model.layer}/{model.path.name} failed: "
                         f"{str(exc).splitlines()[0]}") from exc


def used_parameters(parameters: dict, sql: str | None, mark: str = "$") -> dict:
    """The bound parameters a query names (`$name` in DuckDB, `:name` in Spark SQL): an
    engine is given only those."""
    return {k: v for k, v in parameters.items() if sql and f"{mark}{k}" in sql}


def _previous(name: str) -> str:
    return f"{name}__previous"


def _keep_previous_lookups(con, models: list[Model], increments: dict[str, int]) -> list[str]:
    """Rename the last build's lookup tables of the models in `increments` to
    `<name>__previous` (a catalog change, nothing copied), so the partial build can tell
    which of their rows changed once they are rebuilt. A model whose lookup is not a
    table left by the last build is removed from `increments`: it is built in full."""
    by_name = {model.name: model for model in models}
    tables = {row[0] for row in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
        "AND database_name = current_database()").fetchall()}
    for name in list(increments):
        lookups = {t for _, t in by_name[name].incremental.lookups}
        if name not in tables or not lookups <= tables:
            del increments[name]
    kept = sorted({t for name in increments for _, t in by_name[name].incremental.lookups})
    for name in kept:
        con.execute(f'DROP TABLE IF EXISTS "{_previous(name)}"')
        con.execute(f'ALTER TABLE "{name}" RENAME TO "{_previous(name)}"')
    return kept


def _build_increment(con, model: Model, parameters: dict, since: int) -> tuple[int, int]:
    """Rebuild the rows of an incremental model that can have changed since the last
    build (its load `since`), and keep the others.

    The keys to rebuild: those of the input rows loaded after `since`, and of the input
    rows whose lookup column matches a row added, removed or changed in that lookup.
    The model's own SQL runs on those input rows alone (a temporary view of the same
    name shadows the input while it runs), and its rows replace theirs.
    """
    spec = model.incremental
    key, source = spec.unique_key, spec.rows_from
    changed = "".join(
        f' OR "{column}" IN (SELECT "{column}" FROM (FROM "{table}" EXCEPT '
        f'FROM "{_previous(table)}") UNION ALL SELECT "{column}" FROM (FROM '
        f'"{_previous(table)}" EXCEPT FROM "{table}"))'
        for column, table in spec.lookups)
    con.execute(
        f'CREATE OR REPLACE TEMP TABLE _rebuild_keys AS SELECT "{key}" AS key, '
        f'bool_or("{spec.new_rows}" > $since) AS is_new FROM "{source}" '
        f'WHERE "{spec.new_rows}" > $since{changed} GROUP BY ALL', {"since": since})
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    con.execute(f'CREATE TEMP VIEW "{source}" AS SELECT * FROM "{database}".main."{source}" '
                f'WHERE "{key}" IN (SELECT key FROM _rebuild_keys)')
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _rebuilt AS\n{model.sql}", parameters)
    finally:
        con.execute(f'DROP VIEW IF EXISTS temp.main."{source}"')
    target = f'"{database}".main."{model.name}"'
    con.execute(f'DELETE FROM {target} WHERE "{key}" IN (SELECT key FROM _rebuild_keys)')
    con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM _rebuilt")
    new, rebuilt = con.execute(
        "SELECT count(*) FILTER (WHERE is_new), count(*) FROM _rebuild_keys").fetchall()[0]
    con.execute("DROP TABLE _rebuild_keys")
    con.execute("DROP TABLE _rebuilt")
    return new, rebuilt


def _call(model: Model, con: duckdb.DuckDBPyConnection, context):
    """A Python model's frame(s); a failure names the model like a failing SQL model does
    (a JourneyError, which already says what to do, and a stop pass unchanged)."""
    try:
        return model.function()(con, context)
    except (JourneyError, duckdb.Error):
        raise
    except Exception as exc:
        raise duckdb.Error(f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc


def _store_python_model(con: duckdb.DuckDBPyConnection, model: Model, result) -> None:
    frames = result if isinstance(result, dict) else {model.name: result}
    if set(frames) != set(model.tables):
        raise duckdb.Error(f"{model.python} returned {sorted(frames)}, its yml declares "
                           f"{sorted(model.tables)}")
    for name, frame in frames.items():
        store_frame(con, name, frame)
