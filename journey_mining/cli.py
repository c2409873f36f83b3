"""The `journey` command: run the pipeline, the demo, or generate sample exports."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from journey_mining.errors import ConfigError, JourneyError

__all__ = [
    "app",
    "main",
]

app = typer.Typer(
    help="Infer B2B customer journeys from CRM, web and email exports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Neither turns `:x:` in a path or a message into an emoji.
console = Console(stderr=True, emoji=False)  # progress and errors
out = Console(soft_wrap=True, emoji=False)  # results: never wrapped, so paths can be copied
REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO_ROOT / "data" / "sample"


def _prefect_environment() -> None:
    """No telemetry, quiet server; set before Prefect is first imported."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "false")
    # The local API can take a while to start on a busy machine (default: 20 s).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # A library's module-level `logging.info` (py4j's, from Spark's threads) gives a root
    # logger without handlers Python's default one (basicConfig), and Prefect then keeps
    # it: the run's lines lost their time and step names. This process is the command's:
    # its root logger gets a handler that does nothing, and Prefect sets up the rest.
    if not logging.getLogger().handlers:
        logging.getLogger().addHandler(logging.NullHandler())
    _accept_stop_signals()


def _accept_stop_signals() -> None:
    """SIGTERM and SIGINT reach us whatever started us. A blocked mask or an ignored
    disposition is inherited through fork and exec: a non-interactive shell starts a
    background job (`journey serve ... &` in a script) with SIGINT ignored, and serve's
    SIGTERM, which takes the Ctrl-C path, then never stopped it."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    for stop in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(stop) == signal.SIG_IGN:
            signal.signal(stop, signal.SIG_DFL if stop == signal.SIGTERM
                          else signal.default_int_handler)


def _parse_date(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"'{value}' is not an ISO date like 2025-06-30") from exc


def _fail(exc: Exception) -> None:
    # The message quotes the user's data (a header `[/]`, a value `:x:`): never markup.
    console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                  soft_wrap=True, emoji=False)
    raise typer.Exit(1)


def _preflight(input_dir: Path, warehouse_path: Path, config: Path | None,
               need_files: bool = True):
    """What can be checked before Prefect starts, in a second: config, stage map, the SQL
    models, input folder, a writable warehouse, and whether there is anything at all to
    analyse."""
    from journey_mining import build, ingest, stages, warehouse
    from journey_mining.config import load_config, pseudonym_key
    from journey_mining.errors import IngestError, NoDataError

    settings = load_config(config)
    stages.load_stage_map(settings.analysis.stage_map)
    build.checked_models()
    pseudonym_key(settings)
    if not input_dir.is_dir():
        raise IngestError(f"{input_dir}: input folder not found")
    warehouse.check_writable(warehouse_path)
    skipped: list[str] = []
    files = ingest.discover_files(input_dir, settings.ingest, skipped=skipped,
                                  checksums=False)
    ingest.check_headers(files, settings.ingest)
    if need_files and not warehouse_path.exists() and not files:
        from journey_mining.sources import SOURCES

        patterns = ", ".join(p for name in SOURCES for p in settings.ingest.patterns_of(name))
        names = [Path(line.split(": skipped")[0]).name for line in skipped]
        others = f"; skipped: {', '.join(names)}" if names else ""
        raise NoDataError(f"{input_dir}: no export files (names matching {patterns}{others}) "
                          f"and the warehouse {warehouse_path} does not exist yet: nothing to "
                          "analyse")
    return settings


def _engine_warehouse(warehouse: str | Path, config: Path | None
                      ) -> tuple[Path, str | None, str]:
    """The DuckDB file a run opens and, with a URI warehouse, where Spark's tables go:
    `--warehouse` itself on the default engine; with engine.kind spark the catalog of the
    warehouse folder, or the config's engine.catalog for a URI (spark_engine.locate),
    once Spark is known to be installed here (pyspark, a Java runtime). Nothing is
    created (the run's lock makes the folder); whether Spark runs (`_check_spark`) is
    asked later, when a run has something to build. Returns (catalog, tables URI,
    engine kind)."""
    from journey_mining import spark_engine
    from journey_mining.config import load_config

    if not str(warehouse).strip():
        raise ConfigError("--warehouse is empty: give a DuckDB file (e.g. warehouse/"
                          "journeys.duckdb), or with engine.kind spark a folder or a URI")
    engine = load_config(config).engine
    if engine.kind != "spark":
        if spark_engine.is_uri(warehouse):
            raise ConfigError(f"--warehouse {warehouse} is a URI, which only the Spark "
                              "engine writes to: pass --config with engine.kind: spark "
                              "(and engine.catalog), or give a DuckDB file")
        warehouse = Path(warehouse)
        if warehouse.is_dir():
            hint = ("; it holds a Spark warehouse (journeys.duckdb): pass --config with "
                    "engine.kind: spark" if spark_engine.catalog_path(warehouse).exists()
                    else "")
            raise ConfigError(f"--warehouse {warehouse} is a folder, and the DuckDB "
                              f"engine's warehouse is a file (e.g. {warehouse}/journeys."
                              f"duckdb){hint}")
        return warehouse, None, engine.kind
    catalog, tables_uri = spark_engine.locate(warehouse, engine.catalog)  # before Java
    spark_engine.check_available()
    return catalog, tables_uri, engine.kind


def _check_spark(engine, tables_uri: str | None) -> None:
    """With engine.kind spark: Spark started as the build starts it runs a job and, with
    a URI warehouse, writes there (spark_engine.check_runs), or the command stops in one
    sentence before anything is loaded. The session is the one the build then uses."""
    from journey_mining import spark_engine

    if engine.kind == "spark":
        spark_engine.check_runs(engine, tables_uri)


def _run(input_dir: Path, warehouse: str | Path, config: Path | None,
         as_of: dt.datetime | None, full_reload: bool, outputs: Path,
         reports: Path = Path("reports"), static_images: bool = True, debug: bool = False,
         refit: bool = False, full_rebuild: bool = False) -> dict:
    _prefect_environment()
    from journey_mining import warehouse as warehouse_lib

    warehouse, tables_uri, _ = _engine_warehouse(warehouse, config)
    settings = _preflight(input_dir, warehouse, config)
    made = _first_missing_folder(warehouse.parent)
    try:
        # Held from here to the end: a second run is refused in a second, before Prefect.
        with warehouse_lib.exclusive(warehouse, share_in_process=True):
            return _locked_run(input_dir, warehouse, config, as_of, full_reload, outputs,
                               reports, static_images, debug, settings, refit, full_rebuild,
                               tables_uri)
    except BaseException:
        if made is not None and not any(p.is_file() for p in made.rglob("*")):
            shutil.rmtree(made, ignore_errors=True)  # a refused first run leaves no folder
        raise


def _first_missing_folder(folder: Path) -> Path | None:
    """The outermost of `folder` and its parents that does not exist yet (None: it
    exists): what a first run creates, and removes again if it ends with nothing in it."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    return missing[-1] if missing else None


def _locked_run(input_dir, warehouse, config, as_of, full_reload, outputs, reports,
                static_images, debug, settings, refit=False, full_rebuild=False,
                tables_uri=None) -> dict:
    from journey_mining import operations
    from journey_mining import warehouse as warehouse_lib
    from journey_mining.operations import local_prefect_api, stop_on_signals

    # No other run can hold it now (our lock): a process that does is a notebook's.
    warehouse_lib.check_not_open_elsewhere(warehouse)

    operations.check_tables_place(warehouse, settings.engine.kind, tables_uri,
                                  full_rebuild=full_rebuild)
    forced = full_reload or refit or full_rebuild
    if not forced and operations.nothing_new(warehouse, input_dir, settings, as_of,
                                             tables_uri):
        latest = warehouse_lib.home_folder(reports, warehouse) / "latest" / "index.html"
        return {"unchanged": True, "load": {}, "warehouse": str(warehouse.resolve()),
                "report": str(latest.resolve()) if latest.exists() else None}
    _check_spark(settings.engine, tables_uri)
    new_warehouse = not warehouse.exists()
    try:
        # A plain line, not a spinner: the run's log lines follow it on stderr.
        console.print("running the journey pipeline (a local Prefect API starts first)",
                      highlight=False)
        with stop_on_signals(), local_prefect_api():
            from journey_mining.pipelines.journey_pipeline import journey_pipeline

            if not debug:
                operations.quiet_tracebacks()
            return journey_pipeline(
                str(input_dir), str(warehouse), str(config) if config else None, as_of,
                full_reload, str(outputs), str(reports), static_images, refit=refit,
                full_rebuild=full_rebuild, tables_uri=tables_uri,
            )
    except BaseException:
        if new_warehouse:
            _remove_new_warehouse(warehouse)
        raise


def _remove_new_warehouse(warehouse: Path) -> None:
    """A first run that failed before any load was committed leaves no empty warehouse
    behind. One that failed or was stopped later keeps what it committed (the loaded
    rows and `rejected_rows` to look at); the next run completes the rest."""
    import duckdb

    from journey_mining import warehouse as warehouse_lib

    warehouse_lib.close_all()
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            loaded = con.execute("SELECT count(*) FROM loads").fetchall()[0][0]
        finally:
            con.close()
    except duckdb.Error:
        loaded = 0  # no loads table: nothing was committed
    if loaded:
        return
    for path in (warehouse, Path(f"{warehouse}.wal")):
        path.unlink(missing_ok=True)


def _stop_or_raise(exc: BaseException) -> None:
    from journey_mining.operations import RunStopped

    if isinstance(exc, RunStopped | KeyboardInterrupt):
        _stopped(getattr(exc, "signum", signal.SIGINT))
    # Prefect turns SIGTERM inside a flow into its own TerminationSignal.
    if type(exc).__name__ == "TerminationSignal":
        _stopped(getattr(exc, "signal", signal.SIGTERM))


def _stopped(signum: int) -> None:
    console.print(f"[bold red]stopped[/] by {signal.Signals(signum).name}: the step in "
                  "progress was rolled back and the lock released; run again to finish",
                  highlight=False, soft_wrap=True)
    raise typer.Exit(128 + signum)


def _print_outputs(result: dict) -> None:
    load = result["load"]
    if result.get("unchanged"):
        out.print("[green]nothing new[/]: every file was loaded before and nothing the build "
                  "depends on changed; the warehouse is as it was")
        out.print(f"[green]warehouse:[/] {escape(str(result['warehouse']))}")
        if result.get("report"):
            out.print(f"[bold green]report:[/] {escape(str(result['report']))}")
        return
    out.print(
        f"[green]loaded[/] {load['rows_loaded']:,} new rows "
        f"({load['rows_duplicate']:,} duplicate, {load['rows_rejected']:,} rejected) "
        f"from {load['files_read']} files ({load['files_skipped']} unchanged)"
    )
    out.print()
    out.print(result["summary"], highlight=False, markup=False)
    out.print()
    if result["failed_checks"]:
        out.print(f"[yellow]{result['failed_checks']} data tests failed; see the log above[/]")
    out.print(f"[green]warehouse:[/] {escape(str(result['warehouse']))}")
    for name, path in result["files"].items():
        out.print(f"[green]{name}:[/] {escape(str(Path(path).resolve()))}")
    marts = [m for m in result["models"] if not m.startswith(("stg_", "int_"))]
    out.print(f"[green]tables:[/] {', '.join(marts)}, loads, rejected_rows "
              "(plus staging stg_* and intermediate int_* models)")
    if result["report"]:
        out.print(f"[bold green]report:[/] {escape(str(result['report']))}")
    else:
        out.print("[bold red]report:[/] not written (see 'Not in this run' above)")


def _version(value: bool) -> None:
    if value:
        from journey_mining import __version__

        out.print(f"journey-mining {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="print the version and exit")] =
        False) -> None:
    """Infer B2B customer journeys from CRM, web and email exports."""


@app.command()
def run(
    input: Annotated[Path, typer.Option("--input", "-i", help="folder of source exports")],
    warehouse: Annotated[str, typer.Option(
        help="DuckDB warehouse file (created if absent); with engine.kind spark, the "
             "warehouse folder (its journeys.duckdb and journeys.tables/) or a URI "
             "(s3a://..., hdfs://...; the catalog is then engine.catalog)")] =
        "warehouse/journeys.duckdb",
    config: Annotated[Path | None, typer.Option(help="YAML config (column maps, stage map, ...)")] =
        None,
    as_of: Annotated[str | None, typer.Option(help="analysis date (default: latest event)")] =
        None,
    full_reload: Annotated[bool, typer.Option(help="re-read files loaded before")] = False,
    outputs: Annotated[Path, typer.Option(help="folder for process models and log exports")] =
        Path("outputs"),
    reports: Annotated[Path, typer.Option(help="folder for the HTML reports")] =
        Path("reports"),
    static_images: Annotated[bool, typer.Option(
        help="PNGs of key charts (needs a local Chromium)")] = True,
    debug: Annotated[bool, typer.Option(help="show tracebacks in the log")] = False,
    refit: Annotated[bool, typer.Option(
        help="fit churn, drivers, attribution and representatives now, not on their "
             "cadence (config fits.every_days)")] = False,
    full_rebuild: Annotated[bool, typer.Option(
        help="build every model in full, none in part from the last build")] = False,
) -> None:
    """Load the exports in INPUT into the warehouse, rebuild and mine the journeys."""
    try:
        result = _run(input, warehouse, config, _parse_date(as_of), full_reload, outputs,
                      reports, static_images, debug, refit, full_rebuild)
    except JourneyError as exc:
        _fail(exc)
    except BaseException as exc:
        _stop_or_raise(exc)
        raise
    _print_outputs(result)


@app.command()
def demo(
    warehouse: Annotated[Path, typer.Option(help="DuckDB warehouse file")] =
        Path("warehouse/demo.duckdb"),
    outputs: Annotated[Path, typer.Option(help="folder for process models and log exports")] =
        Path("outputs"),
) -> None:
    """Run the whole pipeline on the sample data into a fresh warehouse.

    In a checkout the sample is data/sample; an installed wheel carries no data, so
    the same sample (seed 7, 400 accounts) is generated beside the warehouse first.
    """
    sample = SAMPLE_DIR
    if not sample.is_dir():
        from journey_mining.generator import GeneratorSpec, generate_exports

        sample = warehouse.parent / "sample"
        if not any(sample.glob("*")):
            out.print(f"generating the sample exports into {sample} (seed 7, 400 accounts)")
            generate_exports(sample, GeneratorSpec(n_accounts=400, seed=7, dirt=True))
    for stale in (warehouse, Path(f"{warehouse}.wal")):
        stale.unlink(missing_ok=True)
    try:
        result = _run(sample, warehouse, None, None, False, outputs)
    except JourneyError as exc:
        _fail(exc)
    except BaseException as exc:
        _stop_or_raise(exc)
        raise
    _print_outputs(result)


@app.command()
def serve(
    input: Annotated[Path, typer.Option("--input", "-i", help="folder of source exports")],
    warehouse: Annotated[str, typer.Option(
        help="DuckDB warehouse file; with engine.kind spark, the warehouse folder or URI")] =
        "warehouse/journeys.duckdb",
    config: Annotated[Path | None, typer.Option(help="YAML config (schedule.cron, ...)")] = None,
    cron: Annotated[str | None, typer.Option(help="cron line, overrides schedule.cron")] = None,
    name: Annotated[str, typer.Option(help="deployment name")] = "daily-journeys",
    outputs: Annotated[Path, typer.Option(help="folder for models and log exports")] =
        Path("outputs"),
    reports: Annotated[Path, typer.Option(help="folder for the HTML reports")] =
        Path("reports"),
) -> None:
    """Run the pipeline on a schedule (a Prefect deployment served by this process).

    Uses the Prefect API in PREFECT_API_URL when set (a `prefect server start` of your
    own, with its UI); else it starts a local one with Prefect's scheduler for as long
    as it serves. The config, the input folder and the exports' headers are checked
    first. Ctrl-C or SIGTERM stops it.
    """
    _prefect_environment()
    from journey_mining import operations
    from journey_mining.operations import local_prefect_api

    try:
        warehouse, tables_uri, kind = _engine_warehouse(warehouse, config)
        settings = _preflight(input, warehouse, config, need_files=False)
        operations.check_tables_place(warehouse, kind, tables_uri)
        _check_spark(settings.engine, tables_uri)
        if cron is not None:
            settings.schedule.with_cron(cron)  # a bad --cron before the API starts
    except JourneyError as exc:
        _fail(exc)
    own = not os.environ.get("PREFECT_API_URL")
    if own:
        console.print("starting a local Prefect API with its scheduler (set PREFECT_API_URL "
                      "to use your own server)", highlight=False)
    # The API first: Prefect reads its URL when first imported, and the deployment
    # below imports it (else Prefect starts a server of its own, without a scheduler).
    with local_prefect_api(services=True) as url:
        from journey_mining.pipelines.journey_pipeline import deployment

        try:
            definition = deployment(str(input), str(warehouse),
                                    str(config) if config else None, cron, name,
                                    str(outputs), str(reports), tables_uri)
        except JourneyError as exc:
            _fail(exc)
        schedule = definition.schedules[0].schedule
        if own:
            stale = operations.crash_stale_runs(name)
            if stale:
                console.print(f"{stale} run(s) of '{name}' left running by a serve that was "
                              "killed are marked crashed (they held its one run slot)",
                              highlight=False)
        out.print(f"serving '{name}': {schedule.cron} ({schedule.timezone}) on {url}, "
                  f"input {input}, {len(settings.ingest.sources) or 'default'} source "
                  "settings; each run logs here; Ctrl-C stops", highlight=False)
        _serve(definition)
        stopped = operations.crash_stale_runs(name) if own else 0
    out.print("stopped serving" + (
        "; the run in progress was stopped (rolled back, marked crashed): the next "
        "scheduled run does it again" if stopped else ""), highlight=False)


def _serve(definition) -> None:
    """Prefect's runner for the deployment until SIGINT or SIGTERM, then a clean stop.

    Prefect's runner answers SIGTERM with a shutdown that never awaits its own stop
    (a RuntimeWarning, and the process could die by the signal in the middle of a run);
    SIGTERM is made to take the Ctrl-C path instead, which stops the runner, lets a run
    in progress roll back and ends with exit status 0."""
    from prefect import serve as prefect_serve
    from prefect.runner import Runner

    def stop(*args, **kwargs):
        # Exactly what Ctrl-C does (a run in progress is stopped and marked crashed, so it
        # holds no concurrency slot): the runner and its run get SIGINT.
        os.kill(os.getpid(), signal.SIGINT)

    Runner.handle_sigterm = stop
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        prefect_serve(definition, print_starting_message=False)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


@app.command("export-marts")
def export_marts(
    to: Annotated[Path, typer.Option("--to", help="folder for the Parquet files")],
    warehouse: Annotated[str, typer.Option(
        help="DuckDB warehouse file; with engine.kind spark, the warehouse folder or URI "
             "(whose catalog, engine.catalog, is read)")] = "warehouse/journeys.duckdb",
    config: Annotated[Path | None, typer.Option(help="YAML config (engine.kind)")] = None,
) -> None:
    """Write every mart, account_stage_history and the analysis tables (mining,
    re-engagement, churn, drivers, KPI history, rejected rows) as Parquet, one file per
    table, from a warehouse of either engine: for BI tools, or another engine to read."""
    from journey_mining import exports, operations, steps
    from journey_mining import warehouse as warehouse_lib
    from journey_mining.errors import NoDataError

    try:
        path, tables_uri, kind = _engine_warehouse(warehouse, config)
        if not path.exists():
            raise NoDataError(f"{path}: no warehouse there yet; run `journey run` first")
        if to.exists() and not to.is_dir():
            raise ConfigError(f"--to {to}: a file is there; give a folder for the Parquet "
                              "files")
        operations.check_tables_place(path, kind, tables_uri, reads_only=True)
        with warehouse_lib.connected(path, read_only=True) as con:
            written, absent = exports.export_marts(con, to, steps.mart_tables())
    except JourneyError as exc:
        _fail(exc)
    if not written:
        _fail(NoDataError(f"{path}: holds none of the marts yet; run `journey run` first"))
    out.print(f"[green]wrote {len(written)} tables[/] to {escape(str(to.resolve()))}: "
              f"{', '.join(written)}", highlight=False)
    if absent:
        out.print(f"not in this warehouse (their step did not write them): "
                  f"{', '.join(absent)}", highlight=False)


@app.command()
def generate(
    folder: Annotated[Path, typer.Option("--out", help="folder to write the exports into")],
    accounts: Annotated[int, typer.Option(help="number of accounts")] = 400,
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
    dirt: Annotated[bool, typer.Option(help="add the dirt of real exports")] = True,
    force: Annotated[bool, typer.Option(
        help="replace the files of a folder that is not empty (the committed sample too)")] =
        False,
) -> None:
    """Write synthetic exports (and their ground truth in OUT/truth/)."""
    from journey_mining.generator import GeneratorSpec, generate_exports

    existing = [p for p in folder.glob("*") if p.is_file()] if folder.is_dir() else []
    if existing and not force:
        what = "the committed sample" if folder.resolve() == SAMPLE_DIR.resolve() else "it"
        _fail(JourneyError(f"{folder}: not empty ({len(existing)} files); generating would "
                           f"replace {what}: choose an empty folder or add --force"))

    counts = generate_exports(folder, GeneratorSpec(n_accounts=accounts, seed=seed, dirt=dirt))
    out.print(f"wrote {sum(counts.values()):,} clean rows to {folder}: {counts}")


def main() -> None:
    """The `journey` command. After an error or a stop, exit at once: interpreter
    teardown would only add Prefect's retries to a stopped API and DuckDB's leak
    warnings to the one line the user needs."""
    try:
        app()
    except SystemExit as exc:
        if exc.code not in (0, None):
            from journey_mining.operations import exit_now

            exit_now(exc.code if isinstance(exc.code, int) else 1)
        raise
