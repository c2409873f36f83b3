"""The journey pipeline as Prefect flows.

`ingest` loads a folder of exports; `journey_pipeline` runs ingest then rebuilds
the SQL models. Later stages (mining, churn, reports) are added as tasks here,
each a single call into the library.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from pydantic import ValidationError

from journey_mining import checks, churn, journeys, mining, reengagement, reports, warehouse
from journey_mining import ingest as ingest_lib
from journey_mining.config import Config, load_config
from journey_mining.errors import ConfigError, DataQualityError, JourneyError


def _retry_io_only(task, task_run, state) -> bool:
    """Retry a read that failed on the file system, never a load our checks rejected."""
    try:
        state.result()
    except JourneyError:
        return False
    except Exception:  # noqa: BLE001 - anything else (OSError, IO hiccup) is worth a retry
        return True
    return False


@task(name="load-exports", retries=3, retry_delay_seconds=[2, 5, 15],
      retry_condition_fn=_retry_io_only)
def load_exports(input_dir: str, warehouse_path: str, config: Config,
                 full_reload: bool = False) -> dict:
    logger = get_run_logger()
    with warehouse.connected(warehouse_path) as con:
        report = ingest_lib.load_exports(
            con, input_dir, config.ingest, full_reload=full_reload,
            pseudonym_key=os.environ.get("JOURNEY_PSEUDONYM_KEY"),
            on_file=lambda f: logger.debug("reading %s (%s, %s bytes)", f.name, f.source,
                                           f.bytes),
        )
    for f in report.files:
        logger.debug("%s: %s, %s rows read, %s loaded, %s duplicate, %s rejected", f.file,
                     f.status, f.rows_read, f.rows_loaded, f.rows_duplicate, f.rows_rejected)
    for source in dict.fromkeys(f.source for f in report.files):
        files = [f for f in report.files if f.source == source]
        logger.info("%s: %d files (%d unchanged), %s rows read, %s loaded, %s duplicate, "
                    "%s rejected", source, len(files), sum(f.status == "skipped" for f in files),
                    f"{sum(f.rows_read for f in files):,}",
                    f"{sum(f.rows_loaded for f in files):,}",
                    f"{sum(f.rows_duplicate for f in files):,}",
                    f"{sum(f.rows_rejected for f in files):,}")
    for warning in report.warnings:
        logger.warning(warning)
    logger.info(report.summary())
    return {"load_id": report.load_id, "rows_read": report.rows_read,
            "rows_loaded": report.rows_loaded, "rows_duplicate": report.rows_duplicate,
            "rows_rejected": report.rows_rejected, "files": len(report.files),
            "files_skipped": report.files_skipped}


@task(name="build-journeys")
def build_models(warehouse_path: str, config: Config, as_of: dt.datetime | None) -> list[str]:
    logger = get_run_logger()
    with warehouse.connected(warehouse_path) as con:
        built = warehouse.build(con, config.analysis, as_of=as_of)
        journeys.require_touchpoints(con)
    logger.info("rebuilt %d models: %s", len(built), ", ".join(built))
    return built


@task(name="mine-journeys")
def mine_journeys(warehouse_path: str, outputs: str, collapse_repeats: bool = True) -> dict:
    """Paths, variants, conformance, timing; process models and XES/OCEL exports."""
    logger = get_run_logger()
    with warehouse.connected(warehouse_path) as con:
        result = mining.mine(con, Path(outputs),
                             mining.MiningParams(collapse_repeats=collapse_repeats))
    for level, summary in result.summary.items():
        logger.info(
            "%s level: %d variants over %d accounts; the top %d cover %.1f%%, the long tail "
            "%.1f%%", level, summary["variants"], summary["cases"], summary["top_k"],
            100 * summary["top_k_coverage"], 100 * summary["long_tail_share"])
    for name, path in result.files.items():
        logger.info("wrote %s: %s", name, path)
    for step, exc in result.issues:
        logger.error("%s failed, the rest of the mining is stored: %s", step, exc)
    return {"tables": result.tables, "files": {k: str(v) for k, v in result.files.items()}}


@task(name="analyse-reengagement")
def analyse_reengagement(warehouse_path: str) -> dict:
    with warehouse.connected(warehouse_path) as con:
        tables = reengagement.analyse_reengagement(con)
    overall = tables["reengagement_summary"].query("segment_type == 'all'")
    if len(overall):
        row = overall.iloc[0]
        get_run_logger().info(
            "re-engagement: %d of %d ended engagements came back; %.0f%% within 180 days",
            row.returned, row.gaps, 100 * row.returned_within_180d)
    return {"tables": list(tables)}


@task(name="score-churn-risk")
def score_churn_risk(warehouse_path: str, horizon_days: int, max_snapshots: int = 36) -> dict:
    logger = get_run_logger()
    with warehouse.connected(warehouse_path) as con:
        run = churn.score_churn(con, horizon_days=horizon_days, max_snapshots=max_snapshots)
        churn.store_churn(con, run)
    r = run.run
    if r["status"] == "trained":
        logger.info(
            "churn model: backtest ROC AUC %.3f vs %.3f for recency alone (PR AUC %.3f vs %.3f) "
            "on %d client snapshots with %d cancellations; %s the baseline",
            r["roc_auc"], r["recency_roc_auc"], r["pr_auc"], r["recency_pr_auc"],
            r["n_test_rows"], r["n_test_positive"],
            "beats" if r["beats_recency_baseline"] else "does NOT beat")
    else:
        logger.warning("churn: too little history to train (%s); scored with the documented "
                       "fallback (historical rate, rule-based bands)", r["reason"])
    return {"tables": ["churn_scores", "model_runs"], "status": r["status"],
            "scored": r["n_scored"]}


@task(name="check-models")
def check_models(warehouse_path: str, config: Config) -> dict:
    """Run the data tests declared beside the models, store them, log each failure at its
    severity (config `quality.test_severity`). Returns failures and error breaches."""
    logger = get_run_logger()
    with warehouse.connected(warehouse_path) as con:
        results = checks.run_checks(con)
        checks.store_results(con, results, config.quality)
    for r in (r for r in results if not r.passed):
        severity = config.quality.severity_of(r.model)
        (logger.error if severity == "error" else logger.warning)(
            "data test failed (%s): %s %s (%d rows)", severity, r.model, r.check,
            r.failing_rows)
    return {"failed": sum(not r.passed for r in results),
            "errors": checks.failed_test_breaches(results, config.quality)}


@task(name="quality-gate")
def gate_load(warehouse_path: str, config: Config) -> None:
    """Stop before the build when a source's rejected share is above its gate."""
    with warehouse.connected(warehouse_path, read_only=True) as con:
        breaches = checks.load_gate_breaches(con, config.quality)
    if breaches:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(
            key="data-quality-gate", description="Why the run stopped before the build",
            markdown="# Data-quality gate\n\n" + "\n".join(f"- {b}" for b in breaches))
        raise DataQualityError("data-quality gate: " + "; ".join(breaches))


@task(name="write-report")
def write_report(warehouse_path: str, reports_dir: str, run_name: str,
                 static_images: bool = True) -> str:
    """The HTML report (reports/<run_name>/index.html, copied to reports/latest/)."""
    with warehouse.connected(warehouse_path, read_only=True) as con:
        index = reports.write_report(con, Path(reports_dir), run_name, static_images)
    images = sorted((index.parent / "images").glob("*.png"))
    get_run_logger().info("report: %s (%d static images)", index.resolve(), len(images))
    return str(index.resolve())


@task(name="publish-artifacts")
def publish_artifacts(warehouse_path: str, run_name: str, report: str | None) -> None:
    """Prefect artifacts keyed by the as-of date: summary with a link to the report, the
    funnel, data quality and the churn-risk top list."""
    from prefect.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

    with warehouse.connected(warehouse_path, read_only=True) as con:
        summary = journeys.journey_summary(con).to_text()
        tables = journeys.run_tables(con)
    link = Path(report).resolve().as_uri() if report else None
    create_markdown_artifact(
        key=f"journey-summary-{run_name}",
        markdown=f"# Customer journeys\n\n```\n{summary}\n```\n\n"
                 + (f"[Open the report]({link})" if link else "No report was written."),
        description="Headline numbers of this run and a link to its report")
    if link:
        create_link_artifact(key=f"report-{run_name}", link=link,
                             link_text=f"Customer journeys report ({run_name})",
                             description="The HTML report of this run")
    create_table_artifact(key=f"funnel-{run_name}",
                          table=tables["funnel"].to_dict(orient="records"),
                          description="Accounts reached per stage and conversion to the next")
    create_table_artifact(key=f"data-quality-{run_name}",
                          table=tables["data_quality"].to_dict(orient="records"),
                          description="Rows read, loaded and rejected per source, last load")
    if tables["churn_top"] is not None:
        create_table_artifact(key=f"churn-risk-top-{run_name}",
                              table=tables["churn_top"].to_dict(orient="records"),
                              description="The 20 clients most at risk of leaving")


@task(name="record-kpi-history")
def record_kpi_history(warehouse_path: str, failed_checks: int) -> None:
    with warehouse.connected(warehouse_path) as con:
        journeys.record_kpi_history(con, failed_checks)


@task(name="as-of")
def build_as_of(warehouse_path: str) -> dt.datetime:
    """The as-of date the build used: it names the report folder, outputs and artifacts."""
    with warehouse.connected(warehouse_path, read_only=True) as con:
        return con.execute("SELECT as_of FROM run_parameters").fetchall()[0][0]


@task(name="summarise-journeys")
def summarise(warehouse_path: str) -> str:
    with warehouse.connected(warehouse_path, read_only=True) as con:
        text = journeys.journey_summary(con).to_text()
    get_run_logger().info("\n%s", text)
    return text


@task(name="record-issue")
def record_issue(warehouse_path: str, step: str, problem: str) -> None:
    with warehouse.connected(warehouse_path) as con:
        warehouse.record_issue(con, step, problem)


def _timed(step: str, call, *args):
    """Run one step and log one progress line with its elapsed time."""
    started = time.perf_counter()
    result = call(*args)
    get_run_logger().info("step %s done in %.1f s", step, time.perf_counter() - started)
    return result


def _optional(step: str, warehouse_path: str, call, *args, default=None):
    """Run an optional analysis task; if it fails, note it and let the run go on."""
    try:
        return _timed(step, call, *args)
    except JourneyError:
        raise
    except Exception as exc:  # noqa: BLE001 - one analysis failing must not lose the rest
        problem = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        get_run_logger().error("%s failed; the run goes on without it: %s", step, problem)
        record_issue(warehouse_path, step, problem)
        return default


@flow(name="ingest", flow_run_name="ingest {input_dir}")
def ingest(input_dir: str, warehouse_path: str, config_path: str | None = None,
           full_reload: bool = False) -> dict:
    """Load every export in `input_dir` into the warehouse, all or nothing."""
    config = load_config(config_path)
    return load_exports(input_dir, warehouse_path, config, full_reload)


@task(name="check-for-changes")
def fingerprint(warehouse_path: str, config: Config, as_of: dt.datetime | None) -> dict:
    """Has anything the build depends on changed since the last complete run?"""
    with warehouse.connected(warehouse_path, read_only=True) as con:
        current = warehouse.build_fingerprint(con, config.analysis, as_of)
        previous = warehouse.last_build_fingerprint(con)
    return {"fingerprint": current, "unchanged": current == previous}


@task(name="record-build")
def record_build(warehouse_path: str, fingerprint: str) -> None:
    with warehouse.connected(warehouse_path) as con:
        warehouse.record_build(con, fingerprint)


@flow(name="journey-pipeline", flow_run_name="journeys {input_dir} -> {warehouse_path}")
def journey_pipeline(input_dir: str, warehouse_path: str, config_path: str | None = None,
                     as_of: dt.datetime | None = None, full_reload: bool = False,
                     outputs: str = "outputs", reports_dir: str = "reports",
                     static_images: bool = True, wait_for_lock_seconds: float = 0) -> dict:
    """Load the exports; if anything changed, rebuild, mine, analyse, check and report.

    Holds the warehouse for the whole run: a second run against it is refused, or
    waits up to `wait_for_lock_seconds` (the scheduled deployment waits an hour).
    Report folder, outputs and artifact keys are named by the build's as-of date.
    """
    config = load_config(config_path)
    with warehouse.exclusive(warehouse_path, wait_for_lock_seconds):
        load = _timed("load", load_exports, input_dir, warehouse_path, config, full_reload)
        gate_load(warehouse_path, config)
        state = fingerprint(warehouse_path, config, as_of)
        result = {"load": load, "warehouse": str(Path(warehouse_path).resolve()),
                  "unchanged": state["unchanged"]}
        if state["unchanged"]:
            get_run_logger().info("nothing new since the last run: warehouse left as it was")
            latest = Path(reports_dir) / "latest" / "index.html"
            report = str(latest.resolve()) if latest.exists() else None
            _optional("artifacts", warehouse_path, publish_artifacts, warehouse_path,
                      f"asof-{build_as_of(warehouse_path):%Y-%m-%d}", report)
            return {**result, "models": [], "files": {}, "failed_checks": 0,
                    "summary": summarise(warehouse_path), "report": report}
        models = _timed("build", build_models, warehouse_path, config, as_of)
        run_name = f"asof-{build_as_of(warehouse_path):%Y-%m-%d}"
        outputs = str(Path(outputs) / run_name)
        mined = _optional("mining", warehouse_path, mine_journeys, warehouse_path, outputs,
                          config.analysis.collapse_repeats, default={"tables": [], "files": {}})
        returning = _optional("re-engagement", warehouse_path, analyse_reengagement,
                              warehouse_path, default={"tables": []})
        churned = _optional("churn risk", warehouse_path, score_churn_risk, warehouse_path,
                            config.analysis.churn_horizon_days,
                            config.analysis.churn_max_snapshots,
                            default={"tables": [], "status": "failed", "scored": 0})
        tested = _timed("data tests", check_models, warehouse_path, config)
        failed_checks = tested["failed"]
        record_kpi_history(warehouse_path, failed_checks)
        summary = summarise(warehouse_path)
        report = _optional("report", warehouse_path, write_report, warehouse_path,
                           reports_dir, run_name, static_images)
        _optional("artifacts", warehouse_path, publish_artifacts, warehouse_path, run_name,
                  report)
        if tested["errors"]:
            # Reported and published, but not recorded as a complete build: the next
            # run does it again.
            raise DataQualityError("data tests with severity error failed: "
                                   + "; ".join(tested["errors"]))
        record_build(warehouse_path, state["fingerprint"])
    return {**result, "report": report,
            "models": models + mined["tables"] + returning["tables"] + churned["tables"],
            "files": mined["files"], "churn": churned, "failed_checks": failed_checks,
            "summary": summary}


def deployment(input_dir: str, warehouse_path: str, config_path: str | None = None,
               cron: str | None = None, name: str = "daily-journeys",
               outputs: str = "outputs", reports_dir: str = "reports"):
    """The pipeline as a Prefect deployment on the config's cron (or `cron`)."""
    from prefect.client.schemas.schedules import CronSchedule

    config = load_config(config_path)
    schedule = config.schedule
    if cron is not None:
        try:
            schedule = schedule.model_validate({**schedule.model_dump(), "cron": cron})
        except ValidationError as exc:
            raise ConfigError(f"--cron: {exc.errors()[0]['msg']}") from exc
    from prefect.client.schemas.objects import ConcurrencyLimitConfig

    return journey_pipeline.to_deployment(
        name=name,
        # one run at a time; a run due while another is on waits its turn
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy="ENQUEUE"),
        schedule=CronSchedule(cron=schedule.cron, timezone=schedule.timezone),
        parameters={"input_dir": str(Path(input_dir).resolve()),
                    "warehouse_path": str(Path(warehouse_path).resolve()),
                    "config_path": str(Path(config_path).resolve()) if config_path else None,
                    "outputs": str(Path(outputs).resolve()),
                    "reports_dir": str(Path(reports_dir).resolve()),
                    "wait_for_lock_seconds": 3600},
        description="Load new exports, rebuild, mine and report the customer journeys.",
        tags=["journey-mining"],
    )
