"""A run that is stopped, killed, pointed at the wrong place or fed thin data (issue 10):
it stops promptly, leaves nothing behind, and says what happened in one line."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from journey_mining import build, churn, discovery, ingest, journeys, mining, warehouse
from journey_mining.config import AnalysisParams
from journey_mining.errors import NoDataError, WarehouseError, WarehouseLockedError
from journey_mining.generator import GeneratorSpec, generate_exports
from tests.conftest import REPO, user_env
from tests.journeys_fixture import built_journeys, write_journey_exports

JOURNEY = str(Path(sys.executable).parent / "journey")


# -- signals and kills ---------------------------------------------------------------------

def test_sigterm_interrupts_a_long_query_rolls_back_and_frees_the_lock(tmp_path):
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE kept AS SELECT 1 AS x")
    con.close()
    script = textwrap.dedent(f"""
        from journey_mining import warehouse
        from journey_mining.operations import RunStopped, stop_on_signals
        try:
            with stop_on_signals(), warehouse.exclusive({str(db)!r}):
                con = warehouse.connect({str(db)!r})
                with warehouse.transaction(con):
                    con.execute("INSERT INTO kept VALUES (2)")
                    print("running", flush=True)
                    con.execute("SELECT count(*) FROM range(100000000000) a, range(10) b")
        except RunStopped as exc:
            print(exc, flush=True)
    """)
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                           cwd=REPO)
    assert run.stdout.readline().strip() == "running"
    time.sleep(0.5)
    sent = time.monotonic()
    run.send_signal(signal.SIGTERM)
    out, _ = run.communicate(timeout=30)
    assert time.monotonic() - sent < 10  # the query would run for hours
    assert out.strip() == "stopped by SIGTERM"
    assert not Path(f"{db}.lock").exists()
    assert duckdb.connect(str(db), read_only=True).execute(
        "SELECT x FROM kept").fetchall() == [(1,)]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found += [int(p) for p in text.split()]
    return found


def test_kill_9_of_a_run_takes_its_prefect_server_down(tmp_path):
    env = user_env(tmp_path / "prefect")
    run = subprocess.Popen([JOURNEY, "run", "--input", str(REPO / "data" / "sample"),
                            "--warehouse", str(tmp_path / "w.duckdb"), "--no-static-images"],
                           env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    server = None
    deadline = time.monotonic() + 60
    while server is None and time.monotonic() < deadline:
        for child in _children(run.pid):
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"uvicorn" in cmdline:
                server = child
        time.sleep(0.1)
    assert server, "the run started no Prefect server"
    run.kill()
    run.wait()
    deadline = time.monotonic() + 20
    while Path(f"/proc/{server}").exists() and time.monotonic() < deadline:
        state = Path(f"/proc/{server}/stat").read_text().split()[2] \
            if Path(f"/proc/{server}/stat").exists() else "X"
        if state == "Z":  # a zombie is gone; only init has to reap it
            break
        time.sleep(0.2)
    state = (Path(f"/proc/{server}/stat").read_text().split()[2]
             if Path(f"/proc/{server}/stat").exists() else "X")
    assert state in ("X", "Z")


# -- the warehouse path --------------------------------------------------------------------

def test_a_symlink_to_the_warehouse_takes_the_same_lock(tmp_path):
    db = tmp_path / "w.duckdb"
    link = tmp_path / "link.duckdb"
    link.symlink_to(db)
    with warehouse.exclusive(db), pytest.raises(WarehouseLockedError), \
            warehouse.exclusive(link):
        pass


def test_the_lock_file_is_gone_after_a_run(tmp_path):
    db = tmp_path / "w.duckdb"
    with warehouse.exclusive(db):
        assert Path(f"{db}.lock").exists()
    assert not Path(f"{db}.lock").exists()


def test_a_warehouse_folder_that_is_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "plain").write_text("x")
    with pytest.raises(WarehouseError, match="cannot"):
        warehouse.check_writable(tmp_path / "plain" / "w.duckdb")


def _immutable(path: Path, on: bool) -> bool:
    """chattr +i: not even root may write (a stand-in for a read-only mount or share)."""
    return subprocess.run(["chattr", "+i" if on else "-i", str(path)],
                          capture_output=True).returncode == 0


@pytest.mark.parametrize("what", ["folder", "file"])
def test_a_read_only_warehouse_is_one_line_at_once(tmp_path, what):
    folder = tmp_path / "db"
    folder.mkdir()
    db = folder / "w.duckdb"
    if what == "file":
        duckdb.connect(str(db)).close()
    frozen = db if what == "file" else folder
    if not _immutable(frozen, True):
        pytest.skip("chattr +i is not available on this file system")
    try:
        started = time.monotonic()
        result = subprocess.run(
            [JOURNEY, "run", "--input", str(REPO / "data" / "sample"), "--warehouse", str(db)],
            capture_output=True, text=True, cwd=tmp_path, timeout=120)
        elapsed = time.monotonic() - started
    finally:
        _immutable(frozen, False)
    assert result.returncode == 1
    assert elapsed < 60  # no retries, no server start (in practice about a second)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "the warehouse cannot be written" in lines[0], result.stderr
    assert not Path(f"{db}.lock").exists()


# -- thin data and failing analyses ----------------------------------------------------------

def test_an_empty_folder_on_a_new_warehouse_is_one_clear_line(tmp_path):
    (tmp_path / "in").mkdir()
    result = subprocess.run([JOURNEY, "run", "--input", str(tmp_path / "in"),
                             "--warehouse", str(tmp_path / "w.duckdb")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'in'}: no export files (names matching crm_accounts*, "
        "crm_contacts*, crm_activities*, web_events*, email_events*) and the warehouse "
        f"{tmp_path / 'w.duckdb'} does not exist yet: nothing to analyse"]
    assert not (tmp_path / "w.duckdb").exists() and not (tmp_path / "w.duckdb.lock").exists()


def test_an_as_of_before_the_first_event_is_a_clear_message(tmp_path):
    con = built_journeys(tmp_path)
    build.build(con, AnalysisParams(), as_of=dt.datetime(1990, 1, 1))
    with pytest.raises(NoDataError, match="no touchpoint up to the as-of date 1990-01-01"):
        journeys.require_touchpoints(con)


def test_mining_an_empty_build_does_not_crash(tmp_path):
    con = warehouse.connect()
    build.build(con, AnalysisParams())
    result = mining.mine(con, tmp_path / "out")
    assert result.issues == []
    assert con.execute("SELECT count(*) FROM journey_conformance").fetchall() == [(0,)]


def test_a_failing_process_model_loses_nothing_else(tmp_path, monkeypatch):
    con = built_journeys(tmp_path)

    def broken(*args, **kwargs):
        raise IndexError("list index out of range")

    monkeypatch.setattr(discovery, "discover_process_model", broken)
    result = mining.mine(con, tmp_path / "out")
    assert [step for step, _ in result.issues] == [
        "stage process model (pm4py inductive miner)",
        "activity process model (pm4py inductive miner)"]
    assert {"xes", "ocel"} <= set(result.files)
    assert con.execute("SELECT count(*) FROM stage_transitions").fetchall()[0][0] > 0
    summary = journeys.journey_summary(con).to_text()
    assert "Not in this run (2 optional analyses failed" in summary
    assert "stage process model (pm4py inductive miner): IndexError" in summary


def test_the_report_says_what_is_missing(tmp_path, monkeypatch):
    from journey_mining import reengagement, reports

    con = built_journeys(tmp_path)
    mining.mine(con)
    reengagement.analyse_reengagement(con)
    churn.store_churn(con, churn.score_churn(con))
    warehouse.record_issue(con, "churn risk", "ValueError: no")
    monkeypatch.setattr(reports.figures, "build_gap_figure", lambda frame: 1 / 0)
    index = reports.write_report(con, tmp_path / "reports", "r1", static_images=False)
    page = index.read_text()
    assert "Not in this report:" in page
    assert "churn risk: ValueError: no" in page
    assert "chart gap-days: ZeroDivisionError" in page
    assert "This chart could not be drawn" in page


def test_the_report_renders_with_no_table_of_any_optional_step(tmp_path):
    """Only the build ran (mining, re-engagement, churn and drivers all failed): every
    section still renders, and those of the missing steps say so where they would be."""
    from journey_mining import reports

    con = built_journeys(tmp_path)
    index = reports.write_report(con, tmp_path / "reports", "r1", static_images=False)
    page = index.read_text()
    assert page.count("Not in this run") >= 8
    assert "could not be drawn" not in page
    assert not (index.parent / "churn_scores.csv").exists()
    assert (index.parent / "dropped_accounts.csv").exists()


def test_seed_5_with_3000_accounts_mines_every_model(tmp_path):
    """Regression: pm4py's DFG inductive miner raised IndexError on this log."""
    generate_exports(tmp_path / "in", GeneratorSpec(n_accounts=3000, seed=5))
    con = warehouse.connect()
    ingest.load_exports(con, tmp_path / "in")
    build.build(con, AnalysisParams())
    result = mining.mine(con, tmp_path / "out")
    assert result.issues == []
    assert {"stage_pnml", "activity_pnml", "activity_bpmn"} <= set(result.files)


def test_churn_snapshots_are_bounded():
    dates = churn.snapshot_dates(dt.datetime(2999, 1, 1), 180, 30, dt.datetime(2023, 1, 1),
                                 max_snapshots=36)
    assert len(dates) == 36 and dates[0] == dt.datetime(2999, 1, 1) - dt.timedelta(days=180)


def test_a_failed_first_run_leaves_no_warehouse_and_no_traceback(tmp_path):
    exports = tmp_path / "in"
    exports.mkdir()
    (exports / "web_events.csv").write_text("id,occurred_at,anonymous_id,event_name\n"
                                            "w1,2025-01-01,a,page_view\n")
    env = user_env(tmp_path / "prefect", seed=False)
    result = subprocess.run([JOURNEY, "run", "--input", str(exports), "--warehouse",
                             str(tmp_path / "w.duckdb"), "--no-static-images"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "leaked" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"error: {exports / 'web_events.csv'}: required column 'event_id'")
    # refused by the pre-check (before Prefect): no warehouse, not even Prefect's home
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


# -- a model of the user's own -------------------------------------------------------------

def _own_models_checkout(tmp_path) -> Path:
    """A copy of the library and its SQL models, as a user who adds a model has."""
    import shutil

    copy = tmp_path / "checkout"
    for folder in ("journey_mining", "sql"):
        shutil.copytree(REPO / folder, copy / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_a_model_with_a_typo_fails_in_one_line_and_keeps_the_previous_build(tmp_path):
    from tests.journeys_fixture import write_journey_exports

    copy = _own_models_checkout(tmp_path)
    env = user_env(tmp_path / "prefect", shared_api=True, PYTHONPATH=str(copy),
                   PREFECT_SERVER_ANALYTICS_ENABLED="false")
    run = [sys.executable, "-m", "journey_mining", "run", "--input",
           str(write_journey_exports(tmp_path / "in")), "--warehouse", str(tmp_path / "w.duckdb"),
           "--outputs", str(tmp_path / "out"), "--reports", str(tmp_path / "rep"),
           "--no-static-images"]
    first = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path, env=env,
                           timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    built_as_of = con.execute("SELECT as_of FROM run_parameters").fetchall()
    con.close()
    (copy / "sql" / "marts" / "my_metric.sql").write_text(
        "select count(*) as accounts from account_journys")
    again = subprocess.run([*run, "--as-of", "2025-01-31"], capture_output=True, text=True,
                           cwd=tmp_path, env=env, timeout=300)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        "error: marts/my_metric.sql reads account_journys, which no model builds before it (a "
        "table of a later step, or a typo)"]
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("SELECT as_of FROM run_parameters").fetchall() == built_as_of


@pytest.mark.parametrize("error", [
    "TransactionContext Error: Failed to commit: Could not write file \"/mnt/w.duckdb.wal\": "
    "No space left on device",
    OSError(28, "No space left on device", "/mnt/outputs/stage.xes")])
def test_a_full_disk_is_one_sentence_even_in_an_optional_step(tmp_path, error):
    """A full disk in the build printed 126 lines; it is not an optional step's failure to
    record and go on from (the next write would fail too) but one sentence naming the file.
    (The command was measured on a 6 MB tmpfs: 20 lines, the last this one, loads kept.)"""
    from journey_mining import steps

    def full(ctx):
        raise duckdb.TransactionException(error) if isinstance(error, str) else error

    step = steps.Step("mining", full, reads=(), writes=(), optional=True)
    ctx = steps.RunContext(warehouse=tmp_path / "w.duckdb")
    with pytest.raises(WarehouseError) as raised:
        steps.run_step(step, ctx)
    file = "/mnt/w.duckdb.wal" if isinstance(error, str) else "/mnt/outputs/stage.xes"
    assert str(raised.value).startswith(
        f"{file}: the disk is full (no space left on device) during the step 'mining'")
    assert "mining" not in ctx.results  # not recorded as a failed optional analysis


def test_a_failed_report_is_said_and_publishing_goes_on_without_it(tmp_path, monkeypatch):
    """A report that cannot be written is an optional step that failed: the run ends, the
    publish step publishes without a link (it crashed the flow on the missing link)."""
    from journey_mining import reports, steps

    def broken(*args, **kwargs):
        raise RuntimeError("planted report failure")

    monkeypatch.setattr(reports, "write_report", broken)
    published = []
    ctx = steps.RunContext(warehouse=tmp_path / "w.duckdb", input_dir=write_journey_exports(
        tmp_path / "in"), reports_dir=tmp_path / "r", static_images=False,
        publish=lambda ctx, report: published.append(report))
    with warehouse.exclusive(ctx.warehouse):
        steps.run_plan(ctx)
    assert ctx.results["report"].failed == "RuntimeError: planted report failure"
    assert published == [None]
    assert ctx.results["publish"].failed is None
