"""The chart registry (`reports.charts.CHARTS`) is the one list of charts: every chart in
it stands in the written report, in its section, as a chart or as a sentence saying why
not; nothing registered goes silently missing, and one broken chart does not take the
rest of the report with it."""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

import pytest

from journey_mining import reports, warehouse
from journey_mining.reports import charts
from journey_mining.reports import html as report_html

# The optional steps' frames: None (and listed in `absent`) when their step did not finish.
OPTIONAL = {"stage_transitions": "stage_transitions",
            "activity_transitions": "activity_transitions", "variants": "path_variants",
            "conformance": "conformance_summary", "stage_timing": "stage_timing",
            "curves": "reengagement_curves", "lift": "gap_touchpoint_lift",
            "churn": "churn_scores", "model_run": "model_runs",
            "drivers": "conversion_drivers", "attribution": "attribution",
            "representatives": "representative_journeys"}
# Frames emptied for "nothing to show yet" (the funnel is zeroed instead).
EMPTIED = ("stage_transitions", "activity_transitions", "variants", "channel_mix", "channel_paths",
           "curves",
           "gaps", "lifecycle", "lift", "drivers", "attribution", "representatives",
           "resolution")


def _as_is(d):
    return d


def _optional_steps_absent(d):
    return dataclasses.replace(d, **dict.fromkeys(OPTIONAL), absent=tuple(OPTIONAL.values()))


def _nothing_to_show_yet(d):
    funnel = d.funnel.assign(reached=0, dropped=0)
    return dataclasses.replace(d, funnel=funnel, model_run=d.model_run.copy().replace(
        {"trained": "fallback"}), **{name: getattr(d, name).iloc[0:0] for name in EMPTIED})


@pytest.fixture
def sample_data(sample_warehouse):
    con = warehouse.connect(sample_warehouse, read_only=True)
    yield reports.report_data(con)
    con.close()


def write(sample_warehouse, folder: Path, monkeypatch, data=None, **kwargs) -> str:
    """The report of the sample warehouse, optionally from changed data."""
    if data is not None:
        monkeypatch.setattr(report_html, "report_data", lambda con: data)
    con = warehouse.connect(sample_warehouse, read_only=True)
    try:
        index = reports.write_report(con, folder, "r", **{"static_images": False, **kwargs})
    finally:
        con.close()
    return index.read_text()


def section(page: str, sid: str) -> str:
    start = page.index(f'<section id="{sid}">')
    return page[start:page.index("</section>", start)]


def shown_or_said(page: str, chart: charts.Chart) -> bool:
    """Whether the chart stands in its section: drawn, or a sentence in its place."""
    part = section(page, chart.section)
    return (f'<div id="fig-{chart.name}"' in part
            or html.escape(report_html.NOT_IN_THIS_RUN) in part
            or (chart.empty_sentence is not None and html.escape(chart.empty_sentence) in part))


def test_chart_names_are_unique_and_sections_exist():
    names = [c.name for c in charts.CHARTS]
    assert len(names) == len(set(names))
    sections = {s.id for s in report_html.SECTIONS}
    assert {c.section for c in charts.CHARTS} <= sections
    assert tuple(c.name for c in charts.CHARTS if c.static_image) == reports.STATIC_IMAGES


def test_a_predicate_without_its_sentence_is_refused():
    with pytest.raises(ValueError, match="go together"):
        charts.Chart("x", "trend", lambda d: None, lambda d: True, None)


@pytest.mark.parametrize("change", [_as_is, _optional_steps_absent, _nothing_to_show_yet])
def test_every_registered_chart_is_shown_or_said_in_its_section(
        sample_warehouse, sample_data, tmp_path, monkeypatch, change):
    d = change(sample_data)
    page = write(sample_warehouse, tmp_path, monkeypatch, data=d)
    assert "could not be drawn" not in page
    belongs = [c for c in charts.CHARTS if c.belongs(d)]
    assert [c.name for c in belongs if not shown_or_said(page, c)] == []
    # A chart that does not belong in this report leaves no trace.
    for chart in set(charts.CHARTS) - set(belongs):
        assert f'id="fig-{chart.name}"' not in page


def test_the_sample_draws_every_chart(sample_warehouse, tmp_path, monkeypatch):
    page = write(sample_warehouse, tmp_path, monkeypatch)
    drawn = [c.name for c in charts.CHARTS if f'<div id="fig-{c.name}"' in page]
    # The sample has one as-of date (no trend yet) and no significant driver.
    assert set(drawn) == {c.name for c in charts.CHARTS} - {"trend", "drivers"}
    order = [page.index(f'<div id="fig-{name}"') for name in drawn]
    assert order == sorted(order), "charts stand in registry order"


def _boom(d):
    raise RuntimeError("boom\nsecond line")


def test_a_chart_that_raises_is_said_and_the_rest_stays(
        sample_warehouse, tmp_path, monkeypatch):
    broken = charts.Chart("broken", "trend", _boom, None, None)
    monkeypatch.setattr(charts, "CHARTS", (*charts.CHARTS, broken))
    page = write(sample_warehouse, tmp_path, monkeypatch)
    assert ("<p class='note'>This chart could not be drawn (RuntimeError: boom).</p>"
            in section(page, "trend"))
    assert "<li>chart broken: RuntimeError: boom</li>" in page.split("</header>")[0]
    assert [c.name for c in charts.CHARTS if c is not broken and not shown_or_said(page, c)
            ] == []


def test_a_chart_from_a_table_not_in_this_run_says_so(
        sample_warehouse, sample_data, tmp_path, monkeypatch):
    reading_absent = charts.Chart("absent", "channels",
                                  lambda d: reports.build_drivers_figure(d.drivers.head(1)),
                                  None, None)
    monkeypatch.setattr(charts, "CHARTS", (*charts.CHARTS, reading_absent))
    d = dataclasses.replace(sample_data, drivers=None, absent=("conversion_drivers",))
    page = write(sample_warehouse, tmp_path, monkeypatch, data=d)
    channels = section(page, "channels")
    assert '<div id="fig-channel-mix"' in channels
    assert html.escape(report_html.NOT_IN_THIS_RUN) in channels
    assert "could not be drawn" not in page


def test_a_new_chart_is_one_registry_entry(sample_warehouse, tmp_path, monkeypatch):
    """Registered once, in any section: drawn in that section, and listed among the
    static images when it asks to be."""
    extra = tuple(charts.Chart(f"new-in-{s.id}", s.id,
                               lambda d: reports.build_funnel_figure(d.funnel), None, None,
                               static_image=True) for s in report_html.SECTIONS)
    monkeypatch.setattr(charts, "CHARTS", (*charts.CHARTS, *extra))
    page = write(sample_warehouse, tmp_path, monkeypatch)
    assert [c.section for c in extra
            if f'<div id="fig-{c.name}"' not in section(page, c.section)] == []
    assert set(charts.static_images(charts.CHARTS)) >= {c.name for c in extra}


@pytest.mark.skipif(reports.find_chromium() is None, reason="needs Chromium for PNGs")
def test_every_static_image_is_written(sample_warehouse, tmp_path, monkeypatch):
    write(sample_warehouse, tmp_path, monkeypatch, static_images=True)
    images = {p.stem for p in (tmp_path / "r" / "images").glob("*.png")}
    assert images == {c.name for c in charts.CHARTS if c.static_image}
    assert all(p.stat().st_size > 10_000 for p in (tmp_path / "r" / "images").glob("*.png"))
