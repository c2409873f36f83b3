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


@pytest.fixture(scope="module")
def placed_charts(sample_warehouse) -> int:
    """How many charts the report places (each drawn, or a sentence in its place)."""
    con = warehouse.connect(sample_warehouse, read_only=True)
    try:
        return len(reports.html.drawn_charts(reports.report_data(con)))
    finally:
        con.close()


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
    page = Path(index).read_text()
    assert "Too little history to score the risk of leaving" in page
    assert "no probability or band is shown" in page


LAYOUT_JS = """() => {
  const box = e => { const r = e.getBoundingClientRect();
                     return {l: r.left, r: r.right, t: r.top, b: r.bottom, w: r.width}; };
  return Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => {
    const svg = d.querySelector('svg.main-svg');
    const title = d.querySelector('.gtitle');
    const legend = d.querySelector('g.legend');
    return {id: d.id, svg: box(svg), cell: box(d.closest('.chart') || d.parentElement),
            title: title ? box(title) : null, legend: legend ? box(legend) : null,
            labels: Array.from(d.querySelectorAll('.annotation-text, .xtick text'))
                         .filter(t => t.textContent.trim()).map(t => [t.textContent, box(t)])};
  });
}"""


READING_JS = """() => ({
  charts: Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => ({
    id: d.id,
    points: (d._fullData || []).reduce((n, t) => n + Math.max(
        (t.x || []).length, (t.y || []).length, ((t.node || {}).label || []).length), 0),
    axes: Array.from(d.querySelectorAll('g.xaxislayer-above, g.yaxislayer-above')).map(g => {
      const cls = Array.from(g.querySelectorAll('g.xtick, g.ytick'))[0];
      const letter = g.classList.contains('xaxislayer-above') ? 'x' : 'y';
      const title = d.querySelector('.g-' + letter + 'title');
      return {title: title ? title.textContent : '',
              ticks: Array.from(g.querySelectorAll('text')).map(t => t.textContent)};
    }),
  })),
  missing: document.querySelectorAll('p.missing').length,
  headers: Array.from(document.querySelectorAll('th')).map(th => th.textContent),
})"""
# An axis whose title names one of these counts things: its ticks are whole numbers.
COUNT_WORDS = ("accounts", "returns", "touchpoints", "moves", "clients")


def _overlap(a: dict, b: dict, slack: float = 1.0) -> bool:
    return (min(a["r"], b["r"]) - max(a["l"], b["l"]) > slack
            and min(a["b"], b["b"]) - max(a["t"], b["t"]) > slack)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (make test installs it)")
@pytest.mark.parametrize("width", [1280, 1440, 1920])
def test_every_chart_fits_its_cell_at_common_screen_widths(report, placed_charts, width):
    """No chart wider than its cell, no title cut or under the legend, and no label of
    the process map over another; every chart with data or a sentence in its place, every
    table header in plain words, whole-number ticks on count axes: at the widths of common
    laptop and desktop screens. Screenshots are kept in artifacts/ for a person to look at."""
    from playwright.sync_api import sync_playwright

    index, _, _ = report
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        page = browser.new_page(viewport={"width": width, "height": 1000})
        page.goto(index.as_uri())
        page.wait_for_load_state("load")
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg')"
                               ".length >= 14")
        page.wait_for_timeout(300)
        charts = page.evaluate(LAYOUT_JS)
        reading = page.evaluate(READING_JS)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"report-{width}px.png"), full_page=True)
        browser.close()
    assert len(charts) >= 14
    for c in charts:
        assert c["svg"]["w"] <= c["cell"]["w"] + 1, (c["id"], c["svg"]["w"], c["cell"]["w"])
        if c["title"]:
            assert c["title"]["r"] <= c["svg"]["r"] + 1, (c["id"], "title cut off")
            if c["legend"]:
                assert not _overlap(c["title"], c["legend"]), (c["id"], "title on legend")
    # Every chart has data, or a sentence stands in its place.
    assert len(reading["charts"]) + reading["missing"] >= placed_charts
    assert all(c["points"] > 0 for c in reading["charts"]), [
        c["id"] for c in reading["charts"] if not c["points"]]
    # Table headers in plain words: no field names (snake_case) on the page.
    assert reading["headers"] and not [h for h in reading["headers"] if "_" in h], [
        h for h in reading["headers"] if "_" in h]
    # Count axes have whole-number ticks, and no axis repeats a tick label (what
    # rounding fractional ticks of a small count gives: 0 1 1 2 2).
    for chart in reading["charts"]:
        for axis in chart["axes"]:
            ticks = [t for t in axis["ticks"] if t.strip()]
            assert len(ticks) == len(set(ticks)), (chart["id"], axis)
            if any(word in axis["title"] for word in COUNT_WORDS):
                assert not [t for t in ticks if re.search(r"\d[.]\d", t)], (chart["id"], axis)
    process_map = next(c for c in charts if c["id"] == "fig-process-map")
    labels = process_map["labels"]
    assert len(labels) >= 8 + 8  # the labelled moves and the eight stage names
    clashes = [(a[0], b[0]) for i, a in enumerate(labels) for b in labels[i + 1:]
               if _overlap(a[1], b[1])]
    assert clashes == []
