"""What an attacker or a careless user brings to `journey run` (issue 23): nothing lost,
nothing leaked, nothing half-done, nothing that waits forever.

One run of the command on generated exports with traps planted in them (a lone quote
in a CSV with blank lines and multi-line fields, zone names in timestamps, a float
column re-exported as Parquet, a FIFO, a renamed CRM activity type, formulas as
account names, a warehouse path with an apostrophe and staging on disk); each test
checks one promise on what that run left. Stops, failures of optional steps, the
lock, pseudonymisation and bad settings files get their own runs.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from journey_mining import operations
from journey_mining.config import load_config
from journey_mining.generator import GeneratorSpec, generate_exports
from tests.conftest import REPO, user_env

JOURNEY = str(Path(sys.executable).parent / "journey")
PREFECT_START = "a local Prefect API starts first"
FORMULAS = ("=HYPERLINK(\"http://x.io\",\"{}\")", "+1+cmd|' /C calc'!A0 {}", "@SUM(1+1) {}",
            "-2+3 {}")


def journey(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600,
            python: str | None = None, shared_api: bool = False
            ) -> subprocess.CompletedProcess:
    """`journey ARGS` as a user runs it (its own Prefect home; with `shared_api`, a Prefect
    server already running: `user_env`); with `python`, the same command with that code
    run first in its process (to plant a failure)."""
    env = user_env(cwd / ".prefect", shared_api=shared_api, **(env or {}))
    command = ([JOURNEY, *args] if python is None else
               [sys.executable, "-c", python + "\nimport sys\nfrom journey_mining.cli import main"
                "\nsys.argv = ['journey', *" + repr(list(args)) + "]\nmain()"])
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


def _rewrite(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def trapped_exports(folder: Path) -> Path:
    generate_exports(folder, GeneratorSpec(n_accounts=200, seed=23, dirt=False))
    for path in folder.glob("crm_activities*.csv"):
        _rewrite(path, ",meeting,", ",zoom_meeting,")
    accounts = pd.read_csv(folder / "crm_accounts.csv", dtype=str, keep_default_na=False)
    accounts["name"] = [FORMULAS[i % len(FORMULAS)].format(name)
                        for i, name in enumerate(accounts.name)]
    accounts["employees"] = "10"
    accounts.to_csv(folder / "crm_accounts.csv", index=False)
    # The same accounts re-exported from a system that writes integers as floats.
    floats = accounts.head(20).assign(employees=10.0)
    floats.to_parquet(folder / "crm_accounts_reexport.parquet", index=False)
    (folder / "web_events_traps.csv").write_text(
        "event_id,occurred_at,anonymous_id,event_name,page_url\n"
        "t1,2025-05-01 10:00:00 UTC,trapvisitor1,page_view,https://a.io/x\n"
        "\n"
        't2,2025-05-01 10:00:00 EST,trapvisitor1,page_view,https://a.io/27in-5"-monitor\n'
        't3,2025-05-01 10:00:00,trapvisitor1,page_view,"https://a.io/multi\nline"\n'
        "t4,2025-05-01 10:00:00 Europe/Berlin,trapvisitor1,page_view,https://a.io/y\n")
    os.mkfifo(folder / "web_events_pipe.csv")
    return folder


@pytest.fixture(scope="module")
def trapped_run(tmp_path_factory):
    return run_once(tmp_path_factory.mktemp("adversarial"), trapped_exports,
                    "ingest:\n  timezone: America/New_York\n  staging: disk\n"
                    # a user's own channel rule, tried before the defaults
                    "analysis:\n  marketing_channels:\n    keep_default_rules: true\n"
                    "    rules:\n      - channel: Video Calls\n"
                    "        when: {system: crm, activity: 'zoom_.*'}\n"
                    # a user who never opens the logs in another tool
                    "outputs:\n  xes: false\n  ocel: false\n",
                    Path("it's here") / "w.duckdb")


def run_once(root: Path, exports, config_text: str, warehouse: Path, env: dict | None = None):
    """`journey run` once on exports written by `exports(folder)` with a config file:
    (the completed process, the warehouse, the run's folder)."""
    folder = exports(root / "in")
    config = root / "config.yml"
    config.write_text(config_text)
    warehouse = root / warehouse
    run = journey("run", "--input", str(folder), "--warehouse", str(warehouse), "--config",
                  str(config), "--no-static-images", cwd=root, env=env, timeout=900,
                  shared_api=True)
    return run, warehouse, root


def rows(warehouse: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_trapped_run_finishes_with_its_report(trapped_run):
    run, warehouse, root = trapped_run
    assert run.returncode == 0, run.stderr[-3000:]
    assert (root / "reports" / "w" / "latest" / "index.html").exists()


def test_every_record_of_a_csv_with_a_lone_quote_is_loaded_or_rejected(trapped_run):
    _, warehouse, _ = trapped_run
    assert rows(warehouse, "SELECT rows_read, rows_loaded, rows_rejected FROM load_files "
                           "WHERE file = 'web_events_traps.csv'") == [(4, 4, 0)]
    assert rows(warehouse, "SELECT event_id, _row_number, page_url FROM raw_web_events "
                           "WHERE _file = 'web_events_traps.csv' ORDER BY event_id") == [
        ("t1", 2, "https://a.io/x"), ("t2", 4, 'https://a.io/27in-5"-monitor'),
        ("t3", 5, "https://a.io/multi\nline"), ("t4", 7, "https://a.io/y")]


def test_a_zone_written_in_the_value_wins_over_the_configured_zone(trapped_run):
    _, warehouse, _ = trapped_run
    assert rows(warehouse, "SELECT event_id, occurred_at FROM raw_web_events "
                           "WHERE _file = 'web_events_traps.csv' ORDER BY event_id") == [
        ("t1", dt.datetime(2025, 5, 1, 10)),   # UTC
        ("t2", dt.datetime(2025, 5, 1, 15)),   # EST: -05:00
        ("t3", dt.datetime(2025, 5, 1, 14)),   # none: the config's New York (EDT)
        ("t4", dt.datetime(2025, 5, 1, 8))]    # Europe/Berlin (CEST)


def test_integral_floats_re_exported_are_duplicates_not_conflicts(trapped_run):
    _, warehouse, _ = trapped_run
    assert rows(warehouse, "SELECT rows_read, rows_duplicate, rows_rejected FROM load_files "
                           "WHERE file = 'crm_accounts_reexport.parquet'") == [(20, 20, 0)]


def test_a_fifo_in_the_folder_is_skipped_with_a_line(trapped_run):
    run, warehouse, _ = trapped_run
    assert "web_events_pipe.csv: skipped, a FIFO (named pipe) is not an export file" in (
        run.stderr)
    assert rows(warehouse, "SELECT count(*) FROM load_files WHERE file = 'web_events_pipe.csv'"
                ) == [(0,)]


def test_an_unmapped_activity_type_is_named_and_breaks_nothing(trapped_run):
    run, warehouse, root = trapped_run
    assert "activity 'zoom_meeting'" in run.stderr and "in no stage" in run.stderr
    assert rows(warehouse, "SELECT count(*) FROM run_issues") == [(0,)]
    assert rows(warehouse, "SELECT count(*) FROM gap_touchpoint_lift "
                           "WHERE touchpoint = 'crm:zoom_meeting'") == [(1,)]
    assert operations.nothing_new(warehouse, root / "in", load_config(root / "config.yml"))


def test_a_users_channel_rule_from_the_config_reaches_the_touchpoints(trapped_run):
    """Through `journey run --config`: the renamed CRM activity gets the user's channel,
    every other touchpoint still the defaults'."""
    _, warehouse, _ = trapped_run
    got = dict(rows(warehouse, "SELECT activity || '/' || channel, any_value(marketing_channel) "
                               "FROM touchpoints GROUP BY ALL"))
    assert got["zoom_meeting/crm"] == "video calls"
    assert got["deal_won/crm"] == "sales outreach" and got["open/email"] == "email"
    assert got["page_view/web"] in {"organic search", "paid search", "direct", "referral",
                                    "organic social", "paid social", "email", "display",
                                    "events/offline"}


def test_exports_turned_off_in_the_config_are_not_written_and_the_models_are(trapped_run):
    _, _, root = trapped_run
    written = {p.name for p in (root / "outputs").rglob("*") if p.is_file()}
    assert not any(name.endswith((".xes", ".jsonocel")) for name in written), written
    assert {"stage_process.pnml", "activity_process.bpmn"} <= written, written


def test_exported_lists_neutralise_spreadsheet_formulas(trapped_run):
    _, _, root = trapped_run
    checked = 0
    for name in ("dropped_accounts.csv", "churn_scores.csv"):
        with (root / "reports" / "w" / "latest" / name).open(newline="") as handle:
            for row in csv.DictReader(handle):
                assert not row["account_name"].startswith(("=", "+", "-", "@")), row
                assert row["account_name"].startswith("'"), row
                checked += 1
    assert checked > 0


def test_no_staging_file_is_left_beside_a_warehouse_path_with_an_apostrophe(trapped_run):
    _, warehouse, _ = trapped_run
    assert sorted(p.name for p in warehouse.parent.iterdir()
                  if not p.name.endswith(".tmp")) == ["w.duckdb"]


# -- failures and stops -------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_exports(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("small") / "in"
    generate_exports(folder, GeneratorSpec(n_accounts=60, seed=31, dirt=False))
    return folder


FAIL_REENGAGEMENT = textwrap.dedent("""
    from journey_mining import reengagement
    def broken(con, *args, **kwargs):
        raise RuntimeError("planted failure")
    reengagement.analyse_reengagement = broken
""")


def test_a_failed_optional_step_renders_the_report_and_is_not_a_complete_build(
        tmp_path, small_exports):
    warehouse = tmp_path / "w.duckdb"
    run = journey("run", "--input", str(small_exports), "--warehouse", str(warehouse),
                  "--no-static-images", cwd=tmp_path, python=FAIL_REENGAGEMENT,
                  shared_api=True)
    assert run.returncode == 0, run.stderr[-3000:]
    page = (tmp_path / "reports" / "w" / "latest" / "index.html").read_text()
    assert "re-engagement: RuntimeError: planted failure" in page
    assert "Not in this run" in page
    assert rows(warehouse, "SELECT count(*) FROM duckdb_tables() WHERE table_name = "
                           "'build_state'") == [(0,)]
    assert not operations.nothing_new(warehouse, small_exports, load_config(None))
    assert "re-engagement failed; the run goes on without it" in run.stderr
    assert "Traceback" not in run.stderr
    # --debug shows where it failed
    debug = journey("run", "--input", str(small_exports), "--warehouse", str(warehouse),
                    "--no-static-images", "--debug", cwd=tmp_path, python=FAIL_REENGAGEMENT,
                    shared_api=True)
    assert debug.returncode == 0, debug.stderr[-3000:]
    assert "Traceback (most recent call last)" in debug.stderr
    assert ", in broken" in debug.stderr  # the frame of the planted function


# The 2 in 19 stops that were lost: DuckDB ran our signal handler itself while checking
# for signals and reported the stop as its own "Query interrupted" error, so no
# RunStopped reached the step. Planted as it happens: the handler raises nothing, the
# watcher thread still interrupts the warehouse query. Before the fix, the load was
# retried and applied, and mining recorded as an optional failure; both exited 0.
STOP_DURING = textwrap.dedent("""
    import os, signal, threading
    import journey_mining.{module} as target
    from journey_mining import warehouse
    real = target.{function}
    done = []
    def stopped(*args, **kwargs):
        if done:
            return real(*args, **kwargs)
        done.append(1)
        previous = signal.signal(signal.SIGTERM, lambda *a: None)
        try:
            con = warehouse.connect()
            threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
            con.execute("SELECT count(*) FROM range(100000000000) a, range(10) b")
        finally:
            signal.signal(signal.SIGTERM, previous)
    target.{function} = stopped
""")


@pytest.mark.parametrize(("module", "function"), [("ingest", "_read"), ("mining", "mine")])
def test_a_stop_in_a_query_is_never_retried_nor_recorded(tmp_path, small_exports, module,
                                                         function):
    warehouse = tmp_path / "w.duckdb"
    extra = []
    if module == "mining":  # a warehouse built before; another as-of makes mining run again
        first = journey("run", "--input", str(small_exports), "--warehouse", str(warehouse),
                        "--no-static-images", cwd=tmp_path, shared_api=True)
        assert first.returncode == 0, first.stderr[-3000:]
        extra = ["--as-of", "2025-06-01"]
    run = journey("run", "--input", str(small_exports), "--warehouse", str(warehouse),
                  "--no-static-images", *extra, cwd=tmp_path, timeout=300,
                  python=STOP_DURING.format(module=module, function=function))
    assert run.returncode == 128 + signal.SIGTERM, run.stderr[-3000:]
    assert "stopped by SIGTERM" in run.stderr
    assert "Retry 1/3" not in run.stderr
    if module == "ingest":
        assert not warehouse.exists()  # a first run that was stopped leaves nothing
    else:
        assert rows(warehouse, "SELECT count(*) FROM run_issues WHERE step = 'mining'") == [
            (0,)]
        # the build at the new as-of date was not recorded: the next run does it again
        assert not operations.nothing_new(warehouse, small_exports, load_config(None),
                                          dt.datetime(2025, 6, 1))


# -- the lock -----------------------------------------------------------------------------

def _run_while_held(code: str, tmp_path: Path, *args: str):
    """`journey run ARGS` while another process runs `code` (which prints "held" once it
    holds what it holds); returns the run and the holder's PID."""
    holder = subprocess.Popen([sys.executable, "-c", "import time, duckdb\n"
                               + textwrap.dedent(code)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        return journey("run", *args, cwd=tmp_path, timeout=120), holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_hard_link_to_a_held_warehouse_is_refused_before_prefect_starts(tmp_path,
                                                                          small_exports):
    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).close()
    link = tmp_path / "other" / "link.duckdb"
    link.parent.mkdir()
    os.link(warehouse, link)
    run, _ = _run_while_held(f"""
        from journey_mining import warehouse
        with warehouse.exclusive({str(warehouse)!r}):
            print("held", flush=True)
            time.sleep(120)
    """, tmp_path, "--input", str(small_exports), "--warehouse", str(link))
    assert run.returncode == 1
    assert "is in use by another run" in run.stderr
    assert PREFECT_START not in run.stderr


def test_a_notebooks_read_only_connection_is_one_line_before_prefect(tmp_path,
                                                                       small_exports):
    """A notebook holding the warehouse open (read-only) kept a run from writing: three
    retries and 118 lines; now one line naming the process, in about a second."""
    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).close()
    run, pid = _run_while_held(f"""
        con = duckdb.connect({str(warehouse)!r}, read_only=True)
        print("held", flush=True)
        time.sleep(120)
    """, tmp_path, "--input", str(small_exports), "--warehouse", str(warehouse))
    assert run.returncode == 1
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith(f"error: {warehouse}: the warehouse is open in another process (")
    assert f", PID {pid}), e.g. a notebook's connection; close it" in line
    assert PREFECT_START not in run.stderr


# -- settings files and absurd inputs -------------------------------------------------------

@pytest.mark.parametrize(("setting", "expected"), [
    ("config", "the config file is not a regular file"),
    ("stage map", "the stage map is not a regular file"),
    ("folder", "the config file is a folder"),
])
def test_a_settings_path_that_is_not_a_file_is_one_line(tmp_path, small_exports, setting,
                                                        expected):
    config = {"config": "/dev/zero", "folder": str(tmp_path)}.get(setting)
    if setting == "stage map":
        config = str(tmp_path / "config.yml")
        Path(config).write_text("analysis:\n  stage_map: /dev/zero\n")
    run = journey("run", "--input", str(small_exports), "--warehouse",
                  str(tmp_path / "w.duckdb"), "--config", config, cwd=tmp_path, timeout=60)
    assert run.returncode == 1
    assert expected in run.stderr
    assert "Traceback" not in run.stderr and PREFECT_START not in run.stderr


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_missing_required_column_is_refused_by_the_pre_check(tmp_path, kind):
    """From the file's header, before Prefect starts, with the mapping that would fix it;
    a README beside the exports and an empty file do not stop anything."""
    folder = tmp_path / "in"
    folder.mkdir()
    frame = pd.DataFrame({"Record ID": ["x1"], "Activity date": ["2024-04-18 10:00"],
                          "account_id": ["A1"]})
    if kind == "csv":
        frame.to_csv(folder / "crm_activities.csv", index=False)
    else:
        frame.to_parquet(folder / "crm_activities.parquet")
    (folder / "README.txt").write_text("exported on Monday\n")
    (folder / "web_events.csv").write_text("")
    config = tmp_path / "journey.yml"
    config.write_text("ingest:\n  sources:\n    crm_activities:\n      columns: "
                      "{'Record ID': activity_id, 'Activity date': occurred_at}\n")
    run = journey("run", "--input", str(folder), "--warehouse", str(tmp_path / "w.duckdb"),
                  "--config", str(config), cwd=tmp_path, timeout=120)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: {folder / ('crm_activities.' + kind)}: required column 'activity_type' of "
        "source crm_activities is missing (file has: Record ID, Activity date, account_id); "
        "map it with ingest.sources.crm_activities.columns in the config")
    assert PREFECT_START not in run.stderr
    assert not (tmp_path / "w.duckdb").exists()


def test_markup_and_emoji_codes_in_a_users_data_are_printed_as_written(tmp_path):
    """`[/]` in a header crashed the console printer; `:x:` became an emoji."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "crm_accounts.csv").write_text("account_id,[/]name :x:\nA1,Acme\n")
    run = journey("run", "--input", str(folder), "--warehouse", str(tmp_path / "w[1].duckdb"),
                  cwd=tmp_path, timeout=120)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].endswith(
        "(file has: account_id, [/]name :x:); map it with ingest.sources.crm_accounts.columns "
        "in the config")


def test_the_pre_check_names_a_too_long_records_true_line(tmp_path):
    """Through the command (the pre-check reads each header): the reader's own message
    said "CSV Error on Line: 1" for line 3."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "crm_accounts.csv").write_text(
        "account_id,name\nA1,Acme\nA2," + "x" * 3_000_000 + "\nA3,Beta\n")
    run = journey("run", "--input", str(folder), "--warehouse", str(tmp_path / "w.duckdb"),
                  cwd=tmp_path, timeout=120)
    assert run.returncode == 1 and PREFECT_START not in run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: {folder / 'crm_accounts.csv'}: cannot be read: line 3 is 3.0 MB long, more "
        "than the 2 MB a CSV record may have: is it the right file?")


def test_an_absurdly_wide_header_is_refused_in_one_line(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    header = ",".join(["event_id", "occurred_at", "anonymous_id", "event_name"]
                      + [f"c{i}" for i in range(100_000)])
    (folder / "web_events.csv").write_text(header + "\n" + "e1,2025-01-01,v,page_view\n")
    started = time.monotonic()
    run = journey("run", "--input", str(folder), "--warehouse", str(tmp_path / "w.duckdb"),
                  cwd=tmp_path, timeout=120)
    assert run.returncode == 1
    assert "its header has 100,004 columns" in run.stderr
    assert PREFECT_START not in run.stderr  # refused by the pre-check, not 20 s in
    assert time.monotonic() - started < 60
    assert not (tmp_path / "w.duckdb").exists()


# -- pseudonymisation through the command --------------------------------------------------

SECRETS = ["john.smith", "hans.müller", "mary.o'brien", "ann.lee", "bob.king",
           "visitoraaaa1", "visitorbbbb2", "carl.diaz"]


def private_exports(folder: Path) -> Path:
    generate_exports(folder, GeneratorSpec(n_accounts=40, seed=41, dirt=False))
    (folder / "web_events_private.csv").write_text(
        "event_id,occurred_at,anonymous_id,event_name,email,page_url,referrer\n"
        "p1,2025-05-01 10:00:00,VisitorAAAA1,page_view,,"
        "https://a.io/?e=john.smith%2Bnews%40acme.com,\n"
        "p2,2025-05-01 10:01:00,v2x,page_view,,https://a.io/?to=hans.müller@acme.com,"
        "https://b.io/?uid=visitoraaaa1\n"
        "p3,2025-05-01 10:02:00,v3x,page_view,,\"https://a.io/?to=mary.o'brien@acme.com\",\n"
        "p4,2025-05-01 10:03:00,v4x,page_view,,https://a.io/?to=ann.lee%2540acme.com,\n"
        "p5,2025-05-01 10:04:00,v5x,page_view,,https://a.io/?to=bob.king&#64;acme.com,\n"
        "p6,2025-05-01 10:05:00,VISITORBBBB2,page_view,,https://a.io/v/visitorbbbb2/home,\n")
    (folder / "crm_activities_private.csv").write_text(
        "activity_id,occurred_at,account_id,activity_type,properties\n"
        'x1,2025-05-01 11:00:00,A00001,call,"{""visitor"": ""VisitorAAAA1""}"\n')
    with gzip.open(folder / "email_events_private.jsonl.gz", "wt") as handle:
        handle.write('{"event_id": "m0", "occurred_at": "2025-05-01T11:00:00Z", '
                     '"email": "dora@acme.com", "event_type": "open"}\n')
        handle.write('{"event_id": "m1", "occurred_at": "2025-05-01T12:00:00Z", '
                     '"email": "carl.diaz@acme.com", "event_type": "open"\n')  # unsplittable
    return folder


@pytest.fixture(scope="module")
def private_run(tmp_path_factory):
    return run_once(tmp_path_factory.mktemp("private"), private_exports,
                    "ingest:\n  pseudonymise: true\n", Path("w.duckdb"),
                    env={"JOURNEY_PSEUDONYM_KEY": "s3cret-key"})


def test_the_command_pseudonymises_with_the_key_from_the_environment(private_run):
    run, warehouse, _ = private_run
    assert run.returncode == 0, run.stderr[-3000:]
    anonymous = rows(warehouse, "SELECT DISTINCT anonymous_id FROM raw_web_events")
    assert anonymous and all(v.startswith("p_") for (v,) in anonymous)


def test_no_planted_email_or_visitor_id_is_in_any_table_or_file(private_run):
    run, warehouse, root = private_run
    assert run.returncode == 0, run.stderr[-3000:]
    con = duckdb.connect(str(warehouse), read_only=True)
    texts = []
    for schema, table, column in con.execute(
            "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
            "WHERE data_type = 'VARCHAR' AND NOT internal").fetchall():
        texts += [v for (v,) in con.execute(
            f'SELECT DISTINCT "{column}" FROM "{schema}"."{table}"').fetchall() if v]
    con.close()
    for path in (root / "outputs").rglob("*"), (root / "reports").rglob("*"):
        for file in path:
            if file.is_file():
                data = file.read_bytes()
                texts.append((gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
                             .decode("utf-8", "replace"))
    found = {s for s in SECRETS for t in texts if s in t.lower()}
    assert found == set()
    assert not any("s3cret-key" in t for t in texts)


def test_an_unsplittable_row_keeps_its_timestamp_when_pseudonymised(private_run):
    _, warehouse, _ = private_run
    (raw,) = rows(warehouse, "SELECT raw FROM rejected_rows "
                             "WHERE file = 'email_events_private.jsonl.gz'")[0]
    assert '"occurred_at": "2025-05-01T12:00:00Z"' in raw
    assert "carl.diaz" not in raw


@pytest.mark.parametrize("command", ["run", "serve"])
def test_pseudonymising_without_a_key_stops_the_command_at_once(tmp_path, small_exports,
                                                                 command):
    config = tmp_path / "config.yml"
    config.write_text("ingest:\n  pseudonymise: true\n")
    env = {k: v for k, v in os.environ.items() if k != "JOURNEY_PSEUDONYM_KEY"}
    run = subprocess.run([JOURNEY, command, "--input", str(small_exports), "--warehouse",
                          str(tmp_path / "w.duckdb"), "--config", str(config)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120, env=env)
    assert run.returncode == 1
    assert "JOURNEY_PSEUDONYM_KEY" in run.stderr
    assert PREFECT_START not in run.stderr and "serving" not in run.stdout


def _start(args: list[str], cwd: Path) -> tuple[subprocess.Popen, list[str]]:
    """`journey ARGS` in a process group of its own (as a terminal starts it), and the
    list its stderr lines are read into (read all along, so the pipe never fills)."""
    import threading

    env = user_env(cwd / ".prefect")
    run = subprocess.Popen([JOURNEY, *args], cwd=cwd, env=env, stderr=subprocess.PIPE,
                           stdout=subprocess.DEVNULL, text=True, start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(run.stderr), daemon=True).start()
    return run, lines


def _wait_for(run: subprocess.Popen, lines: list[str], text: str, seconds: float = 120
              ) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and run.poll() is None:
        if any(text in line for line in list(lines)):
            return
        time.sleep(0.1)
    raise AssertionError(f"'{text}' never came: {''.join(lines)[-2000:]}")


def test_a_second_run_is_refused_while_the_first_starts_prefect(tmp_path, small_exports):
    """The pre-check used to take the lock and let it go: a second run started while
    the first one's Prefect API was starting got through to its own flow."""
    warehouse = tmp_path / "w.duckdb"
    args = ["run", "--input", str(small_exports), "--warehouse", str(warehouse),
            "--no-static-images"]
    first, lines = _start(args, tmp_path)
    try:
        _wait_for(first, lines, PREFECT_START)
        second = journey(*args, cwd=tmp_path, timeout=120)
        assert second.returncode == 1
        assert "is in use by another run" in second.stderr
        assert PREFECT_START not in second.stderr
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        first.wait(timeout=60)


def test_ctrl_c_to_the_process_group_stops_the_run_at_once(tmp_path, small_exports):
    """A terminal's Ctrl-C reaches every process of the group: the local Prefect API
    used to die first, and the run then hung about 70 s retrying its last logs."""
    run, lines = _start(["run", "--input", str(small_exports), "--warehouse",
                         str(tmp_path / "w.duckdb"), "--no-static-images"], tmp_path)
    _wait_for(run, lines, "Beginning flow run")
    os.killpg(run.pid, signal.SIGINT)
    try:
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 128 + signal.SIGINT
