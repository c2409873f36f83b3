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
* every other `.sql` under `sql/` (`analysis/`, `mining/`, `states/methods/`) is a
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

__all__ = ["LAYERS", "SQL_DIR", "Model", "discover_models", "model_tables", "read_sql",
           "reads_of", "run_models", "unknown_reads"]


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
    from sqlglot import exp

    try:
        trees = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        where = f"{path.parent.name}/{path.name}" if path else "SQL"
        raise ModelError(f"{where} does not parse: {str(exc).splitlines()[0]}") from None
    read: set[str] = set()
    for tree in trees:
        if tree is None:
            continue
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        read |= {table.name.lower() for table in tree.find_all(exp.Table)} - ctes
    return read


def _python_models(sql_dir: Path, layer: str) -> list[Model]:
    models = []
    for path in sorted((sql_dir / layer).glob("*.yml")):
        spec = yaml.safe_load(path.read_text()) or {}
        if "python" in spec:
            models.append(Model(path.stem, layer, path, python=spec["python"],
                                declared_reads=tuple(spec.get("reads", ())),
                                also_writes=tuple(spec.get("writes", ()))))
    return models


def model_tables(sql_dir: Path = SQL_DIR, layers: tuple[str, ...] = LAYERS) -> list[str]:
    """The names of the tables the models write, from their files alone (no parsing):
    what a step that builds them declares it writes."""
    names = []
    for layer in layers:
        names += [path.stem for path in sorted((sql_dir / layer).glob("*.sql"))]
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


def discover_models(sql_dir: Path = SQL_DIR, layers: tuple[str, ...] = LAYERS) -> list[Model]:
    """Every model under sql/<layer>/, in an order where each runs after what it reads."""
    models = {}
    for layer in layers:
        for path in sorted((sql_dir / layer).glob("*.sql")):
            models[path.stem] = Model(path.stem, layer, path, path.read_text())
        for model in _python_models(sql_dir, layer):
            models[model.name] = model
    writer = {table: model.name for model in models.values() for table in model.tables}
    graph = {}
    for model in models.values():
        graph[model.name] = {writer[n] for n in model.reads() if n in writer} - {model.name}
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
) -> list[str]:
    """Rebuild every model table; returns the model names in run order.

    `parameters` are bound as `$name` placeholders in the model SQL, never formatted
    in; a Python model is called with the connection and `context` (the build's
    analysis parameters); `models` (in run order) when already discovered. Call inside
    `warehouse.transaction` for all or nothing.
    """
    parameters = parameters or {}
    built = []
    for model in models if models is not None else discover_models(sql_dir, layers):
        kind = model.materialized.upper()
        started = time.perf_counter()
        try:
            _replace_other_kind(con, model.name, kind)
            if model.sql is None:
                _store_python_model(con, model, _call(model, con, context))
            else:
                used = {k: v for k, v in parameters.items() if f"${k}" in model.sql}
                con.execute(f'CREATE OR REPLACE {kind} "{model.name}" AS\n{model.sql}', used)
        except duckdb.InterruptException:
            raise  # a stop, not a failure of the model
        except duckdb.Error as exc:
            raise ModelError(f"model {model.layer}/{model.path.name} failed: "
                             f"{str(exc).splitlines()[0]}") from exc
        seconds = time.perf_counter() - started
        _log.debug("model %s/%s (%s) built in %.2f s", model.layer, model.name,
                   kind.lower(), seconds, extra={"model": model.name, "seconds": seconds})
        built.extend(model.tables)
    return built


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
