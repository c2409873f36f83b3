"""The journey pipeline as Prefect flows.

`ingest` loads a folder of exports; `journey_pipeline` runs ingest then rebuilds
the SQL models. Later stages (mining, churn, reports) are added as tasks here,
each a single call into the library.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from prefect import flow, get_run_logger, task
from pydantic import ValidationError

from journey_mining import checks, churn, journeys, mining, reengagement, reports, warehouse
from journey_mining import ingest as ingest_lib
from journey_mining.config import Config, load_config
from journey_mining.errors import ConfigError, JourneyError


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
    con = warehouse.connect(warehouse_path)
    try:
        report = ingest_lib.load_exports(
            con, input_dir, config.ingest, full_reload=full_reload,
            pseudonym_key=os.environ.get("JOURNEY_PSEUDONYM_KEY"),
            on_file=lambda f: logger.info("reading %s (%s, %s bytes)", f.name, f.source, f.bytes),
        )
    finally:
        con.close()
    for f in report.files:
        logger.info("%s: %s, %s rows read, %s loaded, %s duplicate, %s rejected", f.file,
                    f.status, f.rows_read, f.rows_loaded, f.rows_duplicate, f.rows_rejected)
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
    con = warehouse.connect(warehouse_path)
    try:
        built = warehouse.build(con, config.analysis, as_of=as_of)
        journeys.require_touchpoints(con)
    finally:
        con.close()
    logger.info("rebuilt %d models: %s", len(built), ", ".join(built))
    return built


@task(name="mine-journeys")
def mine_journeys(warehouse_path: str, outputs: str, collapse_repeats: bool = True) -> dict:
    """Paths, variants, conformance, timing; process models and XES/OCEL exports."""
    logger = get_run_logger()
    con = warehouse.connect(warehouse_path)
    try:
        result = mining.mine(con, Path(outputs),
                             mining.MiningParams(collapse_repeats=collapse_repeats))
    finally:
        con.close()
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
    con = warehouse.connect(warehouse_path)
    try:
        tables = reengagement.analyse_reengagement(con)
    finally:
        con.close()
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
    con = warehouse.connect(warehouse_path)
    try:
        run = churn.score_churn(con, horizon_days=horizon_days, max_snapshots=max_snapshots)
        churn.store_churn(con, run)
    finally:
        con.close()
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
def check_models(warehouse_path: str) -> int:
    """Run the data tests declared beside the models; log each failure. Returns failures."""
    logger = get_run_logger()
    con = warehouse.connect(warehouse_path, read_only=True)
    try:
        failed = [r for r in checks.run_checks(con) if not r.passed]
    finally:
        con.close()
    for result in failed:
        logger.warning("data test failed: %s %s (%d rows)", result.model, result.check,
                       result.failing_rows)
    return len(failed)


@task(name="write-report")
def write_report(warehouse_path: str, reports_dir: str, run_name: str,
                 static_images: bool = True) -> str:
    """The HTML report, and Prefect artifacts: the summary and the churn-risk top list."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    con = warehouse.connect(warehouse_path, read_only=True)
    try:
        index = reports.write_report(con, Path(reports_dir), run_name, static_images)
        summary = journeys.journey_summary(con).to_text()
        top = con.sql(
            "SELECT account_id, round(churn_probability, 3) AS churn_probability, risk_band, "
            "top_factors FROM churn_scores ORDER BY churn_probability DESC LIMIT 20").df()
    finally:
        con.close()
    images = sorted((index.parent / "images").glob("*.png"))
    create_markdown_artifact(
        key="journey-summary",
        markdown=f"# Customer journeys\n\n```\n{summary}\n```\n\nReport: `{index.resolve()}`"
                 f"\n\nStatic images: {len(images)} PNG in `{index.parent / 'images'}`"
                 if images else f"# Customer journeys\n\n```\n{summary}\n```\n\n"
                 f"Report: `{index.resolve()}`\n\nNo static images: no Chromium installed.",
        description="Headline numbers of this run and where its report is")
    create_table_artifact(key="churn-risk-top", table=top.to_dict(orient="records"),
                          description="The 20 clients most at risk of cancelling")
    get_run_logger().info("report: %s (%d static images)", index.resolve(), len(images))
    return str(index.resolve())


@task(name="summarise-journeys")
def summarise(warehouse_path: str) -> str:
    con = warehouse.connect(warehouse_path, read_only=True)
    try:
        text = journeys.journey_summary(con).to_text()
    finally:
        con.close()
    get_run_logger().info("\n%s", text)
    return text


@task(name="record-issue")
def record_issue(warehouse_path: str, step: str, problem: str) -> None:
    con = warehouse.connect(warehouse_path)
    try:
        warehouse.record_issue(con, step, problem)
    finally:
        con.close()


def _optional(step: str, warehouse_path: str, call, *args, default=None):
    """Run an optional analysis task; if it fails, note it and let the run go on."""
    try:
        return call(*args)
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
    con = warehouse.connect(warehouse_path, read_only=True)
    try:
        current = warehouse.build_fingerprint(con, config.analysis, as_of)
        previous = warehouse.last_build_fingerprint(con)
    finally:
        con.close()
    return {"fingerprint": current, "unchanged": current == previous}


@task(name="record-build")
def record_build(warehouse_path: str, fingerprint: str) -> None:
    con = warehouse.connect(warehouse_path)
    try:
        warehouse.record_build(con, fingerprint)
    finally:
        con.close()


@flow(name="journey-pipeline", flow_run_name="journeys {input_dir} -> {warehouse_path}")
def journey_pipeline(input_dir: str, warehouse_path: str, config_path: str | None = None,
                     as_of: dt.datetime | None = None, full_reload: bool = False,
                     outputs: str = "outputs", reports_dir: str = "reports",
                     static_images: bool = True) -> dict:
    """Load the exports; if anything changed, rebuild, mine, analyse, check and report.

    Holds the warehouse for the whole run: a second run against it is refused.
    """
    config = load_config(config_path)
    with warehouse.exclusive(warehouse_path):
        load = load_exports(input_dir, warehouse_path, config, full_reload)
        state = fingerprint(warehouse_path, config, as_of)
        result = {"load": load, "warehouse": str(Path(warehouse_path).resolve()),
                  "unchanged": state["unchanged"]}
        if state["unchanged"]:
            get_run_logger().info("nothing new since the last run: warehouse left as it was")
            latest = Path(reports_dir) / "latest" / "index.html"
            return {**result, "models": [], "files": {}, "failed_checks": 0,
                    "summary": summarise(warehouse_path),
                    "report": str(latest.resolve()) if latest.exists() else None}
        models = build_models(warehouse_path, config, as_of)
        mined = _optional("mining", warehouse_path, mine_journeys, warehouse_path, outputs,
                          config.analysis.collapse_repeats, default={"tables": [], "files": {}})
        returning = _optional("re-engagement", warehouse_path, analyse_reengagement,
                              warehouse_path, default={"tables": []})
        churned = _optional("churn risk", warehouse_path, score_churn_risk, warehouse_path,
                            config.analysis.churn_horizon_days,
                            config.analysis.churn_max_snapshots,
                            default={"tables": [], "status": "failed", "scored": 0})
        failed_checks = check_models(warehouse_path)
        summary = summarise(warehouse_path)
        run_name = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        report = _optional("report", warehouse_path, write_report, warehouse_path,
                           reports_dir, run_name, static_images)
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
    return journey_pipeline.to_deployment(
        name=name,
        schedule=CronSchedule(cron=schedule.cron, timezone=schedule.timezone),
        parameters={"input_dir": str(Path(input_dir).resolve()),
                    "warehouse_path": str(Path(warehouse_path).resolve()),
                    "config_path": str(Path(config_path).resolve()) if config_path else None,
                    "outputs": str(Path(outputs).resolve()),
                    "reports_dir": str(Path(reports_dir).resolve())},
        description="Load new exports, rebuild, mine and report the customer journeys.",
        tags=["journey-mining"],
    )
