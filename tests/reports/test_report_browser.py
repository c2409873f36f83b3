"""The report in a real browser: headless Chromium, no JavaScript errors, every chart drawn
with data, and the numbers on screen equal to the warehouse. A screenshot is kept in
artifacts/ (not in git) for a person to look at."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from journey_mining import reports, warehouse
from tests.conftest import REPO

CHROMIUM = reports.find_chromium()
ARTIFACTS = REPO / "artifacts"


@pytest.fixture(scope="module")
def report(sample_warehouse, tmp_path_factory):
    con = warehouse.connect(sample_warehouse, read_only=True)
    index = reports.write_report(con, tmp_path_factory.mktemp("reports"), "test-run")
    funnel = con.sql("SELECT stage, reached FROM stage_funnel ORDER BY stage_order").fetchall()
    churn = con.sql("SELECT account_id FROM churn_scores ORDER BY churn_probability DESC, "
                    "account_id LIMIT 20").fetchall()
    con.close()
    return index, dict(funnel), [r[0] for r in churn]


def test_report_is_self_contained(report):
    index, _, _ = report
    text = index.read_text()
    assert re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?https?:", text) is None
    assert text.count("Plotly.newPlot") >= 14
    assert (index.parent / "dropped_accounts.csv").exists()
    assert (index.parent.parent / "latest" / "index.html").exists()


def test_static_images_are_written_for_slide_decks(report):
    if CHROMIUM is None:
        pytest.skip("no Chromium: static images are skipped by design")
    index, _, _ = report
    images = sorted(p.name for p in (index.parent / "images").glob("*.png"))
    assert images == sorted(f"{n}.png" for n in reports.STATIC_IMAGES)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (make test installs it)")
def test_report_renders_in_headless_chromium(report):
    from playwright.sync_api import sync_playwright

    index, funnel, churn_top = report
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(index.as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 14")
        charts = page.evaluate("""Array.from(document.querySelectorAll('.js-plotly-plot'))
            .map(d => [d.id, (d._fullData || []).length,
                       d.querySelectorAll('svg.main-svg').length])""")
        shown_funnel = page.evaluate(
            "document.getElementById('fig-funnel')._fullData[0].x")
        shown_churn = page.evaluate("""Array.from(document.querySelectorAll(
            '#churn table tbody tr td:first-child')).map(td => td.textContent)""")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []
    assert len(charts) >= 14
    assert all(n_traces > 0 and n_svg > 0 for _, n_traces, n_svg in charts), charts
    assert shown_funnel == [funnel[s] for s in reports.FUNNEL]
    assert shown_churn == churn_top


def test_report_survives_a_warehouse_without_churn_model(tmp_path, sample_warehouse):
    copy = tmp_path / "w.duckdb"
    shutil.copy(sample_warehouse, copy)
    con = warehouse.connect(copy)
    con.execute("UPDATE model_runs SET status = 'fallback', reason = 'too few labelled rows'")
    index = reports.write_report(con, tmp_path / "r", "fallback", static_images=False)
    assert "Too little history to train a model" in Path(index).read_text()
