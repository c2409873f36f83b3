"""How fast `journey run` answers when there is nothing to do, or a mistake to report.

    .venv/bin/python benchmarks/operations.py

Runs the command as a user would, on the committed sample: a first full run, then
the same folder again (nothing new: decided before Prefect starts), then a config
with a typo. Wall times of whole commands, median of three, written to the
"Operations" section of BENCHMARKS.md. Targets (issue 14): unchanged <= 3 s,
config error <= 1 s.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JOURNEY = str(Path(sys.executable).parent / "journey")


def timed(args: list[str], cwd: Path, env: dict) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env)
    return time.perf_counter() - started, result


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="journey-ops-"))
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect")}
    env.pop("PREFECT_API_URL", None)
    run = [JOURNEY, "run", "--input", str(REPO / "data" / "sample"), "--warehouse",
           str(work / "w.duckdb"), "--reports", str(work / "r"), "--outputs", str(work / "o"),
           "--no-static-images"]
    first, result = timed(run, work, env)
    assert result.returncode == 0, result.stderr[-2000:]
    unchanged = []
    for _ in range(3):
        seconds, result = timed(run, work, env)
        assert result.stdout.startswith("nothing new"), result.stdout
        unchanged.append(seconds)
    (work / "typo.yml").write_text("analysis:\n  dormancy_dayz: 30\n")
    typo = []
    for _ in range(3):
        seconds, result = timed(run + ["--config", str(work / "typo.yml")], work, env)
        assert result.returncode == 1 and "did you mean" in result.stderr
        typo.append(seconds)
    lines = ["## Operations (whole `journey run` commands on the sample)", "",
             f"Measured {time.strftime('%Y-%m-%d')}; median of three, wall time.", "",
             "| command | seconds | target |", "|---|---:|---|",
             f"| first run on a new warehouse (includes starting the local Prefect API) "
             f"| {first:.1f} | |",
             f"| same folder again: nothing new | {statistics.median(unchanged):.2f} | <= 3 |",
             f"| config with a typo | {statistics.median(typo):.2f} | <= 1 |", ""]
    section = "\n".join(lines)
    path = REPO / "BENCHMARKS.md"
    text = path.read_text()
    pattern = re.compile(r"## Operations.*?(?=\n## |\Z)", re.S)
    text = pattern.sub(section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    path.write_text(text.strip() + "\n")
    print(section)


if __name__ == "__main__":
    main()
