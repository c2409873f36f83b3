"""The build: every model of `sql/` (and the stage states) from the loaded tables, all or
nothing, and the fingerprint that says whether a build is needed.

This module sits above the ones it calls (stages for the configuration tables,
sql_models for the runner, stage_inference through its Python models) and nothing
below imports it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb

from journey_mining import channels, stages
from journey_mining.errors import ModelError
from journey_mining.sources import SOURCES
from journey_mining.sql_models import (
    SPARK_SUFFIX,
    SQL_DIR,
    discover_models,
    model_tables,
    run_models,
    unknown_parameters,
    unknown_reads,
)
from journey_mining.warehouse import (
    ensure_schema,
    reset_run_issues,
    table_exists,
    transaction,
)

__all__ = ["CONFIG_TABLES", "LOADED_TABLES", "build", "build_fingerprint", "checked_models",
           "code_fingerprint", "incremental_fingerprint", "settings_fingerprint",
           "is_up_to_date", "last_build_fingerprint", "last_build_place", "missing_models",
           "model_parameters", "record_build"]

# Written by the build before the models: the ladder, the stage map and the rules they join.
CONFIG_TABLES = ("stage_ladder", "stage_map", "negative_signals", "observed_stage_changes",
                 "score_rules", "free_mail_domains", "engagement_rules", "outbound_activities",
                 "marketing_channel_rules", "marketing_own_domains")


# Written by ingest: what the staging models read.
LOADED_TABLES = (*(spec.raw_table for spec in SOURCES.values()), "rejected_rows")


def model_parameters(params, as_of=None) -> dict:
    """The `$parameters` the SQL models bind, from the analysis parameters."""
    inference = params.stage_inference
    return {
        "as_of": as_of or params.as_of,
        "dormancy_days": params.dormancy_days,
        "churn_horizon_days": params.churn_horizon_days,
        "inactivity_days": params.engagements.inactivity_days,
        "instant": params.engagements.instant,
        "churn_kind": params.churn_kind,
        "period_days": inference.period_days,
        "window_days": inference.window_days,
    }


def checked_models() -> list:
    """The models in run order, refused in one sentence (ModelError) when one does not
    parse, reads a table nothing builds before it or binds a parameter the build does
    not give: checked before a build starts
    (and by `journey run` before Prefect starts), never half-way."""
    models = discover_models()
    problems = unknown_reads(models, {*CONFIG_TABLES, *LOADED_TABLES})
    from journey_mining.config import AnalysisParams

    problems += unknown_parameters(models, set(model_parameters(AnalysisParams())))
    if problems:
        raise ModelError("; ".join(problems))
    return models


def build(con: duckdb.DuckDBPyConnection, params, as_of=None, full: bool = False,
          in_part: dict | None = None, spark=None) -> list[str]:
    """Rebuild all models with the analysis parameters (`AnalysisParams`), all or nothing.

    Writes the configuration tables the models join (stage ladder and map, free-mail
    domains, engagement rules), then every model in dependency order, the stage
    states included (their Python model infers the stays), in one transaction: a
    build that fails anywhere leaves the previous build's tables as they were.
    `as_of` overrides `params.as_of`; when both are unset the models use the latest
    occurred_at in the warehouse. The incremental models (`sql_models.Incremental`)
    are built in part when the last build made them with the same code and settings,
    unless `full` (`journey run --full-rebuild`); `in_part` receives, per incremental
    model, (new rows, rows rebuilt) when built in part, else why it was built in full.
    With `spark` (a `spark_engine.SparkBuild`, engine.kind spark) the SQL models run on
    Spark into that build's Parquet tables, every one in full, and the warehouse gets
    views over them in the same transaction: a failed build removes its tables and
    leaves the views on the previous build's.
    Returns the names of the tables written.
    """
    stage_map = stages.load_stage_map(params.stage_map)
    models = checked_models()
    ensure_schema(con)
    if spark is None:
        return _build(con, params, models, stage_map, as_of, full, in_part, None)
    try:
        built = _build(con, params, models, stage_map, as_of, True, in_part, spark)
    except BaseException:
        spark.discard()
        raise
    spark.keep_only_this()
    return built


def _build(con, params, models, stage_map, as_of, full, in_part, spark) -> list[str]:
    state = incremental_fingerprint(params)
    with transaction(con):
        increments, reasons = _increments(con, models, state, full)
        if spark is not None:
            reasons = dict.fromkeys(reasons, "engine.kind spark builds every model in full")
        # Until the plan records this build complete, no earlier fingerprint stands for
        # what the warehouse holds (a partial run_all must not look like nothing new).
        con.execute("DROP TABLE IF EXISTS build_state")
        stages.register_stage_map(con, stage_map)
        stages.register_free_mail_domains(con, params.free_mail_domains)
        stages.register_engagement_rules(con, params.engagements)
        stages.register_outbound_activities(con, params.outbound_activities)
        channels.register_channel_rules(con, params.marketing_channels)
        reset_run_issues(con)
        for name in (*CONFIG_TABLES, *LOADED_TABLES) if spark is not None else ():
            spark.share(con, name)
        done: dict = {}
        built = run_models(con, model_parameters(params, as_of), context=params,
                           models=models, increments=increments, in_part=done, spark=spark)
        incremental = [m.name for m in models if m.incremental]
        for name in incremental if in_part is not None else ():
            # The runner builds in full a model whose lookup table is missing.
            in_part[name] = done.get(name) or reasons.get(
                name, "a table it matches rows against is missing")
        _record_increments(con, incremental, state)
        return built


def incremental_fingerprint(params) -> str:
    """What an incremental model's rows are made with besides the data: the SQL and
    library code, the settings and the stage map file. A table left by a build with
    another fingerprint is rebuilt in full."""
    payload = {"code": code_fingerprint(), **settings_fingerprint(params)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _increments(con: duckdb.DuckDBPyConnection, models: list, state: str, full: bool
                ) -> tuple[dict[str, int], dict[str, str]]:
    """The incremental models the last build made with this fingerprint, each with the
    last load that build included (`model_state`), and why each other one is built in
    full (a sentence for the log)."""
    names = [m.name for m in models if m.incremental is not None]
    if full:
        return {}, dict.fromkeys(names, "asked for (--full-rebuild or a full reload)")
    if not table_exists(con, "model_state"):
        return {}, dict.fromkeys(names, "no earlier build recorded in model_state")
    rows = con.execute("SELECT model, load_id, fingerprint FROM model_state").fetchall()
    recorded = {model: load for model, load, fingerprint in rows if fingerprint == state}
    increments, reasons = {}, {}
    for name in names:
        if name in recorded and table_exists(con, name):
            increments[name] = recorded[name]
        elif name in recorded:
            reasons[name] = "its table is missing"
        elif name in {row[0] for row in rows}:
            reasons[name] = "the settings, the stage map file, the SQL or the code changed"
        else:
            reasons[name] = "no earlier build recorded in model_state"
    return increments, reasons


def _record_increments(con: duckdb.DuckDBPyConnection, names: list[str], state: str) -> None:
    """`model_state`: per incremental model, the fingerprint and the last load its table
    holds, written in the build's transaction (it commits with the tables it describes)."""
    con.execute("CREATE OR REPLACE TABLE model_state AS SELECT unnest($names) AS model, "
                "$f AS fingerprint, (SELECT coalesce(max(load_id), 0) FROM loads) AS load_id, "
                "now()::TIMESTAMP AS built_at", {"names": names, "f": state})


def code_fingerprint(spark: bool = False) -> str:
    """The SQL models, their declarations and the library's code and default settings
    files (the stage map and marketing channel rules a config does not replace), as one
    hash. A model's Spark version (`<name>.spark.sql`) counts only for a `spark` build:
    adding one does not rebuild a DuckDB warehouse."""
    code = hashlib.sha256()
    library = Path(__file__).parent
    models = [path for path in sorted(SQL_DIR.rglob("*.sql"))
              if spark or not path.name.endswith(SPARK_SUFFIX)]
    for path in models + sorted(SQL_DIR.rglob("*.yml")) + \
            sorted(library.rglob("*.py")) + sorted(library.rglob("*.yml")):
        code.update(path.read_bytes())
    return code.hexdigest()


def settings_fingerprint(params) -> dict:
    """The analysis settings as a build or fit depends on them: the parameters and the
    content of the user's stage map file (edited in place, its path stays the same)."""
    stage_map = Path(params.stage_map) if params.stage_map else None
    return {"params": params.model_dump(mode="json"),
            "stage_map": (hashlib.sha256(stage_map.read_bytes()).hexdigest()
                          if stage_map is not None and stage_map.is_file() else None)}


def build_fingerprint(con: duckdb.DuckDBPyConnection, params, as_of=None, outputs=None,
                      place: str = "duckdb") -> str:
    """What a run depends on: loaded data, analysis parameters, SQL and library code (with
    the models' Spark versions on a Spark build), which files it writes (`outputs`:
    exports turned back on are written by the next run even when nothing else changed),
    and where the models' tables are (`spark_engine.tables_place`: another engine, or a
    Spark warehouse moved or named by another URI, is a build of its own)."""
    from journey_mining import __version__

    last_load = con.execute(
        "SELECT coalesce(max(load_id), 0) FROM loads WHERE rows_loaded > 0 OR rows_rejected > 0"
    ).fetchall()[0][0]
    payload = {"load": last_load, **settings_fingerprint(params),
               "as_of": str(as_of), "code": code_fingerprint(place != "duckdb"),
               "version": __version__, "place": place,
               "outputs": outputs.model_dump(mode="json") if outputs is not None else None}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def last_build_fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
    """The fingerprint of the last complete run, or None before the first."""
    if not table_exists(con, "build_state"):
        return None
    rows = con.execute("SELECT fingerprint FROM build_state").fetchall()
    return rows[0][0] if rows else None


def is_up_to_date(con: duckdb.DuckDBPyConnection, params, as_of=None, outputs=None,
                  place: str = "duckdb") -> tuple[bool, str]:
    """(nothing new?, this build's fingerprint): the one "nothing new" decision, taken by
    the plan's `check for changes` step and by `journey run` before Prefect starts. A
    model's table dropped since (by hand, by a tool) is something new: the run builds it."""
    current = build_fingerprint(con, params, as_of, outputs, place)
    return last_build_fingerprint(con) == current and not missing_models(con), current


def missing_models(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The tables and views of the models that the warehouse does not hold."""
    present = {row[0] for row in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
        "UNION SELECT view_name FROM duckdb_views() WHERE schema_name = 'main' "
        "AND NOT internal").fetchall()}
    return [name for name in model_tables() if name not in present]


def record_build(con: duckdb.DuckDBPyConnection, fingerprint: str,
                 place: str = "duckdb") -> None:
    """Remember the fingerprint of a complete run (build, mining, analysis, report) and
    where its model tables are (`spark_engine.tables_place`)."""
    con.execute("CREATE OR REPLACE TABLE build_state AS "
                "SELECT $fingerprint AS fingerprint, now()::TIMESTAMP AS built_at, "
                "$place AS tables_at", {"fingerprint": fingerprint, "place": place})


def last_build_place(con: duckdb.DuckDBPyConnection) -> str | None:
    """Where the last complete run's model tables are (None: no complete run recorded,
    or one recorded before the place was)."""
    if not table_exists(con, "build_state") or "tables_at" not in {
            row[0] for row in con.execute("DESCRIBE build_state").fetchall()}:
        return None
    rows = con.execute("SELECT tables_at FROM build_state").fetchall()
    return rows[0][0] if rows else None
