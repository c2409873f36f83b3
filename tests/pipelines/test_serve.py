"""`journey serve` serves (issue 27): without a Prefect server of the user's it starts a
local API with Prefect's scheduler, runs the flow on its cron, logs each run, and stops
cleanly on SIGTERM; a folder that does not exist is one line before anything starts."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from journey_mining.generator import GeneratorSpec, generate_exports
from tests.conftest import user_env

JOURNEY = str(Path(sys.executable).parent / "journey")


def _env(tmp_path: Path) -> dict:
    return user_env(tmp_path / ".prefect")


def test_a_missing_input_folder_is_refused_before_serving(tmp_path):
    started = time.monotonic()
    run = subprocess.run([JOURNEY, "serve", "--input", str(tmp_path / "nowhere"),
                          "--warehouse", str(tmp_path / "w.duckdb")], capture_output=True,
                         text=True, cwd=tmp_path, env=_env(tmp_path), timeout=120)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'nowhere'}: input folder not found")
    assert time.monotonic() - started < 30 and "Prefect API" not in run.stderr


def _as_a_background_job() -> None:
    """What `journey serve ... &` in a script gets: a non-interactive shell starts a
    background job with SIGINT ignored (serve once never stopped on SIGTERM that way)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _serve(tmp_path: Path, folder: Path, tag: str):
    log = tmp_path / f"{tag}.err"
    process = subprocess.Popen(
        [JOURNEY, "serve", "--input", str(folder), "--warehouse", str(tmp_path / "w.duckdb"),
         "--cron", "* * * * *", "--outputs", str(tmp_path / "o"), "--reports",
         str(tmp_path / "r")], stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
        cwd=tmp_path, env=_env(tmp_path), preexec_fn=_as_a_background_job)
    return process, log


def _wait_for(process, log: Path, seen, seconds: float = 200) -> None:
    deadline = time.monotonic() + seconds  # the next minute, the flow, a busy machine
    while time.monotonic() < deadline:
        text = log.read_text()
        if seen(text):
            return
        assert process.poll() is None, text[-3000:]
        time.sleep(1)
    process.kill()
    pytest.fail(f"not seen within {seconds:.0f} s:\n" + log.read_text()[-3000:])


def _stop(process) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        out, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    return out


@pytest.mark.slow
def test_serve_runs_on_its_cron_stops_on_sigterm_and_is_not_blocked_by_a_stopped_run(
        tmp_path):
    """SIGTERM mid-run (what systemd and Kubernetes send) left the run Running, holding
    the deployment's one run slot: every later serve ran nothing. Now the run is stopped
    and marked crashed, and the next serve runs on the minute."""
    folder = tmp_path / "in"
    generate_exports(folder, GeneratorSpec(n_accounts=30, seed=41, dirt=False))
    first, log = _serve(tmp_path, folder, "first")
    _wait_for(first, log, lambda text: "Beginning flow run 'journeys" in text)
    out = _stop(first)
    assert out.splitlines()[0].startswith("serving 'daily-journeys': * * * * * (UTC) on http")
    assert out.strip().splitlines()[-1] == (
        "stopped serving; the run in progress was stopped (rolled back, marked crashed): "
        "the next scheduled run does it again")
    assert "Traceback" not in log.read_text()

    second, log = _serve(tmp_path, folder, "second")
    _wait_for(second, log, lambda text: any(
        "Flow run 'journeys" in line and "Finished in state Completed()" in line
        for line in text.splitlines()))
    assert _stop(second).strip().splitlines()[-1] == "stopped serving"
    assert (tmp_path / "r" / "w" / "latest" / "index.html").exists()
    assert "Journeys as of" in log.read_text()  # the run's summary, in serve's output
