"""The notebooks run top to bottom against a built warehouse (the session's sample)."""

from __future__ import annotations

import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_there_are_four_notebooks():
    assert [p.name for p in NOTEBOOKS] == [
        "01_journeys_and_paths.ipynb", "02_conversion_and_dropoffs.ipynb",
        "03_churn_and_reengagement.ipynb", "04_attribution_and_drivers.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, sample_warehouse, tmp_path, monkeypatch):
    copy = tmp_path / "w.duckdb"
    shutil.copy(sample_warehouse, copy)
    monkeypatch.setenv("JOURNEY_WAREHOUSE", str(copy))
    monkeypatch.setenv("PM4PY_SHOW_PROGRESS_BAR", "false")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert len(outputs) >= len([c for c in notebook.cells if c.cell_type == "code"]) - 1
