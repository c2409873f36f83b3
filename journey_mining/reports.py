"""The HTML report marketing reads without help.

`report_data` reads what the pipeline stored; `build_*_figure(frame)` are pure
functions from a frame to a Plotly figure; `write_report` is the one writer: a
self-contained `index.html` (plotly.js embedded once, no CDN, works offline)
with a plain-language headline per section, plus the full list of dropped
accounts as CSV beside it.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from journey_mining.stages import LADDER, STAGE_ORDER
from journey_mining.warehouse import run_issues

FUNNEL = LADDER[:5]
LABEL = {s: s.replace("_", " ") for s in LADDER}
CHANNEL_COLOURS = {"web": "#4C78A8", "email": "#F58518", "crm": "#54A24B"}
BAND_COLOURS = {"high": "#E45756", "medium": "#F2B701", "low": "#72B7B2"}
LAYOUT = dict(template="plotly_white", height=420, margin=dict(l=60, r=30, t=50, b=50),
              font=dict(size=13))


@dataclass
class ReportData:
    """Everything the report shows, read from the warehouse once."""

    kpis: pd.Series
    funnel: pd.DataFrame
    dropped: pd.DataFrame
    stage_transitions: pd.DataFrame
    activity_transitions: pd.DataFrame
    activity_stages: pd.DataFrame
    variants: pd.DataFrame
    conformance: pd.Series
    cohorts: pd.DataFrame
    segments: pd.DataFrame
    channel_mix: pd.DataFrame
    stage_timing: pd.DataFrame
    curves: pd.DataFrame
    gaps: pd.DataFrame
    lifecycle: pd.DataFrame
    lift: pd.DataFrame
    churn: pd.DataFrame
    model_run: pd.Series | None
    loads: pd.DataFrame
    rejects: pd.DataFrame
    resolution: pd.DataFrame
    history: pd.DataFrame | None = None
    tests: pd.DataFrame | None = None


def report_data(con: duckdb.DuckDBPyConnection) -> ReportData:
    q = lambda sql: con.sql(sql).df()  # noqa: E731
    runs = q("SELECT * FROM model_runs ORDER BY trained_at DESC LIMIT 1")
    return ReportData(
        kpis=q("SELECT * FROM journey_kpis").iloc[0],
        funnel=q("SELECT * FROM stage_funnel ORDER BY stage_order"),
        dropped=q("""SELECT j.account_id, a.account_name, a.industry, j.dropped_at_stage,
                            j.last_touch_at,
                            date_diff('day', j.last_touch_at, p.as_of) AS days_silent,
                            j.n_touchpoints, j.n_contacts_engaged
                     FROM account_journeys j JOIN run_parameters p ON true
                     LEFT JOIN stg_crm__accounts a USING (account_id)
                     WHERE j.dropped
                     ORDER BY j.furthest_stage_order DESC, j.last_touch_at DESC"""),
        stage_transitions=q("SELECT * FROM stage_transitions"),
        activity_transitions=q("SELECT * FROM activity_transitions ORDER BY transitions DESC"),
        activity_stages=q("""SELECT activity, any_value(stage_order) AS stage_order, count(*) AS n
                             FROM int_journey_events GROUP BY activity"""),
        variants=q("SELECT * FROM path_variants WHERE level = 'stage' ORDER BY variant_rank"),
        conformance=q("SELECT * FROM conformance_summary").iloc[0],
        cohorts=q("""SELECT date_trunc('month', first_touch_at)::DATE AS cohort,
                            count(*) AS accounts,
                            avg((furthest_stage_order >= 3)::INT) AS evaluation,
                            avg((furthest_stage_order >= 4)::INT) AS decision,
                            avg((furthest_stage_order >= 5)::INT) AS client
                     FROM account_journeys WHERE furthest_stage_order IS NOT NULL
                     GROUP BY 1 ORDER BY 1"""),
        segments=q("""SELECT coalesce(a.industry, 'unknown') AS industry, count(*) AS accounts,
                             avg((j.furthest_stage_order >= 5)::INT) AS client
                      FROM account_journeys j LEFT JOIN stg_crm__accounts a USING (account_id)
                      WHERE j.furthest_stage_order IS NOT NULL GROUP BY 1 ORDER BY client DESC"""),
        channel_mix=q("""SELECT stage, stage_order, channel, count(*) AS touchpoints
                         FROM int_journey_events WHERE stage IS NOT NULL
                         GROUP BY ALL ORDER BY stage_order, channel"""),
        stage_timing=q("SELECT * FROM stage_timing ORDER BY stage_order"),
        curves=q("SELECT * FROM reengagement_curves"),
        gaps=q("SELECT * FROM reengagement_gaps"),
        lifecycle=q("SELECT * FROM lifecycle_periods WHERE period_type = 'month'"),
        lift=q("SELECT * FROM gap_touchpoint_lift ORDER BY lift DESC"),
        churn=q("""SELECT c.*, a.account_name FROM churn_scores c
                   LEFT JOIN stg_crm__accounts a USING (account_id)
                   ORDER BY churn_probability DESC, account_id"""),
        model_run=runs.iloc[0] if len(runs) else None,
        loads=q("SELECT * FROM loads ORDER BY load_id"),
        rejects=q("""SELECT source, split_part(reason, ':', 1) AS reason, count(*) AS rows
                     FROM rejected_rows GROUP BY ALL ORDER BY rows DESC"""),
        resolution=q("SELECT * FROM identity_resolution"),
        tests=(q("SELECT * FROM data_test_results")
               if con.execute("SELECT count(*) FROM duckdb_tables() "
                              "WHERE table_name = 'data_test_results'").fetchall()[0][0]
               else None),
        history=(q("""SELECT * FROM kpi_history
                      QUALIFY row_number() OVER (PARTITION BY as_of ORDER BY built_at DESC) = 1
                      ORDER BY as_of""")
                 if con.execute("SELECT count(*) FROM duckdb_tables() "
                                "WHERE table_name = 'kpi_history'").fetchall()[0][0] else None),
    )


# -- formatting -----------------------------------------------------------------------

def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA


def pct(x) -> str:
    return "—" if _missing(x) else f"{x:.1%}"


def duration(hours) -> str:
    """A duration in the unit its size calls for: minutes, hours or days."""
    if _missing(hours):
        return "—"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    return f"{hours / 24:.1f} days" if hours >= 24 else f"{hours:.1f} h"


# Below this many accounts a cohort's conversion is not plotted as a rate.
MIN_COHORT = 10


# -- figures --------------------------------------------------------------------------

def build_funnel_figure(funnel: pd.DataFrame) -> go.Figure:
    part = funnel[funnel.stage.isin(FUNNEL)]
    fig = go.Figure(go.Funnel(
        y=[LABEL[s] for s in part.stage], x=part.reached.tolist(),
        textinfo="value+percent previous", marker=dict(color="#4C78A8"),
        hovertemplate="%{y}: %{x} accounts reached<extra></extra>"))
    fig.update_layout(**LAYOUT, title="Accounts reaching each stage (or further)")
    return fig


def build_dropoff_figure(funnel: pd.DataFrame) -> go.Figure:
    part = funnel[funnel.stage.isin(FUNNEL[:4])]
    fig = go.Figure(go.Bar(
        x=[LABEL[s] for s in part.stage], y=part.dropped.tolist(), marker_color="#E45756",
        text=part.dropped.tolist(), textposition="outside",
        hovertemplate="%{x}: %{y} accounts went quiet<extra></extra>"))
    fig.update_layout(**LAYOUT, title="Where accounts went quiet (dropped)",
                      yaxis_title="accounts")
    return fig


def _arc(x0: float, x1: float, bend: float, n: int = 30):
    """Points of a quadratic curve from (x0, 0) to (x1, 0) bulging to `bend`."""
    t = np.linspace(0, 1, n)
    xm = (x0 + x1) / 2
    xs = (1 - t) ** 2 * x0 + 2 * (1 - t) * t * xm + t ** 2 * x1
    ys = 2 * (1 - t) * t * bend
    return xs, ys


def build_process_map_figure(transitions: pd.DataFrame, funnel: pd.DataFrame) -> go.Figure:
    """Stage DFG in ladder order: forward moves arc above, back-steps below; width = volume."""
    fig = go.Figure()
    top = max(transitions.transitions.max(), 1) if len(transitions) else 1
    labelled = set(transitions.nlargest(10, "transitions").index)
    for r in transitions.sort_values("transitions").itertuples():
        x0, x1 = STAGE_ORDER[r.from_stage], STAGE_ORDER[r.to_stage]
        forward = x1 > x0
        bend = (0.3 + 0.1 * abs(x1 - x0)) * (1 if forward else -1)
        xs, ys = _arc(x0, x1, bend)
        colour = {"ladder": "#4C78A8", "skip": "#9D755D", "back_step": "#E45756"}.get(
            r.kind, "#999")
        text = (f"{LABEL[r.from_stage]} → {LABEL[r.to_stage]}: {r.transitions} moves by "
                f"{r.accounts} accounts, median {duration(r.median_hours)}")
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", line=dict(width=1 + 11 * r.transitions / top,
                                                color=colour),
            opacity=0.75, hoverinfo="text", hovertext=text, showlegend=False))
        if r.Index in labelled:
            fig.add_annotation(x=xs[15], y=ys[15],
                               text=f"{r.transitions} · {duration(r.median_hours)}",
                               showarrow=False, font=dict(size=11, color=colour),
                               bgcolor="rgba(255,255,255,0.8)")
        fig.add_annotation(x=xs[-1], y=ys[-1], ax=xs[-4], ay=ys[-4], xref="x", yref="y",
                           axref="x", ayref="y", showarrow=True, arrowhead=2, arrowsize=1.2,
                           arrowcolor=colour, text="")
    ever = dict(zip(funnel.stage, funnel.ever_in_stage, strict=True))
    fig.add_trace(go.Scatter(
        x=[STAGE_ORDER[s] for s in LADDER], y=[0] * len(LADDER), mode="markers+text",
        marker=dict(size=[58 + 20 * math.sqrt(ever.get(s, 0) / max(max(ever.values()), 1))
                          for s in LADDER], color="#1f3a5f"),
        text=[f"{LABEL[s]}<br>{ever.get(s, 0)} accounts" for s in LADDER],
        textposition="middle center", textfont=dict(color="#fff", size=10),
        hoverinfo="text", showlegend=False, name="stages"))
    for name, colour in (("ladder step", "#4C78A8"), ("skip", "#9D755D"),
                         ("back-step", "#E45756")):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name,
                                 line=dict(color=colour, width=4)))
    fig.update_layout(**{**LAYOUT, "height": 560},
                      title="How journeys really move between stages",
                      xaxis=dict(visible=False, range=[0.4, 8.6]),
                      yaxis=dict(visible=False, range=[-1.3, 1.3]),
                      legend=dict(orientation="h", y=1.05))
    return fig


def build_activity_map_figure(transitions: pd.DataFrame, activities: pd.DataFrame,
                              top_ns: tuple[int, ...] = (10, 25, 50)) -> go.Figure:
    """Touchpoint-level map: activities by stage column; a slider shows the top-N moves."""
    stage_of = dict(zip(activities.activity, activities.stage_order.fillna(0), strict=True))
    freq = dict(zip(activities.activity, activities.n, strict=True))
    pos = {}
    for order in sorted(set(stage_of.values())):
        column = sorted((a for a in stage_of if stage_of[a] == order), key=lambda a: -freq[a])
        for i, activity in enumerate(column):
            pos[activity] = (order, (len(column) - 1) / 2 - i)
    edges = transitions.sort_values("transitions", ascending=False).reset_index(drop=True)
    edges = edges[edges.from_activity.isin(pos) & edges.to_activity.isin(pos)]
    top = max(edges.transitions.max(), 1) if len(edges) else 1
    fig = go.Figure()
    for r in edges.itertuples():
        (x0, y0), (x1, y1) = pos[r.from_activity], pos[r.to_activity]
        fig.add_trace(go.Scatter(
            x=[x0, (x0 + x1) / 2 + 0.15, x1], y=[y0, (y0 + y1) / 2 + 0.3, y1],
            mode="lines", line=dict(width=1 + 8 * r.transitions / top, shape="spline",
                                    color="rgba(76,120,168,0.5)"),
            hoverinfo="text", showlegend=False, visible=r.Index < top_ns[0],
            hovertext=f"{r.from_activity} → {r.to_activity}: {r.transitions} "
                      f"({r.accounts} accounts), median {duration(r.median_hours)}"))
    names = list(pos)
    fig.add_trace(go.Scatter(
        x=[pos[a][0] for a in names], y=[pos[a][1] for a in names], mode="markers+text",
        text=names, textposition="top center", showlegend=False,
        marker=dict(size=[10 + 25 * math.sqrt(freq[a] / max(freq.values())) for a in names],
                    color="#F58518"),
        hovertext=[f"{a}: {freq[a]} touchpoints" for a in names], hoverinfo="text"))
    n_edges = len(edges)
    steps = []
    for n in [*top_ns, n_edges]:
        visible = [i < n for i in range(n_edges)] + [True]
        steps.append(dict(method="update", args=[{"visible": visible}],
                          label=f"top {min(n, n_edges)}" if n < n_edges else f"all {n_edges}"))
    fig.update_layout(**{**LAYOUT, "height": 560},
                      title="Touchpoint map: the most frequent moves between activities",
                      xaxis=dict(tickvals=list(range(0, 9)),
                                 ticktext=["no stage"] + [LABEL[s] for s in LADDER]),
                      yaxis=dict(visible=False),
                      sliders=[dict(active=0, steps=steps, currentvalue={"prefix": "showing "},
                                    pad={"t": 40})])
    return fig


def build_sankey_figure(variants: pd.DataFrame, top_k: int = 10) -> go.Figure:
    """The most common stage paths, step by step."""
    top = variants.head(top_k)
    nodes, index, links = [], {}, {}
    for r in top.itertuples():
        steps = r.variant.split(" > ")
        for i, stage in enumerate(steps):
            key = (i, stage)
            if key not in index:
                index[key] = len(nodes)
                nodes.append(f"{i + 1}. {LABEL[stage]}")
            if i:
                link = (index[(i - 1, steps[i - 1])], index[key])
                links[link] = links.get(link, 0) + r.cases
    tail = 1 - top.coverage.sum()
    fig = go.Figure(go.Sankey(
        node=dict(label=nodes, pad=12, thickness=14),
        link=dict(source=[s for s, _ in links], target=[t for _, t in links],
                  value=list(links.values()))))
    fig.update_layout(**{**LAYOUT, "height": 520},
                      title=f"The {len(top)} most common paths ({pct(top.coverage.sum())} of "
                            f"accounts); the other {pct(tail)} take rarer paths")
    return fig


def build_linearity_figure(conformance: pd.Series) -> go.Figure:
    labels = ["follow the ladder", "skip a stage", "step back", "loop", "re-engaged"]
    values = [conformance.linear_share, conformance.share_with_skips,
              conformance.share_with_back_steps, conformance.share_with_loops,
              conformance.share_reengaged]
    fig = go.Figure(go.Bar(x=labels, y=values, text=[pct(v) for v in values],
                           textposition="outside", marker_color="#72B7B2"))
    fig.update_layout(**LAYOUT, title="Share of journeys with each kind of move",
                      yaxis=dict(tickformat=".0%", range=[0, 1.1]))
    return fig


def build_cohort_figure(cohorts: pd.DataFrame) -> go.Figure:
    """Conversion by month of first touch; cohorts under MIN_COHORT accounts are left out
    (one account is 0 % or 100 %, which reads as a trend and is none)."""
    cohorts = cohorts[cohorts.accounts >= MIN_COHORT]
    fig = go.Figure()
    for stage, colour in (("evaluation", "#4C78A8"), ("decision", "#F58518"),
                          ("client", "#54A24B")):
        fig.add_trace(go.Scatter(x=cohorts.cohort, y=cohorts[stage], mode="lines+markers",
                                 name=f"reached {stage}", line=dict(color=colour),
                                 customdata=cohorts.accounts,
                                 hovertemplate="%{x|%b %Y}: %{y:.0%} of %{customdata} "
                                               "accounts<extra></extra>"))
    fig.update_layout(**LAYOUT, title="Conversion by cohort (month of first touch)",
                      yaxis=dict(tickformat=".0%"))
    return fig


def build_trend_figure(history: pd.DataFrame) -> go.Figure:
    """The headline rates at each as-of date a build ran for (kpi_history)."""
    fig = go.Figure()
    for column, name, colour in (
            ("prospect_to_client_rate", "prospects who became clients", "#54A24B"),
            ("re_engagement_rate", "clients who came back (re-engagement)", "#4C78A8"),
            ("resolved_share", "touchpoints tied to an account", "#9D755D")):
        fig.add_trace(go.Scatter(x=history.as_of, y=history[column], name=name,
                                 mode="lines+markers", line=dict(color=colour),
                                 hovertemplate="%{x|%d %b %Y}: %{y:.1%}<extra></extra>"))
    fig.update_layout(**LAYOUT, title="Headline rates at each as-of date",
                      yaxis=dict(tickformat=".0%", rangemode="tozero"))
    return fig


def build_segment_figure(segments: pd.DataFrame) -> go.Figure:
    fig = go.Figure(go.Bar(x=segments.industry, y=segments.client,
                           text=[pct(v) for v in segments.client], textposition="outside",
                           customdata=segments.accounts, marker_color="#54A24B",
                           hovertemplate="%{x}: %{y:.0%} of %{customdata} accounts became "
                                         "clients<extra></extra>"))
    fig.update_layout(**LAYOUT, title="Share becoming a client, by industry",
                      yaxis=dict(tickformat=".0%"))
    return fig


def build_channel_mix_figure(mix: pd.DataFrame) -> go.Figure:
    share = mix.assign(share=mix.touchpoints / mix.groupby("stage").touchpoints.transform("sum"))
    fig = go.Figure()
    for channel, part in share.groupby("channel"):
        fig.add_trace(go.Bar(x=[LABEL[s] for s in part.stage], y=part.share,
                             name={"crm": "sales & service (CRM)"}.get(channel, channel),
                             marker_color=CHANNEL_COLOURS.get(channel),
                             customdata=part.touchpoints,
                             hovertemplate="%{x}: %{y:.0%} (%{customdata} touchpoints)"
                                           "<extra></extra>"))
    fig.update_layout(**LAYOUT, barmode="stack", yaxis=dict(tickformat=".0%"),
                      title="Self-directed (web, email) vs sales contact, by stage")
    return fig


def build_reengagement_curve_figure(curves: pd.DataFrame, segment_type: str = "size_band"
                                    ) -> go.Figure:
    fig = go.Figure()
    for (kind, segment), part in curves.groupby(["segment_type", "segment"], sort=False):
        if kind not in ("all", segment_type):
            continue
        xs = [0, *part.time_days.tolist()]
        ys = [0, *part.returned_share.tolist()]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", line=dict(shape="hv", width=4 if kind == "all" else 2),
            name="all accounts" if kind == "all" else f"{segment} employees"))
    fig.update_layout(**LAYOUT, title="Share back for a new engagement, by days since the last "
                                      "one ended (Kaplan-Meier)",
                      xaxis_title="days since the engagement ended",
                      yaxis=dict(tickformat=".0%"))
    return fig


def build_gap_figure(gaps: pd.DataFrame) -> go.Figure:
    back = gaps[gaps.returned]
    fig = go.Figure(go.Histogram(x=back.gap_days, nbinsx=20, marker_color="#4C78A8",
                                 hovertemplate="%{x} days: %{y} returns<extra></extra>"))
    fig.update_layout(**LAYOUT, title="Time between engagements, for accounts that came back",
                      xaxis_title="days", yaxis_title="returns")
    return fig


def build_lifecycle_figure(lifecycle: pd.DataFrame) -> go.Figure:
    colours = {"new": "#54A24B", "returning": "#4C78A8", "resurrecting": "#F2B701",
               "dormant": "#E45756"}
    fig = go.Figure()
    for status in ("new", "returning", "resurrecting", "dormant"):
        part = lifecycle[lifecycle.status == status]
        sign = -1 if status == "dormant" else 1
        fig.add_trace(go.Bar(x=part.period_start, y=sign * part.accounts, name=status,
                             marker_color=colours[status], customdata=part.accounts,
                             hovertemplate="%{x|%b %Y}: %{customdata} " + status
                                           + "<extra></extra>"))
    fig.update_layout(**LAYOUT, barmode="relative", yaxis_title="accounts",
                      title="Active accounts per month: new, returning, resurrecting; "
                            "dormant below zero")
    return fig


def build_lift_figure(lift: pd.DataFrame) -> go.Figure:
    part = lift.sort_values("lift")
    fig = go.Figure(go.Bar(
        y=part.touchpoint, x=part.lift, orientation="h",
        marker_color=["#54A24B" if s and v > 1 else "#BAB0AC"
                      for s, v in zip(part.significant, part.lift, strict=True)],
        error_x=dict(type="data", symmetric=False, array=part.lift_ci_high - part.lift,
                     arrayminus=part.lift - part.lift_ci_low),
        customdata=np.stack([part.gaps_with, part.return_rate_with], axis=-1),
        hovertemplate="%{y}: x%{x:.2f} (seen in %{customdata[0]} gaps, "
                      "%{customdata[1]:.0%} came back)<extra></extra>"))
    fig.add_vline(x=1, line_dash="dot")
    fig.update_layout(**LAYOUT, xaxis_type="log",
                      title="Touchpoints in the gap: how much more often accounts came back",
                      xaxis_title="return rate with / without (log scale, 95 % interval)")
    return fig


def build_model_quality_figure(run: pd.Series) -> go.Figure:
    metrics = ["ROC AUC", "PR AUC"]
    fig = go.Figure([
        go.Bar(name="churn model", x=metrics, y=[run.roc_auc, run.pr_auc],
               marker_color="#4C78A8"),
        go.Bar(name="recency only", x=metrics, y=[run.recency_roc_auc, run.recency_pr_auc],
               marker_color="#BAB0AC")])
    fig.update_layout(**LAYOUT, barmode="group", yaxis=dict(range=[0, 1]),
                      title="Backtest: the model vs a recency-only baseline (higher is better)")
    return fig


def build_quality_figure(resolution: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for method, part in resolution.groupby("method"):
        fig.add_trace(go.Bar(x=part.source, y=part.share_of_source, name=method,
                             customdata=part.touchpoints,
                             hovertemplate="%{x}: %{y:.0%} (%{customdata} touchpoints) "
                                           + method + "<extra></extra>"))
    fig.update_layout(**LAYOUT, barmode="stack", yaxis=dict(tickformat=".0%"),
                      title="How touchpoints were tied to accounts, by source")
    return fig


# -- headlines ------------------------------------------------------------------------

def headlines(d: ReportData) -> dict[str, str]:
    """One sentence or two per section, in words a reader acts on, for any amount of data:
    where something cannot be measured yet, the sentence says why."""
    return {"funnel": _funnel_sentence(d), "map": _map_sentence(d),
            "paths": _paths_sentence(d.variants), "linearity": _linearity_sentence(d),
            "cohorts": _cohort_sentence(d.cohorts, d.segments),
            "channels": _channel_sentence(d.channel_mix),
            "reengagement": _reengagement_sentence(d), "churn": _churn_sentence(d),
            "trend": _trend_sentence(d.history), "quality": _quality_sentence(d)}


def _trend_sentence(history: pd.DataFrame | None) -> str:
    if history is None or len(history) < 2:
        return "Each build adds a point here (kpi_history)."
    first, last = history.iloc[0], history.iloc[-1]
    return (f"{len(history)} as-of dates from {first.as_of:%d %b %Y} to {last.as_of:%d %b %Y}: "
            f"prospects who became clients went from {pct(first.prospect_to_client_rate)} to "
            f"{pct(last.prospect_to_client_rate)}.")


def _funnel_sentence(d: ReportData) -> str:
    f = d.funnel.set_index("stage")
    aware, clients = int(f.at["awareness", "reached"]), int(f.at["client", "reached"])
    if not aware:
        return "No account has a staged touchpoint yet: there is no funnel to show."
    if clients:
        text = (f"Of {aware:,} accounts that showed interest, {clients:,} became clients "
                f"({pct(clients / aware)}).")
    else:
        furthest = d.funnel[d.funnel.reached > 0].stage.iloc[-1]
        text = (f"No account has become a client yet: of {aware:,} accounts that showed "
                f"interest, the furthest got to {LABEL[furthest]}.")
    # The weakest step among steps with enough accounts to call it one.
    steps = d.funnel[d.funnel.stage.isin(FUNNEL[:4]) & (d.funnel.reached >= 5)
                     & d.funnel.conversion_to_next.notna()]
    if len(steps) >= 2:
        worst = steps.loc[steps.conversion_to_next.idxmin()]
        nxt = FUNNEL[FUNNEL.index(worst.stage) + 1]
        text += (f" The weakest step is {LABEL[worst.stage]} to {LABEL[nxt]}: "
                 f"{pct(worst.conversion_to_next)} move on.")
    dropped = int(d.funnel.dropped.sum())
    if dropped:
        biggest = d.funnel.loc[d.funnel.dropped.idxmax()]
        text += (f" {dropped:,} accounts went quiet before buying, most at "
                 f"{LABEL[biggest.stage]} ({int(biggest.dropped):,}).")
    else:
        text += " No account has gone quiet before buying."
    return text


def _map_sentence(d: ReportData) -> str:
    moves = d.stage_transitions[d.stage_transitions.kind != "repeat"]
    if moves.empty:
        return "No account has moved from one stage to another yet."
    back = moves[moves.kind == "back_step"].sort_values("accounts", ascending=False)
    share = d.conformance.share_with_back_steps
    if back.empty or not share:
        return "Every move so far went up the ladder: no account stepped back."
    top = back.iloc[0]
    return (f"Journeys do not run straight: {pct(share)} of accounts step back at least once, "
            f"most often from {LABEL[top.from_stage]} to {LABEL[top.to_stage]} "
            f"({int(top.accounts)} accounts).")


def _paths_sentence(variants: pd.DataFrame) -> str:
    if variants.empty:
        return "No stage paths yet."
    n = int(variants.cases.sum())
    if len(variants) == 1:
        return f"All {n:,} accounts follow the same stage path: {variants.variant.iloc[0]}."
    return (f"{len(variants):,} different stage paths for {n:,} accounts: the 10 most common "
            f"cover {pct(variants.head(10).coverage.sum())}, and "
            f"{pct((variants.cases == 1).sum() / max(n, 1))} of accounts follow a path nobody "
            "else took.")


def _linearity_sentence(d: ReportData) -> str:
    c = d.conformance
    if _missing(c.linear_share):
        return "No journeys to compare with the textbook ladder yet."
    text = f"{pct(c.linear_share)} of journeys follow the textbook ladder."
    if not _missing(c.client_conversion_linear) and not _missing(
            c.client_conversion_non_linear) and (c.client_conversion_linear
                                                 or c.client_conversion_non_linear):
        text += (f" {pct(c.client_conversion_linear)} of those reached client, against "
                 f"{pct(c.client_conversion_non_linear)} of the others; read this as "
                 "description, not cause.")
    return text


def _reengagement_sentence(d: ReportData) -> str:
    g, k = d.gaps, d.kpis
    if g.empty:
        return "No engagement has ended yet, so nobody can have come back."
    text = (f"{int(g.returned.sum())} of {len(g)} ended engagements led to a new one "
            f"(re-engagement rate {pct(k.re_engagement_rate)} of accounts).")
    top = d.lift[d.lift.significant & (d.lift.lift > 1)
                 & ~d.lift.touchpoint.astype(str).str.startswith("crm:")].head(1)
    if len(top):
        text += (f" Accounts with {top.iloc[0].touchpoint.split(':')[1].replace('_', ' ')} "
                 f"in the gap came back x{top.iloc[0].lift:.1f} as often.")
    return text


def _churn_sentence(d: ReportData) -> str:
    if d.churn.empty:
        return ("No clients to score at the as-of date: nobody is a client now (none yet, "
                "or every client has left).")
    horizon = int(d.model_run.horizon_days) if d.model_run is not None else 180
    text = (f"{len(d.churn)} clients scored; {int((d.churn.risk_band == 'high').sum())} at "
            f"high risk of leaving in the next {horizon} days.")
    return text + (_model_sentence(d.model_run) if d.model_run is not None else "")


def _quality_sentence(d: ReportData) -> str:
    return (f"{int(d.loads.rows_loaded.sum()):,} rows loaded, "
            f"{int(d.loads.rows_duplicate.sum()):,} duplicates skipped, "
            f"{int(d.loads.rows_rejected.sum()):,} rejected. {pct(d.kpis.resolved_share)} of "
            "touchpoints are tied to an account.")


def _cohort_sentence(cohorts: pd.DataFrame, segments: pd.DataFrame) -> str:
    mature = cohorts[cohorts.cohort <= cohorts.cohort.max() - pd.DateOffset(months=6)]
    text = "Recent cohorts have had less time to convert."
    if len(mature):
        rate = (mature.client * mature.accounts).sum() / mature.accounts.sum()
        text = (f"Of accounts first seen at least six months before the last cohort, "
                f"{pct(rate)} became clients; recent cohorts have had less time.")
    big = segments[segments.accounts >= 10]
    if len(big) >= 2:
        best, worst = big.iloc[0], big.iloc[-1]
        text += (f" {best.industry.title()} converts best ({pct(best.client)}), "
                 f"{worst.industry} least ({pct(worst.client)}).")
    return text


def _channel_sentence(mix: pd.DataFrame) -> str:
    def share(stages, channels):
        part = mix[mix.stage.isin(stages)]
        total = part.touchpoints.sum()
        return part[part.channel.isin(channels)].touchpoints.sum() / total if total else None

    early, late = share(FUNNEL[:2], ["web", "email"]), share(FUNNEL[2:4], ["crm"])
    parts = []
    if early is not None:
        parts.append(f"At awareness and consideration {pct(early)} of touchpoints are "
                     "self-directed (website, email).")
    if late is not None:
        parts.append(f"At evaluation and decision {pct(late)} are sales contact.")
    return " ".join(parts) or "No staged touchpoints yet."


def _model_sentence(run: pd.Series) -> str:
    if run.status != "trained":
        return (f" Too little history to train a model ({run.reason}); scores use the "
                "historical churn rate and simple rules.")
    verdict = "beats" if run.beats_recency_baseline else "does not beat"
    return (f" In the backtest the model ranks clients with ROC AUC {run.roc_auc:.2f} and "
            f"{verdict} recency alone ({run.recency_roc_auc:.2f}).")


# -- the writer -----------------------------------------------------------------------

def _table(frame: pd.DataFrame, formats: dict | None = None, empty: str = "None yet.") -> str:
    if frame.empty:
        return f"<p class='note'>{html.escape(empty)}</p>"
    formats = formats or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = "".join(
            f"<td>{html.escape(formats[c](v) if c in formats else ('' if pd.isna(v) else str(v)))}"
            "</td>" for c, v in row.items())
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;
background:#fafafa}header{background:#1f3a5f;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:24px}header p{margin:4px 0 0;opacity:.85}
nav{padding:8px 32px;background:#fff;border-bottom:1px solid #ddd;position:sticky;top:0;
z-index:10}nav a{margin-right:14px;color:#1f3a5f;text-decoration:none;font-size:14px}
main{max-width:1240px;margin:0 auto;padding:8px 24px 48px}section{background:#fff;
border:1px solid #e4e4e4;border-radius:8px;padding:16px 20px;margin:18px 0}
h2{margin:0 0 6px;font-size:20px}.headline{font-size:16px;margin:0 0 12px;color:#333}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:12px}
.kpis{display:flex;gap:12px;flex-wrap:wrap}.kpi{background:#f1f5f9;border-radius:6px;
padding:10px 14px;min-width:150px}.kpi b{display:block;font-size:22px}
table{border-collapse:collapse;font-size:13px;width:100%}th,td{padding:4px 8px;
border-bottom:1px solid #eee;text-align:left;vertical-align:top}th{background:#f6f6f6}
.note{font-size:12px;color:#666}.missing{font-size:14px;color:#555;background:#f6f6f6;
border-radius:6px;padding:14px}
.dq{font-size:13px}.dq a{color:#fff}
.issues{background:#fff4e5;color:#5c3b00;border-radius:6px;padding:8px 14px;margin-top:10px;
font-size:14px}.issues ul{margin:4px 0}
"""


STATIC_IMAGES = ("funnel", "process-map", "paths-sankey", "reengagement-curve", "channel-mix")


def find_chromium() -> str | None:
    """A Chrome or Chromium binary for static images (Debian: apt install chromium)."""
    return os.environ.get("BROWSER_PATH") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None)


def write_static_images(figures: dict[str, go.Figure], out: Path) -> list[Path]:
    """PNGs of the key charts for slide decks, via kaleido and a local Chromium.

    Returns [] when no Chromium is installed: kaleido would otherwise try to
    download one, and nothing here may use the network.
    """
    browser = find_chromium()
    if browser is None:
        return []
    previous = os.environ.get("BROWSER_PATH")
    os.environ["BROWSER_PATH"] = browser  # kaleido's browser lookup reads this
    try:
        paths = []
        (out / "images").mkdir(exist_ok=True)
        for name in STATIC_IMAGES:
            if name in figures:
                path = out / "images" / f"{name}.png"
                figures[name].write_image(path, width=1200, height=650, scale=1)
                paths.append(path)
        return paths
    finally:
        if previous is None:
            os.environ.pop("BROWSER_PATH", None)
        else:
            os.environ["BROWSER_PATH"] = previous


def write_report(con: duckdb.DuckDBPyConnection, reports_dir: Path,
                 run_name: str | None = None, static_images: bool = True) -> Path:
    """Write reports/<run>/index.html (+ CSV lists, PNGs) and refresh reports/latest/."""
    d = report_data(con)
    run_name = run_name or dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(reports_dir) / run_name
    out.mkdir(parents=True, exist_ok=True)
    d.dropped.to_csv(out / "dropped_accounts.csv", index=False)
    d.churn.to_csv(out / "churn_scores.csv", index=False)
    heads = headlines(d)
    builders = {
        "funnel": lambda: build_funnel_figure(d.funnel),
        "dropoff": lambda: build_dropoff_figure(d.funnel),
        "process-map": lambda: build_process_map_figure(d.stage_transitions, d.funnel),
        "activity-map": lambda: build_activity_map_figure(d.activity_transitions,
                                                          d.activity_stages),
        "paths-sankey": lambda: build_sankey_figure(d.variants),
        "linearity": lambda: build_linearity_figure(d.conformance),
        "cohorts": lambda: build_cohort_figure(d.cohorts),
        "segments": lambda: build_segment_figure(d.segments),
        "channel-mix": lambda: build_channel_mix_figure(d.channel_mix),
        "reengagement-curve": lambda: build_reengagement_curve_figure(d.curves),
        "gap-days": lambda: build_gap_figure(d.gaps),
        "lifecycle": lambda: build_lifecycle_figure(d.lifecycle),
        "gap-lift": lambda: build_lift_figure(d.lift),
        "resolution": lambda: build_quality_figure(d.resolution),
        "trend": lambda: build_trend_figure(d.history),
    }
    if d.model_run is not None and d.model_run.status == "trained":
        builders["model-quality"] = lambda: build_model_quality_figure(d.model_run)
    # A chart with nothing to show says why in a sentence, instead of an empty frame.
    nothing = {
        "funnel": (d.funnel.reached.sum() == 0, "No account has a staged touchpoint yet."),
        "dropoff": (d.funnel.dropped.sum() == 0, "No account has gone quiet before buying."),
        "process-map": (d.stage_transitions.empty,
                        "No account has moved from one stage to another yet."),
        "activity-map": (d.activity_transitions.empty,
                         "No account has two touchpoints in a row yet."),
        "paths-sankey": (d.variants.empty or (d.variants.length <= 1).all(),
                         "Every stage path is a single stage: no flow to draw yet."),
        "cohorts": ((d.cohorts.accounts >= MIN_COHORT).sum() == 0,
                    f"No monthly cohort has {MIN_COHORT} accounts yet, so no cohort "
                    "conversion rate is shown."),
        "segments": (len(d.segments) < 2, "Only one industry segment: nothing to compare."),
        "channel-mix": (d.channel_mix.empty, "No staged touchpoints yet."),
        "reengagement-curve": (d.curves.empty or d.gaps.empty,
                               "No engagement has ended yet, so nobody can have come back."),
        "gap-days": (d.gaps.empty, "No engagement has ended yet: no gaps to show."),
        "lifecycle": (d.lifecycle.empty, "No clients yet: no lifecycle to show."),
        "gap-lift": (d.lift.empty, "Too few ended engagements to compare what returning "
                                   "accounts did in the gap."),
        "resolution": (d.resolution.empty, "No touchpoints loaded yet."),
        "trend": (d.history is None or len(d.history) < 2,
                  "One as-of date so far: the trend starts with the next build at another "
                  "date (a scheduled run, or a backfill with --as-of)."),
    }
    # A chart that cannot be drawn is said where it would be; the rest of the report stays.
    figures, failed, said = {}, {}, {}
    for name, builder in builders.items():
        if name in nothing and bool(nothing[name][0]):
            said[name] = nothing[name][1]
            continue
        try:
            figures[name] = builder()
        except Exception as exc:  # noqa: BLE001
            failed[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    # Figure ids carry a prefix: a section and a chart must never share an id.
    div = {name: fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{name}",
                             config={"displaylogo": False, "responsive": True})
           for name, fig in figures.items()}
    div.update({name: f"<p class='note'>This chart could not be drawn ({html.escape(why)})."
                      "</p>" for name, why in failed.items()})
    div.update({name: f"<p class='missing'>{html.escape(why)}</p>" for name, why in said.items()})
    issues = [*run_issues(con), *((f"chart {name}", why) for name, why in failed.items())]
    last = d.loads.tail(1)
    quality_line = (
        f"Data quality: {int(last.rows_rejected.sum()):,} of {int(last.rows_read.sum()):,} "
        f"rows rejected in the last load"
        + (f"; {int((~d.tests.passed).sum())} of {len(d.tests)} data tests failed"
           + (f" ({int(((~d.tests.passed) & (d.tests.severity == 'error')).sum())} errors)"
              if ((~d.tests.passed) & (d.tests.severity == "error")).any() else "")
           if d.tests is not None else "; data tests not run")
        + ". <a href='#quality'>Details</a>" if len(last) else "")
    issues_html = ("<div class='issues'><b>Not in this report:</b><ul>" + "".join(
        f"<li>{html.escape(step)}: {html.escape(problem)}</li>" for step, problem in issues)
        + "</ul>Everything else below is complete.</div>") if issues else ""
    k = d.kpis
    deviations = (d.stage_transitions[d.stage_transitions.kind != "ladder"]
                  .sort_values("accounts", ascending=False).head(8))
    deviations = pd.DataFrame({
        "move": [f"{LABEL[a]} → {LABEL[b]}" for a, b in zip(deviations.from_stage,
                                                             deviations.to_stage, strict=True)],
        "kind": [str(k).replace("_", "-") for k in deviations.kind],
        "accounts": deviations.accounts, "times": deviations.transitions,
        "median time": [duration(h) for h in deviations.median_hours]})
    variants = d.variants.head(15)[["variant_rank", "variant", "cases", "coverage",
                                    "cumulative_coverage"]]
    timing = d.stage_timing[d.stage_timing.stage.isin(FUNNEL[:4])
                            & (d.stage_timing.accounts_entered > 0)][
        ["stage", "accounts_entered", "moved_on", "censored", "median_days", "p75_days",
         "p90_days", "moved_on_within_90d"]]
    churn_top = d.churn.head(20)[["account_id", "account_name", "churn_probability",
                                  "risk_band", "top_factors"]]
    dropped_top = d.dropped.head(15)[["account_id", "account_name", "industry",
                                      "dropped_at_stage", "last_touch_at", "days_silent"]]
    fmt_days = {c: (lambda v: duration(None if pd.isna(v) else v * 24))
                for c in ("median_days", "p75_days", "p90_days")}
    sections = [
        ("funnel", "Funnel and drop-offs",
         f'<div class="kpis"><div class="kpi"><b>{int(k.accounts):,}</b>accounts</div>'
         f'<div class="kpi"><b>{int(k.touchpoints):,}</b>touchpoints</div>'
         f'<div class="kpi"><b>{pct(k.resolved_share)}</b>tied to an account</div>'
         f'<div class="kpi"><b>{int(k.dropped_accounts):,}</b>dropped</div>'
         f'<div class="kpi"><b>{pct(k.re_engagement_rate)}</b>re-engagement rate'
         f'{"" if not _missing(k.re_engagement_rate) else " (no engagement ended yet)"}'
         f'</div></div>'
         f'<div class="grid">{div["funnel"]}{div["dropoff"]}</div>'
         f"<h3>Time to move on (Kaplan-Meier; journeys still open count as not yet)</h3>"
         f"{_table(timing, {**fmt_days, 'moved_on_within_90d': pct}, 'No account has entered a stage before client yet.')}"  # noqa: E501
         f"<h3>Dropped accounts to follow up</h3>"
         + (f"{_table(dropped_top)}<p class='note'>All {len(d.dropped):,} dropped accounts: "
            f"<a href='dropped_accounts.csv' download>dropped_accounts.csv</a></p>"
            if len(d.dropped) else "<p class='note'>No account has gone quiet before buying."
                                   "</p>")),
        ("map", "The process map", div["process-map"] + div["activity-map"]),
        ("paths", "Paths", div["paths-sankey"] + "<h3>Most common paths</h3>" + _table(
            variants, {"coverage": pct, "cumulative_coverage": pct})
         + (f"<p class='note'>The other {len(d.variants) - 15:,} paths cover "
            f"{pct(1 - variants.coverage.sum())} of accounts.</p>" if len(d.variants) > 15
            else "")),
        ("linearity", "How linear are journeys?", div["linearity"]
         + "<h3>Most common departures from the ladder</h3>"
         + _table(deviations, empty="No step back or skip between two stages.")),
        ("cohorts", "Conversion over time and by segment",
         f'<div class="grid">{div["cohorts"]}{div["segments"]}</div>'),
        ("channels", "Channel mix per stage", div["channel-mix"]),
        ("reengagement", "Between engagements: who comes back",
         f'<div class="grid">{div["reengagement-curve"]}{div["gap-days"]}</div>'
         f'{div["lifecycle"]}{div["gap-lift"]}'),
        ("churn", "Churn risk", (div.get("model-quality", "")) + "<h3>Clients most at risk</h3>"
         + _table(churn_top, {"churn_probability": pct}, "No clients to score.")
         + ("<p class='note'>All scores: <a href='churn_scores.csv' download>"
            "churn_scores.csv</a></p>" if len(d.churn) else "")),
        ("trend", "Over time", div["trend"]),
        ("quality", "Data quality", div["resolution"] + "<h3>Loads</h3>" + _table(
            d.loads[["load_id", "finished_at", "files_seen", "files_read", "rows_read",
                     "rows_loaded", "rows_duplicate", "rows_rejected"]])
         + "<h3>Rejected rows by reason</h3>" + _table(d.rejects, empty="No row rejected.")),
    ]
    nav = "".join(f'<a href="#{sid}">{html.escape(title)}</a>' for sid, title, _ in sections)
    body = "".join(
        f'<section id="{sid}"><h2>{html.escape(title)}</h2>'
        f'<p class="headline">{html.escape(heads[sid])}</p>{content}</section>'
        for sid, title, content in sections)
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Customer journeys as of {k.as_of:%Y-%m-%d}</title><style>{CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"<header><h1>Customer journeys</h1><p>As of {k.as_of:%d %B %Y} · report {run_name}"
        f"</p><p class='dq'>{quality_line}</p>{issues_html}</header><nav>{nav}</nav>"
        f"<main>{body}</main></body></html>")
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    if static_images:
        write_static_images(figures, out)
    latest = Path(reports_dir) / "latest"
    if latest.exists():
        shutil.rmtree(latest)
    shutil.copytree(out, latest)
    return index
