"""The journey pipeline as Prefect flows: the plan of `journey_mining.steps`, each step a
Prefect task.

Each declared step (`steps.STEPS`: name, reads, writes, when) runs as one Prefect task
of the same name; the library does the work and decides the order (`steps.run_plan`).
`ingest` loads a folder of exports; `journey_pipeline` loads, and if anything changed
rebuilds, mines, analyses, checks and reports, then publishes Prefect artifacts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from journey_mining import journeys, steps, warehouse
from journey_mining.config import load_config, pseudonym_key
from journey_mining.errors import DataQualityError, JourneyError
from journey_mining.operations import is_stop


def _retry_io_only(task, task_run, state) -> bool:
    """Retry a read that failed on the file system, never a load our checks rejected and
    never a run that is being stopped."""
    try:
        state.result()
    except JourneyError:
        return False
    except Exception as exc:  # noqa: BLE001 - anything else (OSError, IO hiccup) is worth a retry
        return not is_stop(exc)
    return False


def _task(step: steps.Step):
    """The declared step as a Prefect task of the same name (retries where declared)."""
    def run(ctx: steps.RunContext) -> steps.StepResult:
        return steps.run_step(step, steps.with_logger(ctx, get_run_logger()))

    options = dict(retries=step.retries, retry_delay_seconds=[2, 5, 15][:step.retries],
                   retry_condition_fn=_retry_io_only) if step.retries else {}
    return task(run, name=step.name, cache_policy=NO_CACHE, **options)


TASKS = {step.name: _task(step) for step in steps.STEPS}


def _execute(step: steps.Step, ctx: steps.RunContext) -> steps.StepResult:
    """One step of the plan as its Prefect task; a quality-gate breach is also published
    as an artifact, so the flow run in the UI says why it stopped."""
    try:
        return TASKS[step.name](ctx)
    except DataQualityError as exc:
        if step.name == "quality gate":
            from prefect.artifacts import create_markdown_artifact

            create_markdown_artifact(
                key="data-quality-gate", description="Why the run stopped before the build",
                markdown="# Data-quality gate\n\n" + "\n".join(f"- {b}" for b in exc.breaches))
        raise


def publish_artifacts(ctx: steps.RunContext, report: str | None) -> None:
    """Prefect artifacts keyed by the as-of date: summary with a link to the report, the
    funnel, data quality and the churn-risk top list (the plan's `publish` step)."""
    from prefect.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

    run_name = ctx.report_name()
    with warehouse.connected(ctx.warehouse, read_only=True) as con:
        tables = journeys.run_tables(con)
    summary = ctx.results["summary"].text if "summary" in ctx.results else ""
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


@flow(name="ingest", flow_run_name="ingest {input_dir}")
def ingest(input_dir: str, warehouse_path: str, config_path: str | None = None,
           full_reload: bool = False) -> dict:
    """Load every export in `input_dir` into the warehouse, all or nothing."""
    config = load_config(config_path)
    ctx = steps.RunContext(warehouse_path, config, input_dir, full_reload=full_reload,
                           pseudonym_key=pseudonym_key(config))
    steps.run_plan(ctx, _execute, wanted={"load"})
    return asdict(ctx.results["load"])


@flow(name="journey-pipeline", flow_run_name="journeys {input_dir} -> {warehouse_path}")
def journey_pipeline(input_dir: str, warehouse_path: str, config_path: str | None = None,
                     as_of: dt.datetime | None = None, full_reload: bool = False,
                     outputs: str = "outputs", reports_dir: str = "reports",
                     static_images: bool = True, wait_for_lock_seconds: float = 0,
                     refit: bool = False, full_rebuild: bool = False,
                     tables_uri: str | None = None) -> dict:
    """Load the exports; if anything changed, run every declared step and publish.

    Holds the warehouse for the whole run: a second run against it is refused, or
    waits up to `wait_for_lock_seconds` (the scheduled deployment waits an hour).
    Report folder, outputs and artifact keys are named by the build's as-of date.
    `refit` fits the heavy analyses now instead of on their cadence (config `fits`);
    `full_rebuild` builds every model in full, none of them in part. `tables_uri`: with
    engine.kind spark and a URI warehouse, where Spark writes the tables
    (`warehouse_path` is then the local catalog).
    """
    config = load_config(config_path)
    # The key comes from the environment, never a parameter: Prefect stores parameters.
    ctx = steps.RunContext(warehouse_path, config, input_dir, as_of=as_of,
                           full_reload=full_reload, outputs=outputs, reports_dir=reports_dir,
                           static_images=static_images, pseudonym_key=pseudonym_key(config),
                           refit=refit, full_rebuild=full_rebuild, tables_uri=tables_uri)
    ctx.publish = publish_artifacts
    with warehouse.exclusive(warehouse_path, wait_for_lock_seconds):
        outcome = steps.run_plan(ctx, _execute)
    return asdict(outcome)


def deployment(input_dir: str, warehouse_path: str, config_path: str | None = None,
               cron: str | None = None, name: str = "daily-journeys",
               outputs: str = "outputs", reports_dir: str = "reports",
               tables_uri: str | None = None):
    """The pipeline as a Prefect deployment on the config's cron (or `cron`)."""
    from prefect.client.schemas.schedules import CronSchedule

    config = load_config(config_path)
    pseudonym_key(config)  # a scheduled run without its key would fail every night
    schedule = config.schedule if cron is None else config.schedule.with_cron(cron)
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
                    "wait_for_lock_seconds": 3600, "tables_uri": tables_uri},
        description="Load new exports, rebuild, mine and report the customer journeys.",
        tags=["journey-mining"],
    )
