"""The pipeline's steps, declared once: name, what each reads and writes, how it runs.

The Prefect flow (`pipelines/journey_pipeline.py`), the test fixture and the
benchmark all run this list, so the order of the steps lives here only.
`run_all` runs it without Prefect: a notebook that changes the as-of date or the
stage map gets a warehouse where every table (SQL marts, mining, churn) is at
the same date.

Each step opens the warehouse for itself (`warehouse.connected`) and closes it
when done, so a Prefect task per step holds no connection between steps.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from journey_mining import warehouse
from journey_mining.config import Config
from journey_mining.errors import DataQualityError, JourneyError
from journey_mining.operations import is_stop

__all__ = ["STEPS", "RunContext", "Step", "run_all", "run_step", "step_named", "with_logger"]

log = logging.getLogger("journey_mining")


@dataclass
class RunContext:
    """Everything a step needs: where the warehouse is, the config, the run's options."""

    warehouse: str | Path
    config: Config = field(default_factory=Config)
    input_dir: str | Path | None = None
    as_of: dt.datetime | None = None
    full_reload: bool = False
    outputs: str | Path | None = None       # process models and log exports (None: not written)
    reports_dir: str | Path | None = None   # the HTML report (None: not written)
    run_name: str | None = None              # report folder name (default: asof-<date>)
    static_images: bool = True
    pseudonym_key: str | None = None
    logger: logging.Logger | logging.LoggerAdapter = log
    results: dict = field(default_factory=dict)   # step name -> what it returned

    def as_of_name(self) -> str:
        """`asof-<date>` of the build: names report folder, outputs and artifacts."""
        with warehouse.connected(self.warehouse, read_only=True) as con:
            as_of = con.execute("SELECT as_of FROM run_parameters").fetchall()[0][0]
        return f"asof-{as_of:%Y-%m-%d}"


@dataclass(frozen=True)
class Step:
    """One step of the pipeline. `optional`: if it fails, the failure is recorded in
    `run_issues` and the run goes on (the report says what is missing)."""

    name: str
    run: Callable[[RunContext], dict]
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    optional: bool = False
    retries: int = 0


# -- the steps ------------------------------------------------------------------------

def _load(ctx: RunContext) -> dict:
    from journey_mining import ingest

    if ctx.input_dir is None:
        return {"skipped": "no input folder"}
    with warehouse.connected(ctx.warehouse) as con:
        report = ingest.load_exports(
            con, ctx.input_dir, ctx.config.ingest, full_reload=ctx.full_reload,
            pseudonym_key=ctx.pseudonym_key,
            on_file=lambda f: ctx.logger.debug("reading %s (%s, %s bytes)", f.name, f.source,
                                               f.bytes))
    for source in dict.fromkeys(f.source for f in report.files):
        files = [f for f in report.files if f.source == source]
        ctx.logger.info(
            "%s: %d files (%d unchanged), %s rows read, %s loaded, %s duplicate, %s rejected",
            source, len(files), sum(f.status == "skipped" for f in files),
            *(f"{sum(getattr(f, a) for f in files):,}"
              for a in ("rows_read", "rows_loaded", "rows_duplicate", "rows_rejected")))
    for warning in report.warnings:
        ctx.logger.warning(warning)
    ctx.logger.info(report.summary())
    return {"load_id": report.load_id, "rows_read": report.rows_read,
            "rows_loaded": report.rows_loaded, "rows_duplicate": report.rows_duplicate,
            "rows_rejected": report.rows_rejected, "files": len(report.files),
            "files_skipped": report.files_skipped}


def _gate(ctx: RunContext) -> dict:
    from journey_mining import checks

    with warehouse.connected(ctx.warehouse, read_only=True) as con:
        breaches = checks.load_gate_breaches(con, ctx.config.quality)
    if breaches:
        raise DataQualityError("data-quality gate: " + "; ".join(breaches), breaches)
    return {"breaches": []}


def _build(ctx: RunContext) -> dict:
    from journey_mining import journeys

    with warehouse.connected(ctx.warehouse) as con:
        built = warehouse.build(con, ctx.config.analysis, as_of=ctx.as_of)
        journeys.require_touchpoints(con)
        unmapped = journeys.unmapped_activities(con)
    ctx.logger.info("rebuilt %d models: %s", len(built), ", ".join(built))
    for activity, touchpoints in unmapped:
        ctx.logger.warning("activity '%s' (%s touchpoint%s) is in no stage of the stage map, "
                           "so it moves no account; map it in a copy of the stage map "
                           "(analysis.stage_map) if it should", activity, f"{touchpoints:,}",
                           "" if touchpoints == 1 else "s")
    return {"tables": built}


def _mine(ctx: RunContext) -> dict:
    from journey_mining import mining

    outputs = Path(ctx.outputs) / (ctx.run_name or ctx.as_of_name()) if ctx.outputs else None
    with warehouse.connected(ctx.warehouse) as con:
        result = mining.mine(con, outputs, mining.MiningParams(
            collapse_repeats=ctx.config.analysis.collapse_repeats))
    for level, summary in result.summary.items():
        ctx.logger.info(
            "%s level: %d variants over %d accounts; the top %d cover %.1f%%, the long tail "
            "%.1f%%", level, summary["variants"], summary["cases"], summary["top_k"],
            100 * summary["top_k_coverage"], 100 * summary["long_tail_share"])
    for name, path in result.files.items():
        ctx.logger.info("wrote %s: %s", name, path)
    for step, exc in result.issues:
        ctx.logger.error("%s failed, the rest of the mining is stored: %s", step, exc)
    return {"tables": result.tables, "files": {k: str(v) for k, v in result.files.items()}}


def _reengagement(ctx: RunContext) -> dict:
    from journey_mining import reengagement

    with warehouse.connected(ctx.warehouse) as con:
        tables = reengagement.analyse_reengagement(con)
        kpis = con.execute("SELECT re_engaged_accounts, first_engagement_ended, "
                           "re_engagement_rate FROM journey_kpis").fetchall()[0]
    if kpis[1]:
        ctx.logger.info("re-engagement: %d of %d accounts whose first engagement ended came "
                        "back (%.1f%%)", kpis[0], kpis[1], 100 * kpis[2])
    return {"tables": list(tables)}


def _churn(ctx: RunContext) -> dict:
    from journey_mining import churn

    analysis = ctx.config.analysis
    with warehouse.connected(ctx.warehouse) as con:
        run = churn.score_churn(con, horizon_days=analysis.churn_horizon_days,
                                max_snapshots=analysis.churn_max_snapshots)
        churn.store_churn(con, run)
    r = run.run
    if r["status"] == "trained":
        ctx.logger.info(
            "churn model: backtest ROC AUC %.3f vs %.3f for recency alone (PR AUC %.3f vs "
            "%.3f) on %d client snapshots with %d cancellations; %s the baseline",
            r["roc_auc"], r["recency_roc_auc"], r["pr_auc"], r["recency_pr_auc"],
            r["n_test_rows"], r["n_test_positive"],
            "beats" if r["beats_recency_baseline"] else "does NOT beat")
    else:
        ctx.logger.warning("churn: too little history to train (%s); scored with the "
                           "documented fallback (historical rate, rule-based bands)",
                           r["reason"])
    return {"tables": ["churn_scores", "model_runs"], "status": r["status"],
            "scored": r["n_scored"]}


def _drivers(ctx: RunContext) -> dict:
    from journey_mining import attribution, drivers, representatives

    tables = {}
    with warehouse.connected(ctx.warehouse) as con:
        tables["conversion_drivers"] = drivers.conversion_drivers(con)
        tables["attribution"] = attribution.attribution(con)
        tables["representative_journeys"] = representatives.representative_journeys(con)
        with warehouse.transaction(con):
            for name, frame in tables.items():
                warehouse.store_frame(con, name, frame)
    found = tables["conversion_drivers"]
    ctx.logger.info("conversion drivers: %d of %d tested touchpoints and roles go with moving "
                    "on or not (Benjamini-Hochberg q < 0.05); %d representative journeys",
                    int(found.significant.sum()), len(found),
                    len(tables["representative_journeys"]))
    return {"tables": list(tables)}


def _data_tests(ctx: RunContext) -> dict:
    from journey_mining import checks

    quality = ctx.config.quality
    with warehouse.connected(ctx.warehouse) as con:
        results = checks.run_checks(con)
        checks.store_results(con, results, quality)
    for r in (r for r in results if not r.passed):
        severity = quality.severity_of(r.model)
        (ctx.logger.error if severity == "error" else ctx.logger.warning)(
            "data test failed (%s): %s %s (%d rows)", severity, r.model, r.check,
            r.failing_rows)
    return {"failed": sum(not r.passed for r in results),
            "errors": checks.failed_test_breaches(results, quality)}


def _kpi_history(ctx: RunContext) -> dict:
    from journey_mining import journeys

    failed = ctx.results.get("data tests", {}).get("failed", 0)
    with warehouse.connected(ctx.warehouse) as con:
        journeys.record_kpi_history(con, failed)
    return {"tables": ["kpi_history"]}


def _report(ctx: RunContext) -> dict:
    from journey_mining import reports

    if ctx.reports_dir is None:
        return {"report": None}
    with warehouse.connected(ctx.warehouse, read_only=True) as con:
        index = reports.write_report(con, Path(ctx.reports_dir),
                                     ctx.run_name or ctx.as_of_name(), ctx.static_images)
    images = sorted((index.parent / "images").glob("*.png"))
    ctx.logger.info("report: %s (%d static images)", index.resolve(), len(images))
    return {"report": str(index.resolve())}


# Written by the build before the models: the ladder, the stage map and the rules they join.
CONFIG_TABLES = ("stage_ladder", "stage_map", "negative_signals", "observed_stage_changes",
                 "score_rules", "free_mail_domains", "engagement_rules", "outbound_activities")
_RAW = ("raw_crm_accounts", "raw_crm_contacts", "raw_crm_activities", "raw_web_events",
        "raw_email_events")

STEPS: tuple[Step, ...] = (
    Step("load", _load, reads=(), retries=3,
         writes=(*_RAW, "rejected_rows", "loads", "load_files", "visitor_digests")),
    Step("quality gate", _gate, reads=("loads", "load_files"), writes=()),
    Step("build", _build, reads=(*_RAW, "rejected_rows"),
         writes=(*CONFIG_TABLES, *(m.name for m in warehouse.discover_models()),
                 "account_stage_history", "stage_inference_parameters",
                 *(m.name for m in warehouse.discover_models(
                     layers=warehouse.STATE_LAYERS)), "run_issues")),
    Step("mining", _mine, optional=True,
         reads=("int_journey_events", "account_stage_history"),
         writes=("stage_log", "activity_log", "stage_transitions", "activity_transitions",
                 "process_endpoints",
                 "path_variants", "journey_conformance", "conformance_summary",
                 "stage_timing")),
    Step("re-engagement", _reengagement, optional=True,
         reads=("reengagement_gaps", "int_journey_events", "engagement_rules",
                "journey_kpis"),
         writes=("reengagement_curves", "reengagement_summary", "gap_touchpoint_lift")),
    Step("churn risk", _churn, optional=True,
         reads=("int_touchpoints_staged", "engagement_rules", "stg_crm__accounts"),
         writes=("churn_scores", "model_runs")),
    Step("drivers", _drivers, optional=True,
         reads=("account_stage_history", "int_journey_events", "stg_crm__contacts",
                "stage_log", "activity_log", "account_journeys"),
         writes=("conversion_drivers", "attribution", "representative_journeys")),
    Step("data tests", _data_tests, reads=(), writes=("data_test_results",)),
    Step("kpi history", _kpi_history, reads=("journey_kpis", "stage_funnel", "loads"),
         writes=("kpi_history",)),
    Step("report", _report, optional=True,
         reads=("journey_kpis", "stage_funnel", "dropped_accounts", "cohort_conversion",
                "segment_conversion", "channel_mix", "activity_stages", "reject_reasons",
                "advocates", "stage_transitions", "path_variants", "stage_timing",
                "reengagement_curves", "gap_touchpoint_lift", "churn_scores", "model_runs"),
         writes=()),
)


def step_named(name: str) -> Step:
    """The declared step called `name` (KeyError naming the known ones otherwise)."""
    for step in STEPS:
        if step.name == name:
            return step
    raise KeyError(f"no step '{name}'; steps: {', '.join(s.name for s in STEPS)}")


def run_step(step: Step, ctx: RunContext) -> dict:
    """Run one step, log one progress line with its time; an optional step that fails is
    recorded in `run_issues`, its tables are dropped (the report says what is missing)
    and it returns {"failed": reason}. A stop is never such a failure: it is raised."""
    warehouse.use_resources(ctx.config.resources)
    started = time.perf_counter()
    try:
        result = step.run(ctx)
    except JourneyError:
        raise
    except Exception as exc:
        if not step.optional or is_stop(exc):
            raise
        problem = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        ctx.logger.error("%s failed; the run goes on without it: %s", step.name, problem)
        with warehouse.connected(ctx.warehouse) as con:
            warehouse.record_issue(con, step.name, problem)
            # What an earlier build left in its tables is not this build's answer.
            warehouse.drop_tables(con, step.writes)
        result = {"failed": problem}
    ctx.results[step.name] = result
    ctx.logger.info("step %s done in %.1f s", step.name, time.perf_counter() - started)
    return result


def run_all(warehouse_path: str | Path, input_dir: str | Path | None = None,
            config: Config | None = None, *, as_of: dt.datetime | None = None,
            steps: Iterable[str] | None = None, **options) -> RunContext:
    """Run the declared steps in order, without Prefect; returns the context with each
    step's result in `.results`.

    With no `input_dir` nothing is loaded: the warehouse is rebuilt from what it holds,
    e.g. at another `as_of` or with another stage map (`config.analysis.stage_map`), and
    every later table follows. `steps` picks a subset by name (in declared order);
    `options` are `RunContext` fields (`outputs`, `reports_dir`, `static_images`, ...).
    """
    ctx = RunContext(warehouse=warehouse_path, config=config or Config(), input_dir=input_dir,
                     as_of=as_of, **options)
    wanted = set(steps) if steps is not None else None
    if wanted is not None:
        unknown = wanted - {s.name for s in STEPS}
        if unknown:
            raise KeyError(f"unknown steps {sorted(unknown)}; steps: "
                           f"{', '.join(s.name for s in STEPS)}")
    with warehouse.exclusive(warehouse_path):
        for step in STEPS:
            if wanted is None or step.name in wanted:
                run_step(step, ctx)
    errors = ctx.results.get("data tests", {}).get("errors")
    if errors:
        raise DataQualityError("data tests with severity error failed: " + "; ".join(errors))
    return ctx


def with_logger(ctx: RunContext, logger) -> RunContext:
    """The same context logging to `logger` (the flow gives each task Prefect's logger)."""
    return replace(ctx, logger=logger)
