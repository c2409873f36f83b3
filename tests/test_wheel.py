"""The package as a user installs it: a wheel carries its SQL models and config, and the
demo runs from it in a fresh virtual environment, away from this checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("wheel")]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy of the tracked files, as from a fresh clone: setuptools' build/
    # folder in a working tree (left by an earlier build) must not decide the result.
    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                             check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(out), str(source)], check=True, cwd=out)
    return next(out.glob("journey_mining-*.whl"))


def test_wheel_carries_every_sql_model_and_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    models = {f"journey_mining/sql/{p.relative_to(REPO / 'sql')}"
              for p in (REPO / "sql").rglob("*") if p.suffix in (".sql", ".yml")}
    configs = {f"journey_mining/config/{p.name}"
               for p in (REPO / "journey_mining" / "config").glob("*.yml")}
    assert models and configs
    assert models - names == set()
    assert configs - names == set()
    assert "journey_mining/reports/figures.py" in names
    assert "journey_mining/pipelines/journey_pipeline.py" in names
    assert not any(n.startswith("pipelines/") for n in names)  # no top-level package


def test_demo_runs_from_the_wheel_in_a_fresh_venv(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    # The wheel alone into the new venv; its dependencies are seen from the project's
    # venv (no download), but not the project's editable install (a .pth file there is
    # not read when its folder is only added to the path).
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
                    "--target", str(site), str(wheel)], check=True)
    (site / "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": ""}
    where = subprocess.run(
        [python, "-c", "import journey_mining, journey_mining.sql_models as w; "
                       "print(journey_mining.__file__); print(w.SQL_DIR)"],
        check=True, capture_output=True, text=True, cwd=work, env=env).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where
    demo = subprocess.run([python, "-m", "journey_mining", "demo", "--warehouse",
                           "warehouse/demo.duckdb"], capture_output=True, text=True,
                          cwd=work, env=env, timeout=900)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "generating the sample exports" in demo.stdout
    assert "Journeys as of" in demo.stdout
    assert list((work / "reports").glob("*/asof-*/index.html"))
    assert (work / "warehouse" / "demo.duckdb").exists()
