"""`journey serve` serves (issue 27): without a Prefect server of the user's it starts a
local API with Prefect's scheduler, runs the flow on its cron, logs each run, and stops
cleanly on SIGTERM; a folder that does not exist is one line before anything starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from journey_mining.generator import GeneratorSpec, generate_exports

JOURNEY = str(Path(sys.executable).parent / "journey")


def _env(tmp_path: Path) -> dict:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / ".prefect")}
    env.pop("PREFECT_API_URL", None)
    return env


def test_a_missing_input_folder_is_refused_before_serving(tmp_path):
    started = time.monotonic()
    run = subprocess.run([JOURNEY, "serve", "--input", str(tmp_path / "nowhere"),
                          "--warehouse", str(tmp_path / "w.duckdb")], capture_output=True,
                         text=True, cwd=tmp_path, env=_env(tmp_path), timeout=120)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'nowhere'}: input folder not found")
    assert time.monotonic() - started < 30 and "Prefect API" not in run.stderr


@pytest.mark.slow
def test_serve_runs_the_flow_on_its_cron_and_stops_on_sigterm(tmp_path):
    folder = tmp_path / "in"
    generate_exports(folder, GeneratorSpec(n_accounts=30, seed=41, dirt=False))
    log = (tmp_path / "serve.err").open("w")
    serve = subprocess.Popen(
        [JOURNEY, "serve", "--input", str(folder), "--warehouse", str(tmp_path / "w.duckdb"),
         "--cron", "* * * * *", "--outputs", str(tmp_path / "o"), "--reports",
         str(tmp_path / "r")], stdout=subprocess.PIPE, stderr=log, text=True, cwd=tmp_path,
        env=_env(tmp_path))
    finished = "Flow run 'journeys"
    try:
        deadline = time.monotonic() + 200  # the next minute, the flow, a busy machine
        while time.monotonic() < deadline:
            text = (tmp_path / "serve.err").read_text()
            if any(finished in line and "Finished in state Completed()" in line
                   for line in text.splitlines()):
                break
            assert serve.poll() is None, text[-3000:]
            time.sleep(2)
        else:
            pytest.fail("no scheduled run finished within 200 s:\n" + text[-3000:])
        serve.send_signal(signal.SIGTERM)
        out, _ = serve.communicate(timeout=90)
    finally:
        if serve.poll() is None:
            serve.kill()
        log.close()
    assert serve.returncode == 0, (tmp_path / "serve.err").read_text()[-3000:]
    assert out.splitlines()[0].startswith("serving 'daily-journeys': * * * * * (UTC) on http")
    assert out.strip().splitlines()[-1] == "stopped serving"
    assert (tmp_path / "r" / "latest" / "index.html").exists()
    assert "Journeys as of" in (tmp_path / "serve.err").read_text()  # the run's summary
