"""Benchmark: the pipeline on N generated events, against pm4py on pandas and a bare read.

    python benchmarks/run.py                  # 1 M events (make bench)
    python benchmarks/run.py --events 10000000
    python benchmarks/run.py --command        # `journey run` itself, as a subprocess

Prints per-step wall time and peak memory (resident set of this process, which
includes DuckDB's memory: it runs in-process), the ratios against pm4py and
DuckDB's bare read of the same files, and writes them into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "false")
sys._pm4py_welcome_shown = True  # pm4py greets scripts run as __main__; not this one

EVENTS_PER_ACCOUNT = 46  # gives 959,638 events for 1 M requested (seed 11, 21,739 accounts)


@contextmanager
def measured(results: list, step: str, quiet: bool = False):
    """Wall time and peak RSS of a block (RSS sampled every 20 ms)."""
    process = psutil.Process()
    peak = [process.memory_info().rss]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.02):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        stop.set()
        sampler.join()
        peak[0] = max(peak[0], process.memory_info().rss)
        results.append((step, elapsed, peak[0] / 2**20))
        if not quiet:
            print(f"  {step:<38}{elapsed:>9.2f} s{peak[0] / 2**20:>10.0f} MB", flush=True)


def median_of(results: list, step: str, repeats: int, run):
    """Run `run` `repeats` times, each measured; keep the median time (and the largest
    peak) as one row of `results`. Returns what the last run returned."""
    runs: list = []
    for _ in range(repeats):
        with measured(runs, step, quiet=True):
            value = run()
    row = (step, statistics.median(t for _, t, _ in runs), max(m for _, _, m in runs))
    results.append(row)
    print(f"  {step:<38}{row[1]:>9.2f} s{row[2]:>10.0f} MB  (median of {repeats}: "
          + ", ".join(f"{t:.2f}" for _, t, _ in runs) + ")", flush=True)
    return value


class _ModelTimes(logging.Handler):
    """Collects the warehouse's per-model build times (its debug log lines)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.times: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "model"):  # run_models' per-model record
            self.times[record.model] = self.times.get(record.model, 0.0) + record.seconds

    def slowest(self, k: int) -> list[tuple[str, float]]:
        return sorted(self.times.items(), key=lambda item: -item[1])[:k]


def _generate(exports: Path, n_accounts: int) -> dict:
    from journey_mining.generator import GeneratorSpec, generate_exports

    return generate_exports(exports, GeneratorSpec(n_accounts=n_accounts, seed=11))


def _generated(exports: Path, n_accounts: int) -> dict:
    """The generated exports' row counts: generated in a child process (the generator
    holds every event in Python objects, ~10 GB at 10 M, which would otherwise stay in
    this process's measured memory), or reused from an earlier run in the same --work."""
    stamp = exports.parent / "generated.json"
    if stamp.exists():
        saved = json.loads(stamp.read_text())
        if saved["accounts"] == n_accounts:
            print("  reusing the exports generated before in this --work folder")
            return saved["counts"]
    shutil.rmtree(exports, ignore_errors=True)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        counts = pool.submit(_generate, exports, n_accounts).result()
    stamp.write_text(json.dumps({"accounts": n_accounts, "counts": counts}))
    return counts


# Columns that identify something, per source: a copy prefixes them so that its
# accounts, contacts, visitors and events are new ones; emails and domains get the
# prefix after the @ / before the name, so the copy's stitching works as the original's.
_ID_COLUMNS = ("account_id", "contact_id", "activity_id", "event_id", "anonymous_id",
               "opportunity_id")


def replicate(base: Path, exports: Path, copies: int) -> None:
    """`copies` copies of the generated exports, each with its own ids ("r<k>" prefixes),
    written with DuckDB. Rows the reader cannot split (the generator's dirt) are not
    copied; the first copy is the original, dirt and all."""
    import duckdb

    stamp = exports / ".copies"
    if stamp.exists() and stamp.read_text() == str(copies):
        print("  reusing the copies made before in this --work folder")
        return
    shutil.rmtree(exports, ignore_errors=True)
    exports.mkdir(parents=True)
    con = duckdb.connect()
    for path in sorted(p for p in base.iterdir() if p.is_file()):
        shutil.copy(path, exports / path.name)
        jsonl, parquet = ".jsonl" in path.name, path.name.endswith(".parquet")
        reader = (f"read_json('{path}', format = 'newline_delimited', ignore_errors = true)"
                  if jsonl else f"read_parquet('{path}')" if parquet
                  else f"read_csv('{path}', all_varchar = true, header = true, "
                       "ignore_errors = true)")
        columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
        stem = path.name.split(".")[0]
        suffix = path.name[len(stem):]
        for k in range(1, copies):
            def rewrite(c: str, k: int = k) -> str:
                q = f'"{c}"'
                if c in _ID_COLUMNS:
                    return f"'r{k}' || {q}::VARCHAR AS {q}"
                if c == "email":
                    return f"replace({q}::VARCHAR, '@', '@r{k}') AS {q}"
                if c == "domain":
                    lead = f"regexp_extract({q}, '^((https?://)?(www[.])?)', 1)"
                    return f"{lead} || 'r{k}' || substr({q}, length({lead}) + 1) AS {q}"
                return q
            select = ", ".join(rewrite(c) for c in columns)
            target = exports / f"{stem}_r{k}{suffix}"
            options = ("FORMAT json, COMPRESSION gzip" if jsonl else "FORMAT parquet"
                       if parquet else "FORMAT csv, HEADER true")
            con.execute(f"COPY (SELECT {select} FROM {reader}) TO '{target}' ({options})")
    stamp.write_text(str(copies))


def _bare_reader(path: Path) -> str:
    if path.name.endswith(".parquet"):
        return "read_parquet($p)"
    if ".jsonl" in path.name:
        return ("read_csv($p, columns = {'l': 'VARCHAR'}, header = false,"
                " delim = e'\\x1e', quote = '', escape = '', auto_detect = false)")
    return "read_csv($p, all_varchar = true, header = true)"


def bare_read(con, folder: Path) -> int:
    """DuckDB reading every export once, as text, and counting rows: the floor for ingest."""
    total = 0
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        total += con.execute(f"SELECT count(*) FROM {_bare_reader(path)}",
                             {"p": str(path)}).fetchall()[0][0]
    return total


def bare_copy(folder: Path, db: Path) -> None:
    """DuckDB copying every export, as text, into a table of a new database file: what
    any load must at least do (read every value and write it compressed to disk)."""
    import duckdb

    con = duckdb.connect(str(db))
    try:
        for i, path in enumerate(sorted(p for p in folder.iterdir() if p.is_file())):
            con.execute(f"CREATE TABLE t{i} AS SELECT * FROM {_bare_reader(path)}",
                        {"p": str(path)})
    finally:
        con.close()
        for stale in (db, Path(f"{db}.wal")):
            stale.unlink(missing_ok=True)


STEP_DONE = re.compile(r"step (?P<step>.+?) done in (?P<seconds>[\d.]+) s")


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of a process and all its children (the command's Prefect server,
    DuckDB threads are in the process itself), bytes; a child gone mid-read counts 0."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        with suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def time_command(args: list[str], env: dict, log_path: Path) -> dict:
    """Run a command as a user does (a subprocess), sampling the resident memory of its
    whole process tree every 50 ms; its per-step times come from its own log lines
    ("step build done in 9.5 s"). Returns wall time, peak MB, steps and exit code."""
    started = time.perf_counter()
    with log_path.open("w") as log:
        child = psutil.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        peak = 0
        while child.poll() is None:
            peak = max(peak, tree_rss(child))
            time.sleep(0.05)
    wall = time.perf_counter() - started
    text = log_path.read_text(errors="replace")
    steps = [(m["step"], float(m["seconds"])) for m in STEP_DONE.finditer(text)]
    return {"wall": wall, "peak_mb": peak / 2**20, "steps": steps,
            "returncode": child.returncode, "log": text}


def write_increment(exports: Path, events: int, share: float = 0.003, night: int = 1
                    ) -> tuple[Path, int]:
    """A night's new web events: `share` of all events, drawn from the latest 2 % of the
    web exports (the same visitors, so form fills among them tie more of a visitor's
    earlier events to an account: late-arriving identities), new ids, a day later."""
    import duckdb

    csvs = sorted(str(p) for p in exports.glob("web_events_*.csv*"))
    parquets = sorted(str(p) for p in exports.glob("web_events_*.parquet"))
    web = f"SELECT * FROM read_csv({csvs}, all_varchar = true, union_by_name = true)"
    if parquets:
        web += (f" UNION ALL BY NAME SELECT COLUMNS(*)::VARCHAR FROM read_parquet({parquets}, "
                "union_by_name = true)")
    rows = max(1, round(events * share))
    path = exports / f"web_events_increment_{night}.csv"
    con = duckdb.connect()
    con.execute(f"""COPY (
        WITH latest AS (
            SELECT * FROM ({web})
            WHERE event_id IS NOT NULL AND try_cast(occurred_at AS TIMESTAMPTZ) IS NOT NULL
            QUALIFY try_cast(occurred_at AS TIMESTAMPTZ)  -- the latest 2 % of the web events
                    >= quantile_disc(try_cast(occurred_at AS TIMESTAMPTZ), 0.98) OVER ()
        )
        SELECT * REPLACE ('inc{night}-' || event_id AS event_id,
                          strftime(try_cast(occurred_at AS TIMESTAMPTZ) AT TIME ZONE 'UTC'
                                   + INTERVAL {night} DAY, '%Y-%m-%dT%H:%M:%SZ') AS occurred_at)
        FROM latest USING SAMPLE {rows} ROWS (reservoir, {41 + night})
    ) TO '{path}' (HEADER)""")
    con.close()
    return path, rows


def _command_args(exports: Path, work: Path, memory_limit: str | None) -> list[str]:
    args = [str(Path(sys.executable).parent / "journey"), "run", "--input", str(exports),
            "--warehouse", str(work / "command.duckdb"),
            "--outputs", str(work / "command" / "outputs"),
            "--reports", str(work / "command" / "reports")]
    if memory_limit:
        config = work / "command" / "config.yml"
        config.write_text(f"resources:\n  memory_limit: {memory_limit}\n")
        args += ["--config", str(config)]
    return args


def _run_command(args: list[str], work: Path, name: str) -> dict:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_HOME": str(work / "command" / "prefect")}
    result = time_command(args, env, work / "command" / f"{name}.log")
    if result["returncode"] != 0:
        raise SystemExit(f"journey run ({name}) failed ({result['returncode']}):\n"
                         + result["log"][-3000:])
    print(f"  journey run ({name}): {result['wall']:.1f} s, peak {result['peak_mb']:.0f} MB "
          "(process tree)")
    for step, seconds in result["steps"]:
        print(f"    {step:<28}{seconds:>9.1f} s")
    return result


def command_benchmark(exports: Path, work: Path, target: int, events: int,
                      memory_limit: str | None, write: bool, increment: bool = True) -> None:
    """`journey run` with the outputs a user gets by default (process models, XES and
    OCEL exports, the report with its static images), against DuckDB's bare copy of the
    same files; then (`increment`) the next night's run after 0.3 % new web events, as a
    ratio of the full run measured in the same hour. BENCHMARKS.md gets a section
    "journey run, N events"."""
    db = work / "command.duckdb"
    for stale in (db, Path(f"{db}.wal")):
        stale.unlink(missing_ok=True)
    for stale in exports.glob("web_events_increment_*.csv"):
        stale.unlink()
    shutil.rmtree(work / "command", ignore_errors=True)
    (work / "command").mkdir(parents=True)
    copy_started = time.perf_counter()
    bare_copy(exports, work / "bare.duckdb")
    copy_time = time.perf_counter() - copy_started
    args = _command_args(exports, work, memory_limit)
    result = _run_command(args, work, "full")
    print(f"  bare copy {copy_time:.1f} s: x{result['wall'] / copy_time:.1f}")
    nightly = served = None
    if increment:
        from journey_mining.operations import local_prefect_api

        written = []
        try:
            path, added = write_increment(exports, events, night=1)
            written.append(path)
            nightly = _run_command(args, work, "increment")
            print(f"  increment of {added:,} web events: {nightly['wall']:.1f} s, "
                  f"{100 * nightly['wall'] / result['wall']:.0f} % of the full run")
            # The next night as `journey serve` runs it: its Prefect API is up already.
            os.environ.update(PREFECT_SERVER_ANALYTICS_ENABLED="false",
                              PREFECT_HOME=str(work / "command" / "prefect"))
            with local_prefect_api():
                written.append(write_increment(exports, events, night=2)[0])
                served = _run_command(args, work, "increment, Prefect API running")
            print(f"  the same with a running Prefect API: {served['wall']:.1f} s, "
                  f"{100 * served['wall'] / result['wall']:.0f} % of the full run")
        finally:
            for path in written:
                path.unlink(missing_ok=True)
    if not write:
        return
    label = f"{target / 1e6:g} M"
    runs = [("full run", result), ("increment", nightly),
            ("increment, Prefect API running", served)]
    runs = [(name, r) for name, r in runs if r]
    lines = [f"## journey run, {label} events", "",
             f"{events:,} generated events.", "",
             f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; the command as a user "
             "runs it (a subprocess, default outputs: process models, XES and OCEL "
             "exports, report with static images"
             + (f"; config resources.memory_limit {memory_limit}" if memory_limit else "")
             + "). Peak memory is the resident set of the whole process tree (the "
             "command, its local Prefect server), sampled every 50 ms; step times are "
             "the command's own log lines."
             + (f" Each increment is the next night's run on the same warehouse after "
                f"{added:,} new web events (0.3 %) in one new file; the second as "
                "`journey serve` runs it, with its Prefect API already up." if nightly
                else ""), "",
             "| step | " + " | ".join(f"{name} (s)" for name, _ in runs) + " |",
             "|---|" + "---:|" * len(runs)]
    steps = dict.fromkeys(step for _, r in runs for step, _ in r["steps"])
    for step in steps:
        cells = [next((f"{sec:.1f}" for s_, sec in r["steps"] if s_ == step), "-")
                 for _, r in runs]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    lines.append("| **journey run, start to exit** | " + " | ".join(
        f"**{r['wall']:.1f}**" for _, r in runs) + " |")
    lines += ["", "| measure | value |", "|---|---:|",
              f"| peak resident memory, process tree | {result['peak_mb']:,.0f} MB |",
              f"| DuckDB's bare copy of the same files into a database file | "
              f"{copy_time:.1f} s |",
              f"| journey run / bare copy | x{result['wall'] / copy_time:.1f} |"]
    for name, r in runs[1:]:
        lines += [f"| {name} / full run | {100 * r['wall'] / result['wall']:.0f} % |",
                  f"| peak resident memory, {name} | {r['peak_mb']:,.0f} MB |"]
    path = REPO / "BENCHMARKS.md"
    text = path.read_text()
    pattern = re.compile(rf"## journey run, {re.escape(label)} events\n.*?(?=\n## |\Z)",
                         re.S)
    section = "\n".join(lines) + "\n"
    text = (pattern.sub(section, text) if pattern.search(text)
            else text.rstrip() + "\n\n" + section)
    path.write_text(text.strip() + "\n")
    print(f"  wrote {path}")


def _replace_section(title: str, lines: list[str]) -> Path:
    """BENCHMARKS.md with the section `## <title>` replaced by `lines` (appended when new)."""
    path = REPO / "BENCHMARKS.md"
    text = path.read_text()
    pattern = re.compile(rf"## {re.escape(title)}\n.*?(?=\n## |\Z)", re.S)
    section = "\n".join(lines) + "\n"
    text = (pattern.sub(section, text) if pattern.search(text)
            else text.rstrip() + "\n\n" + section)
    path.write_text(text.strip() + "\n")
    return path


def engine_benchmark(exports: Path, work: Path, target: int, events: int,
                     memory_limit: str | None, write: bool, master: str = "local[2]") -> None:
    """`journey run` on the same exports with engine.kind duckdb, then spark (`master`)
    into a warehouse folder, then spark into a URI warehouse (`file://`, through Hadoop's
    FileSystem as s3a:// would be), one after the other (same hour), each into a fresh
    warehouse with the default outputs; the marts of each are exported (`journey
    export-marts`) and their row counts compared. BENCHMARKS.md gets a section "journey
    run on Spark, N events"."""
    shutil.rmtree(work / "command", ignore_errors=True)
    (work / "command").mkdir(parents=True)
    results, counts = {}, {}
    limit = f"resources:\n  memory_limit: {memory_limit}\n" if memory_limit else ""
    spark = f"engine:\n  kind: spark\n  master: {master}\n"
    settings = {  # kind: (config, --warehouse)
        "duckdb": (limit, str(work / "command" / "duckdb.duckdb")),
        "spark": (limit + spark, str(work / "command" / "spark")),
        "spark, URI": (limit + spark + "  catalog: uri_catalog/journeys.duckdb\n",
                       (work / "command" / "lake").as_uri()),
    }
    for number, (kind, (text, warehouse)) in enumerate(settings.items()):
        config = work / "command" / f"engine_{number}.yml"
        config.write_text(text)
        base = [str(Path(sys.executable).parent / "journey")]
        args = [*base, "run", "--input", str(exports), "--warehouse", warehouse,
                "--config", str(config), "--outputs", str(work / "command" / f"out_{number}"),
                "--reports", str(work / "command" / f"rep_{number}")]
        results[kind] = _run_command(args, work, kind)
        marts = work / "command" / f"marts_{number}"
        subprocess.run([*base, "export-marts", "--warehouse", warehouse, "--config",
                        str(config), "--to", str(marts)], check=True, capture_output=True)
        import duckdb

        con = duckdb.connect()
        counts[kind] = {p.stem: con.execute(
            "SELECT count(*) FROM read_parquet($p)", {"p": str(p)}).fetchall()[0][0]
            for p in sorted(marts.glob("*.parquet"))}
    same = all(counts[kind] == counts["duckdb"] for kind in counts)
    build = {kind: dict(r["steps"]).get("build", float("nan")) for kind, r in results.items()}
    duck = results["duckdb"]
    print("  build: " + ", ".join(f"{kind} {sec:.1f} s" for kind, sec in build.items())
          + f"; marts' row counts equal: {same}")
    if not write:
        return
    label = f"{target / 1e6:g} M"
    lines = [f"## journey run on Spark, {label} events", "",
             f"{events:,} generated events.", "",
             f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; `journey run` as a user "
             "runs it (a subprocess, default outputs), first with engine.kind duckdb, then "
             f"with engine.kind spark, master {master}, into a warehouse folder, then into a "
             "URI warehouse (`file://`, through Hadoop's FileSystem as `s3a://` would be: "
             "loaded tables uploaded, built tables downloaded beside the catalog), on the "
             "same exports, each into a fresh warehouse"
             + (f"; resources.memory_limit {memory_limit}" if memory_limit else "")
             + ". On Spark only the build's SQL models run on Spark (README, \"On Apache "
             "Spark\"); the steps after it read its Parquet through DuckDB. Peak memory is "
             "the resident set of the process tree (the command, its Prefect server, the "
             "Spark JVM).", "",
             "| step | " + " | ".join(f"{kind} (s)" for kind in results) + " |",
             "|---|" + "---:|" * len(results)]
    for step in dict.fromkeys(step for r in results.values() for step, _ in r["steps"]):
        cells = [next((f"{sec:.1f}" for s_, sec in r["steps"] if s_ == step), "-")
                 for r in results.values()]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    lines += ["| **journey run, start to exit** | "
              + " | ".join(f"**{r['wall']:.1f}**" for r in results.values()) + " |", "",
              "| measure | value |", "|---|---:|"]
    for kind, r in results.items():
        if kind != "duckdb":
            lines += [f"| build on {kind} / build on DuckDB | "
                      f"x{build[kind] / build['duckdb']:.1f} |",
                      f"| run on {kind} / run on DuckDB | x{r['wall'] / duck['wall']:.1f} |"]
    lines += [f"| peak resident memory, {kind} | {r['peak_mb']:,.0f} MB |"
              for kind, r in results.items()]
    lines += [f"| tables exported by `journey export-marts` | {len(counts['spark'])} |",
              f"| their row counts equal on every engine | {'yes' if same else 'no'} |"]
    print(f"  wrote {_replace_section(f'journey run on Spark, {label} events', lines)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: tmp)")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument("--copies", type=int, default=1,
                        help="generate events/COPIES and write COPIES copies with their own "
                             "ids (the 100 M run: the generator holds its events in memory)")
    parser.add_argument("--memory-limit", default=None,
                        help="DuckDB memory_limit for the run (config resources.memory_limit, "
                             "e.g. 3GB); default: the config's default (60%% of RAM)")
    parser.add_argument("--no-compare", action="store_true",
                        help="skip the pm4py comparison (pm4py holds the whole log in pandas: "
                             "about 25 GB at 100 M events)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="times each side of the pm4py comparison runs (median kept)")
    parser.add_argument("--command", action="store_true",
                        help="time `journey run` itself (a subprocess with the default "
                             "outputs) against the bare copy, instead of the steps in-process")
    parser.add_argument("--no-increment", action="store_true",
                        help="with --command: the full run only, not the next nights' "
                             "0.3 %% increments")
    parser.add_argument("--engines", action="store_true",
                        help="time `journey run` with engine.kind duckdb and then spark "
                             "(local[2]) on the same exports")
    parser.add_argument("--from-step", default=None,
                        help="keep the warehouse of an earlier run in --work and run the steps "
                             "from this one on (e.g. build after a load that took 12 minutes); "
                             "prints the timings, writes nothing")
    args = parser.parse_args()

    import duckdb
    import pm4py

    from journey_mining import discovery, eventlog, warehouse
    from journey_mining import steps as pipeline
    from journey_mining.config import Config

    work = args.work or Path(tempfile.mkdtemp(prefix="journey-bench-"))
    exports, db = work / "exports", work / "bench.duckdb"
    if args.from_step is None:
        for stale in (db, Path(f"{db}.wal")):
            stale.unlink(missing_ok=True)
    n_accounts = max(10, args.events // EVENTS_PER_ACCOUNT // args.copies)
    print(f"journey-mining benchmark: ~{args.events:,} events "
          f"({n_accounts * args.copies:,} accounts) in {work}")
    timings: list = []
    with measured(timings, "generate exports (not pipeline)"):
        if args.copies == 1:
            counts = _generated(exports, n_accounts)
        else:
            base = _generated(work / "base" / "exports", n_accounts)
            counts = {k: v * args.copies for k, v in base.items()}
            replicate(work / "base" / "exports", exports, args.copies)
    events = counts["crm_activities"] + counts["web_events"] + counts["email_events"]
    size = sum(p.stat().st_size for p in exports.iterdir() if p.is_file())
    print(f"  generated {events:,} events, {sum(counts.values()):,} rows, {size / 2**20:.0f} MB")

    if args.engines:
        engine_benchmark(exports, work, args.events, events, args.memory_limit,
                         not args.no_write)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
        return
    if args.command:
        command_benchmark(exports, work, args.events, events, args.memory_limit,
                          not args.no_write, increment=not args.no_increment)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
        return
    steps: list = []
    if args.from_step is None:
        with measured(steps, "bare DuckDB read of the files"):
            bare_rows = bare_read(duckdb.connect(), exports)
        with measured(steps, "bare DuckDB copy of the files into a database file"):
            bare_copy(exports, work / "bare.duckdb")
    # The declared steps (journey_mining.steps), each timed; the first is the load.
    config = Config()
    if args.memory_limit:
        config = Config.model_validate({"resources": {"memory_limit": args.memory_limit}})
    print(f"  DuckDB memory_limit {config.resources.duckdb_memory_limit()}")
    ctx = pipeline.RunContext(db, config, exports, reports_dir=work / "reports",
                              run_name="bench", static_images=False)
    models = _ModelTimes()
    logging.getLogger("journey_mining.sql_models").addHandler(models)
    logging.getLogger("journey_mining.sql_models").setLevel(logging.DEBUG)
    names = [step.name for step in pipeline.STEPS]
    first = names.index(args.from_step) if args.from_step else 0
    for step in pipeline.STEPS[first:]:
        with measured(steps, step.name):
            pipeline.run_step(step, ctx)
    if args.from_step:
        print(f"  steps from {args.from_step}: {sum(s[1] for s in steps):.1f} s, "
              f"peak {max(s[2] for s in steps):.0f} MB")
        return
    print("  slowest SQL models: " + ", ".join(
        f"{name} {seconds:.1f} s" for name, seconds in models.slowest(8)))
    con = warehouse.connect(db)
    pipeline_total = sum(s[1] for s in steps[2:])
    pipeline_peak = max(s[2] for s in steps[2:])

    # The same analyses, ours in DuckDB and pm4py on pandas, both starting from the same
    # warehouse table: the activity-level account log the mining step stored.
    compare: list = []
    log = con.table("activity_log")
    n_log = log.count("*").fetchall()[0][0]
    # Each side `--repeats` times, the median kept: one cold run of ours (about a second
    # at 10 M) moved the ratio between x9 and x11 from run to run on this shared machine.

    def ours():
        discovery.discover_dfg(log)
        discovery.discover_start_end(log)
        discovery.discover_variants(log)

    def theirs(frame):
        pm4py.discover_dfg(frame)
        pm4py.discover_performance_dfg(frame)
        pm4py.get_start_activities(frame)
        pm4py.get_end_activities(frame)
        pm4py.get_variants(frame)

    median_of(compare, "ours: DFG + perf + starts + variants", args.repeats, ours)
    if not args.no_compare:
        frame = median_of(compare, "pm4py: table to pandas", args.repeats,
                          lambda: eventlog.to_pm4py(log))
        median_of(compare, "pm4py: DFG + perf DFG + starts + variants", args.repeats,
                  lambda: theirs(frame))
        del frame
    ours = compare[0][1]
    pm4py_time = compare[1][1] + compare[2][1] if len(compare) > 1 else float("nan")
    ingest_time, bare_time, copy_time = steps[2][1], steps[0][1], steps[1][1]
    versus = (f"vs pm4py {pm4py_time:.2f} s: x{pm4py_time / ours:.1f}" if len(compare) > 1
              else "(pm4py not run: --no-compare)")
    print(f"  log: {n_log:,} events; ours {ours:.2f} s {versus}; ingest / bare read: "
          f"x{ingest_time / bare_time:.1f} (/ bare copy: x{ingest_time / copy_time:.1f})")
    print(f"  pipeline total {pipeline_total:.1f} s, peak {pipeline_peak:.0f} MB")

    if not args.no_write:
        write_markdown(args.events, events, size, bare_rows, steps, compare, n_log,
                       pipeline_total, pipeline_peak, config.resources.duckdb_memory_limit(),
                       args.repeats)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


def machine() -> str:
    import duckdb
    import pm4py

    memory = psutil.virtual_memory().total / 2**30
    return (f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB, "
            f"Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
            f"pm4py {pm4py.__version__}, {platform.platform()}")


def write_markdown(target, events, size, bare_rows, steps, compare, n_log, total, peak,
                   memory_limit, repeats) -> None:
    path = REPO / "BENCHMARKS.md"
    label = f"{target / 1e6:g} M"
    lines = [f"## {label} events", "",
             f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; DuckDB memory_limit "
             f"{memory_limit}.", "",
             f"Generated {events:,} events ({size / 2**20:.0f} MB of exports, "
             f"{bare_rows:,} rows incl. accounts, contacts, overlaps and dirt).", "",
             "| step | wall time (s) | peak memory (MB) |", "|---|---:|---:|"]
    lines += [f"| {s} | {t:.2f} | {m:.0f} |" for s, t, m in steps]
    lines += [f"| **pipeline total (ingest to report)** | **{total:.1f}** | **{peak:.0f}** |", "",
              f"Same analyses from the same warehouse table, the activity-level account log "
             f"`activity_log` ({n_log:,} events); each side run {repeats} times, median:", "",
              "| | wall time (s) | peak memory (MB) |", "|---|---:|---:|"]
    lines += [f"| {s} | {t:.2f} | {m:.0f} |" for s, t, m in compare]
    ratio = (f"x{(compare[1][1] + compare[2][1]) / compare[0][1]:.1f}" if len(compare) > 1
             else "not run (--no-compare)")
    lines += ["", "| ratio | value | target |", "|---|---:|---|",
              f"| pm4py / ours (DFG, performance, starts, variants; same table) | "
              f"{ratio} | >= x10 |",
              f"| ingest / bare read | x{steps[2][1] / steps[0][1]:.1f} | <= x2 |",
              f"| ingest / bare copy into a database file (not a target; what any load "
              f"writes) | x{steps[2][1] / steps[1][1]:.1f} | |", ""]
    section = "\n".join(lines)
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(rf"## {re.escape(label)} events\n.*?(?=\n## |\Z)", re.S)
    text = pattern.sub(section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    path.write_text(text.strip() + "\n")
    print(f"  wrote {path}")


if __name__ == "__main__":
    main()
