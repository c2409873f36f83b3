"""The pipeline's plan, declared once: each step's name, what it reads and writes, when
it runs and what it returns (a typed result).

`run_plan` walks the plan; the Prefect flow (`pipelines/journey_pipeline.py`) runs it
with each step as a Prefect task, `run_all` runs it without Prefect, so the order of
the steps and the "nothing new" decision (the step `check for changes`) live here
only. A notebook that changes the as-of date or the stage map gets a warehouse where
every table (SQL marts, mining, churn) is at the same date.

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
from journey_mining.build import CONFIG_TABLES, LOADED_TABLES
from journey_mining.config import Config
from journey_mining.errors import DataQualityError, JourneyError
from journey_mining.operations import is_stop
from journey_mining.sql_models import model_tables, read_sql

__all__ = ["STEPS", "ChangeCheck", "ChurnResult", "DataTestResult", "LoadResult",
           "ReportResult", "RunContext", "RunOutcome", "Step", "StepResult", "run_all",
           "mart_tables", "run_plan", "run_step", "step_named", "with_logger"]

log = logging.getLogger("journey_mining")


@dataclass
class StepResult:
    """What a step did: the tables it wrote, the files, or why an optional step failed."""

    tables: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    failed: str | None = None
    skipped: str | None = None


@dataclass
class LoadResult(StepResult):
    """What the load did: its id, rows read, loaded, duplicate, rejected, files."""

    load_id: int | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_duplicate: int = 0
    rows_rejected: int = 0
    files_read: int = 0
    files_skipped: int = 0


@dataclass
class ChangeCheck(StepResult):
    """Has anything the build depends on changed since the last complete run?"""

    fingerprint: str = ""
    unchanged: bool = False


@dataclass
class ChurnResult(StepResult):
    """Whether the churn model trained (or fell back) and how many clients it scored."""

    status: str = "failed"
    scored: int = 0


@dataclass
class DataTestResult(StepResult):
    """How many declared data tests failed; those of severity error stop the run."""

    failed_tests: int = 0
    errors: list[str] = field(default_factory=list)   # failed tests of severity error


@dataclass
class ReportResult(StepResult):
    """Where the report was written (None: no reports folder)."""

    report: str | None = None


@dataclass
class SummaryResult(StepResult):
    """The headline summary `journey run` prints."""

    text: str = ""


@dataclass
class RunContext:
    """Everything a step needs: where the warehouse is, the config, the run's options."""

    warehouse: str | Path
    config: Config = field(default_factory=Config)
    input_dir: str | Path | None = None
    as_of: dt.datetime | None = None
    full_reload: bool = False
    refit: bool = False                      # fit churn, drivers and the rest now
    full_rebuild: bool = False               # every model in full, none in part
    outputs: str | Path | None = None       # process models and log exports (None: not written)
    reports_dir: str | Path | None = None   # the HTML report (None: not written)
    run_name: str | None = None              # report folder name (default: asof-<date>)
    static_images: bool = True
    pseudonym_key: str | None = None
    tables_uri: str | None = None            # engine.kind spark: the URI of its tables
    logger: logging.Logger | logging.LoggerAdapter = log
    results: dict = field(default_factory=dict)   # step name -> its StepResult
    # Prefect's artifacts (the flow sets it; None: nothing to publish)
    publish: Callable[[RunContext, str | None], None] | None = None

    def tables_place(self) -> str:
        """Where this run's model tables go (`spark_engine.tables_place`)."""
        from journey_mining import spark_engine

        return spark_engine.tables_place(self.config.engine.kind, self.warehouse,
                                         self.tables_uri)

    def report_home(self, create: bool = False) -> Path | None:
        """This warehouse's report folder (`reports_dir/<warehouse>`), None if no report."""
        return (None if self.reports_dir is None
                else warehouse.home_folder(self.reports_dir, self.warehouse, create))

    def output_home(self, create: bool = False) -> Path | None:
        """This warehouse's folder of models and exports (`outputs/<warehouse>`)."""
        return (None if self.outputs is None
                else warehouse.home_folder(self.outputs, self.warehouse, create))

    @property
    def unchanged(self) -> bool:
        """True when this run's `check for changes` found nothing new."""
        check = self.results.get("check for changes")
        return bool(check and check.unchanged)

    def report_name(self) -> str:
        """The report and outputs folder of this build (`run_name`, or asof-<date>)."""
        return self.run_name or self.as_of_name()

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
    on_change: bool = False   # runs only when `check for changes` found something new


# -- the steps ------------------------------------------------------------------------

def _load(ctx: RunContext) -> LoadResult:
    from journey_mining import ingest

    if ctx.input_dir is None:
        return LoadResult(skipped="no input folder")
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
    return LoadResult(
        tables=["loads", "load_files", "rejected_rows"], load_id=report.load_id,
        rows_read=report.rows_read, rows_loaded=report.rows_loaded,
        rows_duplicate=report.rows_duplicate, rows_rejected=report.rows_rejected,
        files_read=len(report.files), files_skipped=report.files_skipped)


def _gate(ctx: RunContext) -> StepResult:
    from journey_mining import checks

    with warehouse.connected(ctx.warehouse, read_only=True) as con:
        breaches = checks.load_gate_breaches(con, ctx.config.quality)
        evidence = _write_rejects(con, ctx.output_home(create=True)) if breaches else None
    if breaches:
        where = (f"; the rejected rows and why: {evidence}" if evidence else
                 f"; the rejected rows and why: table rejected_rows in {ctx.warehouse}")
        raise DataQualityError("data-quality gate: " + "; ".join(breaches) + where, breaches)
    return StepResult()


def _write_rejects(con, outputs) -> Path | None:
    """The last load's rejected rows as a CSV in the outputs folder, so the evidence of a
    stopped run opens in a spreadsheet (None without an outputs folder)."""
    if outputs is None:
        return None
    path = Path(outputs) / "rejected_rows.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    con.sql(read_sql("analysis/last_load_rejects")).df().to_csv(path, index=False)
    return path


def _check(ctx: RunContext) -> ChangeCheck:
    from journey_mining import build

    with warehouse.connected(ctx.warehouse, read_only=True) as con:
        unchanged, current = build.is_up_to_date(con, ctx.config.analysis, ctx.as_of,
                                                 ctx.config.outputs, ctx.tables_place())
    unchanged = unchanged and not (ctx.refit or ctx.full_rebuild)
    if unchanged:
        ctx.logger.info("nothing new since the last run: warehouse left as it was")
    return ChangeCheck(fingerprint=current, unchanged=unchanged)


def _build(ctx: RunContext) -> StepResult:
    from journey_mining import build, journeys

    with warehouse.connected(ctx.warehouse) as con:
        in_part: dict = {}
        built = build.build(con, ctx.config.analysis, as_of=ctx.as_of,
                            full=ctx.full_rebuild or ctx.full_reload, in_part=in_part,
                            spark=_spark_build(ctx))
        journeys.require_touchpoints(con)
        unmapped = journeys.unmapped_activities(con)
    ctx.logger.info("rebuilt %d models: %s", len(built), ", ".join(built))
    for name, how in in_part.items():
        ctx.logger.info("%s %s", name, _built_how(how))
    for activity, touchpoints in unmapped:
        ctx.logger.warning("activity '%s' (%s touchpoint%s) is in no stage of the stage map, "
                           "so it moves no account; map it in a copy of the stage map "
                           "(analysis.stage_map) if it should", activity, f"{touchpoints:,}",
                           "" if touchpoints == 1 else "s")
    return StepResult(tables=built)


def _spark_build(ctx: RunContext):
    """This build's tables on Spark with engine.kind spark (None: on DuckDB)."""
    engine = ctx.config.engine
    if engine.kind != "spark":
        return None
    from journey_mining import spark_engine

    where = (f"{ctx.tables_uri}/{spark_engine.tables_root(ctx.warehouse).name}"
             if ctx.tables_uri else spark_engine.tables_root(ctx.warehouse))
    ctx.logger.info("engine: spark (%s); the models' tables go to %s", engine.master, where)
    own = spark_engine.spark_versions()
    if own:
        ctx.logger.info("Spark runs %d model%s from %s own Spark version instead of the "
                        "transpiled file: %s", len(own), "" if len(own) == 1 else "s",
                        "its" if len(own) == 1 else "their", ", ".join(own))
    spark = spark_engine.engine_session(engine)
    return spark_engine.SparkBuild(spark, ctx.warehouse, ctx.tables_uri)


def _built_how(how: tuple[int, int] | str) -> str:
    """The log's words for how an incremental model was built."""
    if isinstance(how, str):
        return f"built in full: {how}"
    new, again = how[0], how[1] - how[0]
    return (f"built in part: {new:,} new row{'' if new == 1 else 's'}, {again:,} "
            f"row{'' if again == 1 else 's'} made again because an identity, channel or "
            "date of the visitor, email or channel they match changed; the other rows kept "
            "from the last build (--full-rebuild builds it in full)")


def _mine(ctx: RunContext) -> StepResult:
    from journey_mining import mining

    outputs = ctx.output_home(create=True) / ctx.report_name() if ctx.outputs else None
    with warehouse.connected(ctx.warehouse) as con:
        result = mining.mine(con, outputs, mining.MiningParams(
            collapse_repeats=ctx.config.analysis.collapse_repeats,
            **ctx.config.outputs.model_dump()))
    for level, summary in result.summary.items():
        ctx.logger.info(
            "%s level: %d variants over %d accounts; the top %d cover %.1f%%, the long tail "
            "%.1f%%", level, summary["variants"], summary["cases"], summary["top_k"],
            100 * summary["top_k_coverage"], 100 * summary["long_tail_share"])
    for name, path in result.files.items():
        took = (f" in {result.seconds[name]:.1f} s ({Path(path).stat().st_size / 2**20:,.0f} MB)"
                if name in result.seconds else "")
        ctx.logger.info("wrote %s%s: %s", name, took, path)
    for step, exc in result.issues:
        ctx.logger.error("%s failed, the rest of the mining is stored: %s", step, exc)
    return StepResult(tables=list(result.tables),
                      files={k: str(v) for k, v in result.files.items()})


def _reengagement(ctx: RunContext) -> StepResult:
    from journey_mining import reengagement

    with warehouse.connected(ctx.warehouse) as con:
        tables = reengagement.analyse_reengagement(con)
        kpis = con.execute("SELECT re_engaged_accounts, first_engagement_ended, "
                           "re_engagement_rate FROM journey_kpis").fetchall()[0]
    if kpis[1]:
        ctx.logger.info("re-engagement: %d of %d accounts whose first engagement ended came "
                        "back (%.1f%%)", kpis[0], kpis[1], 100 * kpis[2])
    return StepResult(tables=list(tables))


def _fit_due(ctx: RunContext, con, analysis: str, tables: tuple[str, ...]):
    """(why this run fits `analysis` again or None, its last fit, this fingerprint), the
    one cadence decision of the heavy steps (journey_mining.fits)."""
    from journey_mining import fits

    fingerprint = fits.fit_fingerprint(ctx.config.analysis, ctx.config.engine.kind == "spark")
    last = fits.last_fit(con, analysis)
    as_of = con.execute("SELECT as_of FROM run_parameters").fetchall()[0][0]
    asked = ("asked for with --refit" if ctx.refit else
             "a full reload" if ctx.full_reload else None)
    cadence = ctx.config.fits
    reason = fits.refit_reason(
        last, fingerprint, as_of, cadence.every_days,
        dt.datetime.now(dt.UTC).replace(tzinfo=None), asked,
        tables_present=all(warehouse.table_exists(con, t) for t in tables),
        history_now=fits.history_rows(con, last.data_as_of) if last else None,
        max_late_share=cadence.max_late_share)
    return reason, last, fingerprint


def _kept_fit(ctx: RunContext, what: str, last) -> None:
    ctx.logger.info("%s: the fit of %s (data up to %s) stands; next fit when the data or "
                    "the clock moved on %d days from it (fits.every_days), or with --refit",
                    what, f"{last.fitted_at:%Y-%m-%d %H:%M}", f"{last.data_as_of:%Y-%m-%d}",
                    ctx.config.fits.every_days)


def _churn(ctx: RunContext) -> ChurnResult:
    from journey_mining import churn, fits

    analysis = ctx.config.analysis
    with warehouse.connected(ctx.warehouse) as con:
        reason, last, fingerprint = _fit_due(ctx, con, "churn", ("churn_scores", "model_runs"))
        if reason is None:
            _kept_fit(ctx, "churn", last)
            run = churn.rescore_churn(con, last.payload["scorer"], last.payload["run"],
                                      analysis.churn_horizon_days)
            churn.store_churn(con, run)
        else:
            ctx.logger.info("churn: fitting the model (%s)", reason)
            run = churn.score_churn(con, horizon_days=analysis.churn_horizon_days,
                                    max_snapshots=analysis.churn_max_snapshots)
            churn.store_churn(con, run)
            fits.store_fit(con, "churn", run.run["as_of"], fingerprint,
                           {"scorer": run.scorer, "run": run.run}, now=run.run["trained_at"])
    r = run.run
    if reason is None:  # the fit's evaluation was logged when it was fitted
        return ChurnResult(tables=["churn_scores", "model_runs"], status=r["status"],
                           scored=r["n_scored"])
    if r["status"] == "trained":
        ctx.logger.info(
            "churn model (%s): backtest ROC AUC %.3f vs %.3f for recency alone (PR AUC %.3f vs "
            "%.3f) on %d client snapshots with %d %s",
            "BG/NBD" if r["model"] == "bg_nbd" else "logistic", r["roc_auc"],
            r["recency_roc_auc"], r["pr_auc"], r["recency_pr_auc"], r["n_test_rows"],
            r["n_test_positive"],
            "without a purchase after" if r["churn_kind"] == "non_contractual"
            else "cancellations")
        (ctx.logger.info if r["ranking_reliable"] else ctx.logger.warning)(
            "churn: %s", churn.ranking_verdict(r))
        if r.get("bgnbd_at_boundary"):
            ctx.logger.warning("churn: BG/NBD's fit is at the edge of what the history can "
                               "tell (%s): with little history no dropout can be seen yet, "
                               "and P(no purchase) rests on the buying rate alone",
                               r["bgnbd_params"])
        if r.get("bgnbd_brier_compared") is not None:
            ctx.logger.info("churn: BG/NBD Brier %.3f vs logistic %.3f on the same %d "
                            "backtest rows: %s scores the clients", r["bgnbd_brier_compared"],
                            r["logistic_brier_compared"], r["compared_rows"],
                            "BG/NBD" if r["model"] == "bg_nbd" else "the logistic model")
    else:
        ctx.logger.warning("churn: too little history to train (%s); no probability or "
                           "band, the clients are listed with the signals seen", r["reason"])
    return ChurnResult(tables=["churn_scores", "model_runs"], status=r["status"],
                       scored=r["n_scored"])


def _drivers(ctx: RunContext) -> StepResult:
    from journey_mining import attribution, drivers, fits, representatives

    tables = {}
    with warehouse.connected(ctx.warehouse) as con:
        reason, last, fingerprint = _fit_due(ctx, con, "drivers", DRIVER_TABLES)
        if reason is None:
            _kept_fit(ctx, "conversion drivers, attribution and representative journeys",
                      last)
            return StepResult()
        ctx.logger.info("conversion drivers, attribution and representative journeys: "
                        "fitting (%s)", reason)
        as_of = con.execute("SELECT as_of FROM run_parameters").fetchall()[0][0]
        tables["conversion_drivers"] = drivers.conversion_drivers(con)
        tables["attribution"] = attribution.attribution(con)
        tables["representative_journeys"] = representatives.representative_journeys(con)
        with warehouse.transaction(con):
            for name, frame in tables.items():
                warehouse.store_frame(con, name, frame)
            fits.store_fit(con, "drivers", as_of, fingerprint)
    found = tables["conversion_drivers"]
    ctx.logger.info("conversion drivers: %d of %d tested touchpoints and roles go with moving "
                    "on or not (Benjamini-Hochberg q < 0.05); %d representative journeys",
                    int(found.significant.sum()), len(found),
                    len(tables["representative_journeys"]))
    return StepResult(tables=list(tables))


def _data_tests(ctx: RunContext) -> DataTestResult:
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
    return DataTestResult(tables=["data_test_results"],
                          failed_tests=sum(not r.passed for r in results),
                          errors=checks.failed_test_breaches(results, quality))


def _kpi_history(ctx: RunContext) -> StepResult:
    from journey_mining import journeys

    tested = ctx.results.get("data tests")
    with warehouse.connected(ctx.warehouse) as con:
        journeys.record_kpi_history(con, tested.failed_tests if tested else 0)
    return StepResult(tables=["kpi_history"])


def _report(ctx: RunContext) -> ReportResult:
    from journey_mining import reports

    if ctx.reports_dir is None:
        return ReportResult(skipped="no reports folder")
    with warehouse.connected(ctx.warehouse, read_only=True) as con:
        index = reports.write_report(con, ctx.report_home(create=True), ctx.report_name(),
                                     ctx.static_images, source=Path(ctx.warehouse).name)
    images = sorted((index.parent / "images").glob("*.png"))
    ctx.logger.info("report: %s (%d static images)", index.resolve(), len(images))
    return ReportResult(report=str(index.resolve()))


def _summary(ctx: RunContext) -> SummaryResult:
    from journey_mining import journeys

    with warehouse.connected(ctx.warehouse, read_only=True) as con:
        text = journeys.journey_summary(con).to_text()
    ctx.logger.info("\n%s", text)
    return SummaryResult(text=text)


def _publish(ctx: RunContext) -> StepResult:
    if ctx.publish is None:
        return StepResult(skipped="nothing to publish to (no Prefect flow)")
    ctx.publish(ctx, _report_path(ctx))
    return StepResult()


def _record(ctx: RunContext) -> StepResult:
    """Record the build as complete, unless an optional step or a data test of severity
    error failed: then the next run does everything again instead of saying "nothing
    new" over what is missing."""
    from journey_mining import build

    tested = ctx.results.get("data tests")
    with warehouse.connected(ctx.warehouse) as con:
        issues = warehouse.run_issues(con)
        if not issues and not (tested and tested.errors):
            build.record_build(con, ctx.results["check for changes"].fingerprint,
                               ctx.tables_place())
            return StepResult(tables=["build_state"])
    why = ", ".join(dict.fromkeys(step for step, _ in issues)) or "data tests"
    ctx.logger.warning("not recorded as a complete build: %s failed; the next run does it "
                       "again", why)
    return StepResult(skipped=f"{why} failed")


def _report_path(ctx: RunContext) -> str | None:
    """This run's report, or when nothing was new the latest one written before."""
    written = ctx.results.get("report")
    if getattr(written, "report", None):  # a failed report step has a plain StepResult
        return written.report
    latest = ctx.report_home() / "latest" / "index.html" if ctx.reports_dir else None
    return str(latest.resolve()) if ctx.unchanged and latest and latest.exists() else None



DRIVER_TABLES = ("conversion_drivers", "attribution", "representative_journeys")

STEPS: tuple[Step, ...] = (
    Step("load", _load, reads=(), retries=3,
         writes=(*LOADED_TABLES, "loads", "load_files", "visitor_digests")),
    Step("quality gate", _gate, reads=("loads", "load_files"), writes=()),
    Step("check for changes", _check, reads=("loads",), writes=()),
    Step("build", _build, on_change=True, reads=LOADED_TABLES,
         writes=(*CONFIG_TABLES, *model_tables(), "model_state", "run_issues")),
    Step("mining", _mine, optional=True, on_change=True,
         reads=("int_journey_events", "account_stage_history"),
         writes=("stage_log", "activity_log", "stage_transitions", "activity_transitions",
                 "process_endpoints",
                 "path_variants", "journey_conformance", "conformance_summary",
                 "stage_timing")),
    Step("re-engagement", _reengagement, optional=True, on_change=True,
         reads=("reengagement_gaps", "int_journey_events", "engagement_rules",
                "journey_kpis"),
         writes=("reengagement_curves", "reengagement_summary", "gap_touchpoint_lift")),
    Step("churn risk", _churn, optional=True, on_change=True,
         reads=("int_touchpoints_staged", "engagement_rules", "stg_crm__accounts"),
         writes=("churn_scores", "model_runs", "model_fits")),
    Step("drivers", _drivers, optional=True, on_change=True,
         reads=("account_stage_history", "int_journey_events", "stg_crm__contacts",
                "stage_log", "activity_log", "account_journeys"),
         writes=(*DRIVER_TABLES, "model_fits")),
    Step("data tests", _data_tests, on_change=True, reads=(), writes=("data_test_results",)),
    Step("kpi history", _kpi_history, on_change=True,
         reads=("journey_kpis", "stage_funnel", "loads"), writes=("kpi_history",)),
    Step("report", _report, optional=True, on_change=True,
         reads=("journey_kpis", "stage_funnel", "dropped_accounts", "cohort_conversion",
                "segment_conversion", "channel_mix", "activity_stages", "reject_reasons",
                "advocates", "stage_transitions", "path_variants", "stage_timing",
                "reengagement_curves", "gap_touchpoint_lift", "churn_scores", "model_runs"),
         writes=()),
    Step("summary", _summary, reads=("journey_kpis", "stage_funnel"), writes=()),
    Step("publish", _publish, optional=True, reads=("journey_kpis", "stage_funnel"),
         writes=()),
    Step("record build", _record, on_change=True, reads=("run_issues", "data_test_results"),
         writes=("build_state",)),
)


def step_named(name: str) -> Step:
    """The declared step called `name` (KeyError naming the known ones otherwise)."""
    for step in STEPS:
        if step.name == name:
            return step
    raise KeyError(f"no step '{name}'; steps: {', '.join(s.name for s in STEPS)}")


def run_step(step: Step, ctx: RunContext) -> StepResult:
    """Run one step, log one progress line with its time; an optional step that fails is
    recorded in `run_issues`, its tables are dropped (the report says what is missing)
    and its result says why (`failed`). A stop is never such a failure: it is raised."""
    warehouse.use_resources(ctx.config.resources)
    started = time.perf_counter()
    try:
        result = step.run(ctx)
    except JourneyError:
        raise
    except Exception as exc:
        full = warehouse.disk_full_error(exc, step.name)
        if full is not None:
            raise full from None
        if not step.optional or is_stop(exc):
            raise
        problem = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        # The traceback goes with it: `journey run` shows it with --debug only.
        ctx.logger.error("%s failed; the run goes on without it: %s", step.name, problem,
                         exc_info=True)
        with warehouse.connected(ctx.warehouse) as con:
            warehouse.record_issue(con, step.name, problem)
            # What an earlier build left in its tables is not this build's answer.
            warehouse.drop_tables(con, step.writes)
        result = StepResult(failed=problem)
    ctx.results[step.name] = result
    ctx.logger.info("step %s done in %.1f s", step.name, time.perf_counter() - started)
    return result


@dataclass
class RunOutcome:
    """What a whole run did, as `journey run` prints it and the flow returns it."""

    warehouse: str
    load: dict
    unchanged: bool
    models: list[str]
    files: dict[str, str]
    failed_checks: int
    summary: str
    report: str | None
    churn: dict | None

    @classmethod
    def of(cls, ctx: RunContext) -> RunOutcome:
        from dataclasses import asdict

        r = ctx.results
        tables = [t for name in ("build", "mining", "re-engagement", "churn risk", "drivers")
                  if name in r for t in r[name].tables]
        tested, churn = r.get("data tests"), r.get("churn risk")
        return cls(warehouse=str(Path(ctx.warehouse).resolve()),
                   load=asdict(r["load"]) if "load" in r else {},
                   unchanged=ctx.unchanged, models=tables,
                   files=r["mining"].files if "mining" in r else {},
                   failed_checks=tested.failed_tests if tested else 0,
                   summary=r["summary"].text if "summary" in r else "",
                   report=_report_path(ctx),
                   churn=asdict(churn) if churn else None)


def run_plan(ctx: RunContext, execute: Callable[[Step, RunContext], StepResult] = run_step,
             wanted: set[str] | None = None) -> RunOutcome:
    """Walk the plan: every declared step in order (those in `wanted`, when given); the
    steps that depend on new data are skipped when `check for changes` found none.
    `execute` runs one step (the flow runs it as a Prefect task). Data tests of
    severity error raise DataQualityError once, after the report and the summary."""
    for step in STEPS:
        if wanted is not None and step.name not in wanted:
            continue
        if step.on_change and ctx.unchanged:
            continue
        execute(step, ctx)
    tested = ctx.results.get("data tests")
    if tested is not None and tested.errors:
        raise DataQualityError("data tests with severity error failed: "
                               + "; ".join(tested.errors))
    return RunOutcome.of(ctx)


def run_all(warehouse_path: str | Path, input_dir: str | Path | None = None,
            config: Config | None = None, *, as_of: dt.datetime | None = None,
            steps: Iterable[str] | None = None, **options) -> RunContext:
    """Run the plan without Prefect; returns the context with each step's result in
    `.results`.

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
        run_plan(ctx, wanted=wanted)
    return ctx


def with_logger(ctx: RunContext, logger) -> RunContext:
    """The same context logging to `logger` (the flow gives each task Prefect's logger)."""
    return replace(ctx, logger=logger)


# Written by the steps after the build but kept for the pipeline itself, not readers.
_BOOKKEEPING = {"model_fits", "build_state", "data_test_results", "model_state", "run_issues"}


def mart_tables() -> list[str]:
    """What `journey export-marts` writes, in this order: every mart (sql/marts), the
    stays (`account_stage_history`), the tables the steps after the build write for
    readers (mining, re-engagement, churn, drivers, kpi history) and `rejected_rows`.
    Loaded, staging, intermediate and bookkeeping tables are left out."""
    from journey_mining.sql_models import model_tables

    names = [*model_tables(layers=("marts",)), "account_stage_history"]
    after_build = False
    for step in STEPS:
        if after_build:
            names += [t for t in step.writes if t not in _BOOKKEEPING]
        after_build = after_build or step.name == "build"
    return list(dict.fromkeys([*names, "rejected_rows"]))
