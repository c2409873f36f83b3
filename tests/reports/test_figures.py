"""Figures show the warehouse's numbers (checked on fig.data, not pixels)."""

from __future__ import annotations

import pandas as pd
import pytest

from journey_mining import reports


@pytest.fixture(scope="module")
def data(sample_warehouse):
    from journey_mining import warehouse

    con = warehouse.connect(sample_warehouse, read_only=True)
    yield reports.report_data(con)
    con.close()


def test_funnel_figure_shows_reached_per_stage(data):
    fig = reports.build_funnel_figure(data.funnel)
    expected = data.funnel.set_index("stage").loc[list(reports.FUNNEL), "reached"].tolist()
    assert list(fig.data[0].x) == expected


def test_dropoff_figure_shows_dropped_per_stage(data):
    fig = reports.build_dropoff_figure(data.funnel)
    assert list(fig.data[0].y) == data.funnel.dropped.head(4).tolist()


def test_process_map_draws_every_transition_and_every_stage(data):
    fig = reports.build_process_map_figure(data.stage_transitions, data.occupancy)
    edges = [t for t in fig.data if t.mode == "lines" and t.x[0] is not None]
    moves = data.stage_transitions.from_stage != data.stage_transitions.to_stage
    assert len(edges) == moves.sum()
    back = [t for t in edges if t.line.color == "#E45756"]
    assert len(back) == (data.stage_transitions.kind == "back_step").sum() > 0
    nodes = next(t for t in fig.data if t.name == "stages")
    assert len(nodes.x) == 8


def test_activity_map_slider_shows_top_n(data):
    fig = reports.build_activity_map_figure(data.activity_transitions, data.activity_stages)
    first = fig.layout.sliders[0].steps[0]
    assert sum(first.args[0]["visible"]) == 10 + 1  # ten edges and the nodes


def test_sankey_covers_the_top_variants_and_says_the_long_tail(data):
    fig = reports.build_sankey_figure(data.variants, top_k=10)
    top = data.variants.head(10)
    first_step = sum(v for s, v in zip(fig.data[0].link.source, fig.data[0].link.value,
                                       strict=True) if s == 0)
    assert first_step <= top.cases.sum()
    assert reports.pct(1 - top.coverage.sum()) in fig.layout.title.text


def test_headlines_quote_the_warehouse(data):
    text = reports.headlines(data)
    k = data.kpis
    assert f"{int(data.funnel.reached.iloc[0]):,} accounts" in text["funnel"]
    assert reports.pct(k.resolved_share) in text["quality"]
    assert f"{len(data.churn)} clients now are scored" in text["churn"]


def test_the_paths_diagram_keeps_each_step_in_its_column_without_overlaps():
    """A path's k-th stage stands in column k (plotly would push a path's end to the far
    right), and the nodes of one column are stacked in ladder order, apart."""
    variants = pd.DataFrame({
        "variant": ["awareness > consideration", "awareness > evaluation > decision",
                    "awareness > consideration > evaluation > decision > client",
                    "awareness"],
        "cases": [50, 20, 10, 5], "coverage": [50 / 85, 20 / 85, 10 / 85, 5 / 85]})
    fig = reports.build_sankey_figure(variants, top_k=4)
    node = fig.data[0].node
    placed = {label: (x, y) for label, x, y in zip(node.label, node.x, node.y, strict=True)}
    assert placed["2. evaluation"][0] == placed["2. consideration"][0] < placed[
        "3. decision"][0] < placed["5. client"][0]
    assert placed["3. decision"][0] == placed["3. evaluation"][0]
    assert placed["2. consideration"][1] < placed["2. evaluation"][1]  # ladder order, down
    assert fig.data[0].arrangement == "fixed"
