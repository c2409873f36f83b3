"""Pure figure builders: a frame from a mart in, a Plotly figure out.

No builder reads the warehouse or writes a file. Every stage axis runs in ladder
order; every bar carries its value; layouts leave the width to the container
(`autosize`), so a chart fits a half-width cell at any screen width.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from journey_mining.reports.format import FUNNEL, LABEL, MIN_COHORT, duration, pct
from journey_mining.stages import LADDER, STAGE_ORDER

__all__ = [
    "build_activity_map_figure", "build_channel_mix_figure", "build_cohort_figure",
    "build_dropoff_figure", "build_funnel_figure", "build_gap_figure",
    "build_lifecycle_figure", "build_lift_figure", "build_linearity_figure",
    "build_model_quality_figure",
    "build_reliability_figure", "build_process_map_figure", "build_quality_figure",
    "build_reengagement_curve_figure", "build_sankey_figure", "build_segment_figure",
    "build_trend_figure", "build_drivers_figure", "build_attribution_figure",
    "build_representatives_figure",
]

CHANNEL_COLOURS = {"web": "#4C78A8", "email": "#F58518", "crm": "#54A24B"}
MARKETING_COLOURS = {"organic search": "#4C78A8", "paid search": "#9ECAE9",
                     "organic social": "#54A24B", "paid social": "#88D27A",
                     "email": "#F58518", "referral": "#B279A2", "display": "#FF9DA6",
                     "events/offline": "#9D755D", "direct": "#BAB0AC",
                     "sales outreach": "#E45756", "account management": "#72B7B2",
                     "other": "#D3D3D3"}
BAND_COLOURS = {"high": "#E45756", "medium": "#F2B701", "low": "#72B7B2"}
SYSTEM_WORDS = {"web": "website", "email": "email", "crm": "CRM"}
UNMATCHED = "other (no channel rule matched)"


def driver_words(driver: str, kind: str) -> str:
    """A conversion driver as a reader says it: 'webinar attended (website)', 'paid
    search (channel)', 'decider (role)' (one definition for chart, table and headline)."""
    if kind == "touchpoint":
        return touchpoint_words(driver)
    return f"{driver.split(':', 1)[1].replace('_', ' ')} ({kind})"


def channel_words(channel: str) -> str:
    """A marketing channel as the report names it: 'other' says it is what no rule
    matched, not a channel of its own."""
    return UNMATCHED if channel == "other" else channel
# A ratio axis (lift, odds ratio) on a log scale, labelled "x2" at 1-2-5 steps only: the
# default minor labels repeat ("2 5 2 5") and read as values.
_RATIOS = [m * 10.0 ** e for e in range(-3, 4) for m in (1, 2, 5)]
RATIO_AXIS = dict(type="log", tickvals=_RATIOS, ticktext=[f"x{v:g}" for v in _RATIOS])


def touchpoint_words(touchpoint: str) -> str:
    """'crm:referral' as a reader says it: 'referral (CRM)'."""
    system, _, activity = touchpoint.partition(":")
    return f"{activity.replace('_', ' ')} ({SYSTEM_WORDS.get(system, system)})"


def count_axis(largest: float, **more) -> dict:
    """An axis of counts: whole-number ticks only (no 0.5 accounts, no 2, 2, 3, 3 from
    rounding them), about five of them, thousands separated."""
    step = 1
    for candidate in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000,
                      20000, 50000, 100000):
        step = candidate
        if max(largest, 1) / candidate <= 6:
            break
    return dict(tickformat=",d", dtick=step, tick0=0, **more)
LAYOUT = dict(template="plotly_white", height=420, autosize=True,
              margin=dict(l=60, r=30, t=60, b=50), font=dict(size=13),
              legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))

def build_funnel_figure(funnel: pd.DataFrame) -> go.Figure:
    """Accounts reaching each funnel stage, with the share moving on from the previous."""
    part = funnel[funnel.stage.isin(FUNNEL)]
    fig = go.Figure(go.Funnel(
        y=[LABEL[s] for s in part.stage], x=part.reached.tolist(),
        texttemplate=["%{value:,}"] + ["%{value:,} (%{percentPrevious:.1%})"] * (len(part) - 1),
        marker=dict(color="#4C78A8"),
        hovertemplate="%{y}: %{x} accounts reached it or went further<extra></extra>"))
    fig.update_layout(**LAYOUT, title="Accounts reaching each stage or further; in brackets "
                                      "the share of the stage before that got there")
    return fig


def build_dropoff_figure(funnel: pd.DataFrame) -> go.Figure:
    """Accounts that went quiet at each stage before client."""
    part = funnel[funnel.stage.isin(FUNNEL[:4])]
    fig = go.Figure(go.Bar(
        x=[LABEL[s] for s in part.stage], y=part.dropped.tolist(), marker_color="#E45756",
        text=part.dropped.tolist(), textposition="outside",
        hovertemplate="%{x}: %{y} accounts went quiet<extra></extra>"))
    fig.update_layout(**LAYOUT, title="Where accounts went quiet (dropped)",
                      yaxis=count_axis(part.dropped.max() * 1.1, title="accounts"))
    return fig


def _arc(x0: float, x1: float, bend: float, n: int = 30):
    """Points of a quadratic curve from (x0, 0) to (x1, 0) bulging to `bend`."""
    t = np.linspace(0, 1, n)
    xm = (x0 + x1) / 2
    xs = (1 - t) ** 2 * x0 + 2 * (1 - t) * t * xm + t ** 2 * x1
    ys = 2 * (1 - t) * t * bend
    return xs, ys


def build_process_map_figure(transitions: pd.DataFrame, occupancy: pd.DataFrame,
                             labelled: int = 8) -> go.Figure:
    """Stage DFG in ladder order: forward moves arc above, back-steps below; width = volume.

    Nodes are sized by the accounts that were in each inferred stage (`stage_occupancy`);
    stage names sit on the axis under the nodes, so no label covers a node. The
    `labelled` busiest moves carry 'moves · median time'; the others say it on hover.
    """
    fig = go.Figure()
    moves = transitions[transitions.from_stage != transitions.to_stage]
    span = max((abs(STAGE_ORDER[a] - STAGE_ORDER[b]) for a, b in
                zip(moves.from_stage, moves.to_stage, strict=True)), default=1)
    reach = (0.5 + 0.45 * (span - 1)) / 2 + 0.25  # the highest arc's peak, and room
    top = max(moves.transitions.max(), 1) if len(moves) else 1
    # Every move off the ladder is labelled (they are what the map is for), and the
    # busiest moves up it.
    off_ladder = moves[moves.kind.isin(("skip", "back_step", "return", "cancellation"))]
    with_label = set(moves[moves.kind == "ladder"].nlargest(labelled, "transitions").index) | set(
        off_ladder.nlargest(2 * labelled, "transitions").index)
    colours = {"ladder": "#4C78A8", "skip": "#9D755D", "back_step": "#E45756",
               "return": "#54A24B", "cancellation": "#79706E"}
    for r in moves.sort_values("transitions").itertuples():
        x0, x1 = STAGE_ORDER[r.from_stage], STAGE_ORDER[r.to_stage]
        forward = x1 > x0
        # Longer moves bulge further, so labels of different spans sit at different heights.
        bend = (0.5 + 0.45 * (abs(x1 - x0) - 1)) * (1 if forward else -1)
        xs, ys = _arc(x0, x1, bend)
        colour = colours.get(r.kind, "#999")
        text = (f"{LABEL[r.from_stage]} → {LABEL[r.to_stage]}: {r.transitions:,} moves by "
                f"{r.accounts:,} accounts, median {duration(r.median_hours)}")
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", line=dict(width=1 + 10 * r.transitions / top,
                                                color=colour),
            opacity=0.7, hoverinfo="text", hovertext=text, showlegend=False))
        fig.add_annotation(x=xs[-1], y=ys[-1], ax=xs[-4], ay=ys[-4], xref="x", yref="y",
                           axref="x", ayref="y", showarrow=True, arrowhead=2, arrowsize=1.2,
                           arrowcolor=colour, text="")
        if r.Index in with_label:
            fig.add_annotation(x=xs[15], y=ys[15], showarrow=False,
                               text=f"{r.transitions:,} · {duration(r.median_hours)}",
                               font=dict(size=11, color=colour), bgcolor="rgba(255,255,255,0.85)",
                               hovertext=text)
    entered = dict(zip(occupancy.stage, occupancy.accounts_ever_in, strict=True))
    biggest = max(max(entered.values(), default=0), 1)
    fig.add_trace(go.Scatter(
        x=[STAGE_ORDER[s] for s in LADDER], y=[0] * len(LADDER), mode="markers",
        marker=dict(size=[16 + 26 * math.sqrt(entered.get(s, 0) / biggest) for s in LADDER],
                    color="#1f3a5f", line=dict(color="#fff", width=2)),
        hovertext=[f"{LABEL[s]}: {entered.get(s, 0):,} accounts were in this stage at some "
                   "point"
                   for s in LADDER], hoverinfo="text", showlegend=False, name="stages"))
    for name, colour in (("up the ladder", "#4C78A8"), ("skips a stage", "#9D755D"),
                         ("steps back", "#E45756"), ("returns after an engagement", "#54A24B"),
                         ("cancellation", "#79706E")):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name,
                                 line=dict(color=colour, width=4)))
    fig.update_layout(**{**LAYOUT, "height": 600, "margin": dict(l=20, r=20, t=70, b=70)},
                      title="How journeys really move between stages: moves · median time; "
                            "under each stage, the accounts that were in it",
                      xaxis=dict(range=[0.4, 8.6], tickvals=[STAGE_ORDER[s] for s in LADDER],
                                 ticktext=[f"{LABEL[s].replace(' ', '<br>')}<br>"
                                           f"<b>{entered.get(s, 0):,}</b>" for s in LADDER],
                                 showgrid=False, zeroline=False, ticks="", side="bottom"),
                      yaxis=dict(visible=False, range=[-reach, reach]))
    return fig


def _activity_words(activity: str) -> str:
    return activity.replace("_", " ")


def _free_spot(start, bend, end, taken) -> tuple[float, float]:
    """A point near the line drawn through start, bend and end for a count, the first of a
    few along it whose box (about 0.2 x 0.12 axis units) meets no box in `taken` (x, y,
    half width, half height); the bend if none. (A quadratic through the three points:
    its control point is 2 bend - mean.)"""
    control = tuple(2 * b - (a + c) / 2 for a, b, c in zip(start, bend, end, strict=True))

    def at(t):
        return tuple((1 - t) ** 2 * a + 2 * (1 - t) * t * b + t ** 2 * c
                     for a, b, c in zip(start, control, end, strict=True))

    for t in (0.5, 0.38, 0.62, 0.28, 0.72, 0.2, 0.8):
        x, y = at(t)
        if all(abs(x - tx) > 0.2 + w or abs(y - ty) > 0.12 + h for tx, ty, w, h in taken):
            return x, y
    return at(0.5)


def build_activity_map_figure(transitions: pd.DataFrame, activities: pd.DataFrame,
                              top_ns: tuple[int, ...] = (10, 25, 50),
                              labelled: int = 25) -> go.Figure:
    """Touchpoint-level map: activities by stage column; a slider shows the top-N moves,
    each with its count (up to `labelled` moves; more would cover each other)."""
    stage_of = dict(zip(activities.activity, activities.stage_order.fillna(0), strict=True))
    freq = dict(zip(activities.activity, activities.touchpoints, strict=True))
    pos = {}
    for order in sorted(set(stage_of.values())):
        column = sorted((a for a in stage_of if stage_of[a] == order), key=lambda a: -freq[a])
        for i, activity in enumerate(column):
            pos[activity] = (order, (len(column) - 1) / 2 - i)
    edges = transitions.sort_values(["transitions", "from_activity", "to_activity"],
                                    ascending=[False, True, True])
    # Only moves between two placed activities, and none from an activity to itself (a
    # repeat has no line to draw): the top N are N drawn lines.
    edges = edges[edges.from_activity.isin(pos) & edges.to_activity.isin(pos)
                  & (edges.from_activity != edges.to_activity)].reset_index(drop=True)
    top = max(edges.transitions.max(), 1) if len(edges) else 1
    fig = go.Figure()
    labels = []
    # Counts go where no count and no activity name is (names sit just above their node).
    taken = [box for a, (x, y) in pos.items()
             for box in ((x, y, 0.1, 0.12),                                     # the node
                         (x, y + 0.28, 0.045 * len(_activity_words(a)), 0.1))]  # its name
    for r in edges.itertuples():
        (x0, y0), (x1, y1) = pos[r.from_activity], pos[r.to_activity]
        # A move and its reverse bend to opposite sides, so neither line nor count hides
        # the other.
        side = 1 if (x1, y1) > (x0, y0) else -1
        mx, my = (x0 + x1) / 2 + 0.15 * side, (y0 + y1) / 2 + 0.3 * side
        text = (f"{_activity_words(r.from_activity)} → {_activity_words(r.to_activity)}: "
                f"{r.transitions:,} moves ({r.accounts:,} accounts), median "
                f"{duration(r.median_hours)}")
        fig.add_trace(go.Scatter(
            x=[x0, mx, x1], y=[y0, my, y1],
            mode="lines", line=dict(width=1 + 8 * r.transitions / top, shape="spline",
                                    color="rgba(76,120,168,0.5)"),
            hoverinfo="text", showlegend=False, visible=r.Index < top_ns[0], hovertext=text))
        lx, ly = _free_spot((x0, y0), (mx, my), (x1, y1), taken)
        taken.append((lx, ly, 0.2, 0.12))
        labels.append([
            # the arrowhead at the move's end, then its count on the line, where no other
            # count or stage name is
            dict(x=x1, y=y1, ax=(mx + 3 * x1) / 4, ay=(my + 3 * y1) / 4, xref="x", yref="y",
                 axref="x", ayref="y", showarrow=True, arrowhead=2, arrowsize=1.1,
                 standoff=9, arrowcolor="rgba(31,58,95,0.7)", text=""),
            dict(x=lx, y=ly, text=f"{r.transitions:,}", showarrow=False,
                 font=dict(size=10, color="#1f3a5f"), bgcolor="rgba(255,255,255,0.8)",
                 hovertext=text)])
    names = list(pos)
    fig.add_trace(go.Scatter(
        x=[pos[a][0] for a in names], y=[pos[a][1] for a in names], mode="markers+text",
        text=[_activity_words(a) for a in names], textposition="top center",
        showlegend=False,
        marker=dict(size=[10 + 25 * math.sqrt(freq[a] / max(freq.values())) for a in names],
                    color="#F58518"),
        hovertext=[f"{_activity_words(a)}: {freq[a]:,} touchpoints" for a in names],
        hoverinfo="text"))
    n_edges = len(edges)
    shown = sorted({min(n, n_edges) for n in top_ns}) or [0]
    def marks(n: int) -> list[dict]:  # arrowheads always, counts up to `labelled` moves
        return [a for pair in labels[:n] for a in (pair if n <= labelled else pair[:1])]

    steps = [dict(method="update",
                  args=[{"visible": [i < n for i in range(n_edges)] + [True]},
                        {"annotations": marks(n)}],
                  label=f"top {n}") for n in shown]
    fig.update_layout(**{**LAYOUT, "height": 560},
                      title="Touchpoint map: the most frequent moves between activities, "
                            "with their counts",
                      annotations=marks(shown[0]),
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
    # Each node in the column of its step, stages in ladder order down the column: plotly
    # would otherwise push a node with no way out (a path's end) to the far right.
    depth = max((i for i, _ in index), default=0)
    keys = sorted(index, key=index.get)
    xs = [0.001 + 0.998 * i / max(depth, 1) for i, _ in keys]
    ys = _stacked_centres(keys, links, index)
    fig = go.Figure(go.Sankey(
        arrangement="fixed",
        node=dict(label=nodes, pad=12, thickness=14, x=xs, y=ys),
        link=dict(source=[s for s, _ in links], target=[t for _, t in links],
                  value=list(links.values()))))
    fig.update_layout(**{**LAYOUT, "height": 520},
                      title=f"The {len(top)} most common paths ({pct(top.coverage.sum())} of "
                            f"accounts); the other {pct(tail)} take rarer paths")
    return fig


def _stacked_centres(keys: list, links: dict, index: dict) -> list[float]:
    """Each Sankey node's vertical centre (0 top, 1 bottom): the nodes of one step stacked
    in ladder order, each as tall as the accounts through it, the tallest step filling the
    height: fixed positions that keep a node in its step's column without overlapping."""
    out, into = {}, {}
    for (source, target), value in links.items():
        out[source] = out.get(source, 0) + value
        into[target] = into.get(target, 0) + value
    # plotly draws a node as tall as the larger of what flows in and out
    size = {key: max(out.get(index[key], 0), into.get(index[key], 0)) for key in keys}
    columns: dict[int, list] = {}
    for key in sorted(keys, key=lambda k: (k[0], LADDER.index(k[1]))):
        columns.setdefault(key[0], []).append(key)
    gap = 0.04
    tallest = max((sum(size[k] for k in column) for column in columns.values()), default=1)
    room = 1 - gap * (max(len(c) for c in columns.values()) - 1) if columns else 1
    centre = {}
    for column in columns.values():
        top = 0.0
        for key in column:
            height = room * size[key] / max(tallest, 1e-9)
            centre[key] = min(max(top + height / 2, 0.001), 0.999)
            top += height + gap
    return [centre[k] for k in keys]


def build_linearity_figure(conformance: pd.Series) -> go.Figure:
    """Share of journeys with skips, back-steps, loops and returns."""
    labels = ["follow the ladder", "skip a stage", "step back", "revisit a stage",
              "return after an engagement"]
    values = [conformance.linear_share, conformance.share_with_skips,
              conformance.share_with_back_steps, conformance.share_with_loops,
              conformance.share_reengaged]
    fig = go.Figure(go.Bar(x=labels, y=values, text=[pct(v) for v in values],
                           textposition="outside", marker_color="#72B7B2"))
    fig.update_layout(**LAYOUT, title="Share of all accounts whose journey has each kind "
                                      "of move (one journey can have several)",
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
    """Share becoming a client by industry; industries under MIN_COHORT accounts left out."""
    segments = segments[segments.accounts >= MIN_COHORT]
    fig = go.Figure(go.Bar(x=segments.industry, y=segments.client,
                           text=[pct(v) for v in segments.client], textposition="outside",
                           customdata=segments.accounts, marker_color="#54A24B",
                           hovertemplate="%{x}: %{y:.0%} of %{customdata} accounts became "
                                         "clients<extra></extra>"))
    fig.update_layout(**LAYOUT, title="Share becoming a client, by industry",
                      yaxis=dict(tickformat=".0%"))
    return fig


def build_channel_mix_figure(mix: pd.DataFrame) -> go.Figure:
    """Share of the touchpoints made while in each stage, by marketing channel (the
    `channel_mix` mart: the stage the account was in, not the one a touchpoint signals)."""
    order = [LABEL[s] for s in LADDER if s in set(mix.stage)]
    fig = go.Figure()
    totals = mix.groupby("marketing_channel").touchpoints.sum().sort_values(ascending=False)
    for channel in totals.index:
        part = mix[mix.marketing_channel == channel]
        fig.add_trace(go.Bar(x=[LABEL[s] for s in part.stage], y=part.share,
                             name=channel_words(channel),
                             marker_color=MARKETING_COLOURS.get(channel),
                             text=[f"{v:.0%}" if v >= 0.08 else "" for v in part.share],
                             textposition="inside",
                             customdata=np.stack([part.touchpoints, part.accounts,
                                                  part.accounts_in_stage], axis=1),
                             hovertemplate=channel_words(channel)
                                           + " while in %{x}: %{y:.0%} of the "
                                           "touchpoints (%{customdata[0]:,}), from "
                                           "%{customdata[1]:,} of %{customdata[2]:,} "
                                           "accounts<extra></extra>"))
    fig.update_layout(**LAYOUT, barmode="stack", yaxis=dict(tickformat=".0%"),
                      xaxis=dict(categoryorder="array", categoryarray=order),
                      title="Which channels accounts use while in each stage (share of "
                            "their touchpoints)")
    return fig


def build_reengagement_curve_figure(curves: pd.DataFrame, segment_type: str = "size_band",
                                    purchases: bool = False) -> go.Figure:
    """Kaplan-Meier share back for a new engagement by days since the last ended (for a
    purchase log: share who bought again by days since the last purchase)."""
    fig = go.Figure()
    for (kind, segment), part in curves.groupby(["segment_type", "segment"], sort=False):
        if kind not in ("all", segment_type):
            continue
        xs = [0, *part.time_days.tolist()]
        ys = [0, *part.returned_share.tolist()]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", line=dict(shape="hv", width=4 if kind == "all" else 2),
            name="all accounts" if kind == "all" else f"{segment} employees"))
    title, axis = (("Share who bought again, by days since the last purchase (Kaplan-Meier)",
                    "days since the last purchase") if purchases else
                   ("Share back for a new engagement, by days since the last one ended "
                    "(Kaplan-Meier)", "days since the engagement ended"))
    fig.update_layout(**LAYOUT, title=title, xaxis_title=axis,
                      yaxis=dict(tickformat=".0%"))
    return fig


def build_gap_figure(gaps: pd.DataFrame) -> go.Figure:
    """Histogram of days between engagements for accounts that came back."""
    back = gaps[gaps.returned]
    counts, _ = np.histogram(back.gap_days.dropna(), bins=20) if len(back) else ([0], None)
    fig = go.Figure(go.Histogram(x=back.gap_days, nbinsx=20, marker_color="#4C78A8",
                                 hovertemplate="%{x} days: %{y} returns<extra></extra>"))
    fig.update_layout(**LAYOUT, title="Time between engagements, for accounts that came back",
                      xaxis_title="days", yaxis=count_axis(max(counts), title="returns"))
    return fig


def build_lifecycle_figure(lifecycle: pd.DataFrame) -> go.Figure:
    """Active accounts per month by status; dormant drawn below zero."""
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
    fig.update_layout(**LAYOUT, barmode="relative",
                      yaxis=count_axis(lifecycle.accounts.max() if len(lifecycle) else 1,
                                       title="accounts"),
                      title="Active accounts per month: new, returning, resurrecting; "
                            "dormant below zero")
    return fig


def build_lift_figure(lift: pd.DataFrame) -> go.Figure:
    """Lift of each gap touchpoint as a point with its 95 % interval around 1 (no effect).

    Activities that make up the return itself (the sales steps and the start of the new
    engagement: `defines_return`) are left out: they are the outcome, not a lever.
    """
    if "defines_return" in lift:
        lift = lift[~lift.defines_return.astype(bool)]
    part = lift.sort_values("lift")
    colours = ["#54A24B" if s and v > 1 else "#E45756" if s else "#8c8c8c"
               for s, v in zip(part.significant, part.lift, strict=True)]
    fig = go.Figure(go.Scatter(
        y=[touchpoint_words(t) for t in part.touchpoint], x=part.lift, mode="markers",
        marker=dict(color=colours, size=10),
        error_x=dict(type="data", symmetric=False, array=part.lift_ci_high - part.lift,
                     arrayminus=part.lift - part.lift_ci_low, color="#8c8c8c"),
        customdata=np.stack([part.gaps_with, part.return_rate_with, part.lift_ci_low,
                             part.lift_ci_high], axis=-1),
        hovertemplate="%{y}: x%{x:.2f} (95% interval %{customdata[2]:.2f} to "
                      "%{customdata[3]:.2f}); seen in %{customdata[0]} gaps, "
                      "%{customdata[1]:.0%} came back<extra></extra>", showlegend=False))
    fig.add_vline(x=1, line_dash="dot", annotation_text="no difference",
                  annotation_position="top")
    fig.update_layout(**{**LAYOUT, "height": max(320, 60 + 26 * len(part))},
                      xaxis=RATIO_AXIS,
                      title="What returning accounts did in the gap: lift with 95 % interval "
                            "(green: back clearly more often with it, red: clearly less "
                            "often, grey: no clear difference)",
                      xaxis_title="times as often back with it as without (log scale)",
                      yaxis=dict(automargin=True))
    return fig


def build_reliability_figure(run: pd.Series) -> go.Figure:
    """Backtest: predicted churn against what happened, by tenth of the predictions. On
    the diagonal the probabilities mean what they say."""
    import json

    points = pd.DataFrame(json.loads(run.reliability))
    fig = go.Figure([
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#BAB0AC"),
                   name="calibrated", hoverinfo="skip"),
        go.Scatter(x=points.predicted, y=points.observed, mode="lines+markers",
                   marker=dict(size=8, color="#4C78A8"), name="this model",
                   customdata=points.rows,
                   hovertemplate="predicted %{x:.0%}, observed %{y:.0%} "
                                 "(%{customdata} backtest rows)<extra></extra>")])
    fig.update_layout(**LAYOUT, xaxis=dict(title="predicted churn", tickformat=".0%",
                                           range=[0, 1]),
                      yaxis=dict(title="observed churn", tickformat=".0%", range=[0, 1]),
                      title=f"Backtest: predicted vs observed churn (Brier {run.brier:.3f})")
    return fig


def build_model_quality_figure(run: pd.Series) -> go.Figure:
    """Backtest ROC and PR AUC of the churn model against recency alone."""
    metrics = ["ROC AUC", "PR AUC"]
    fig = go.Figure([
        go.Bar(name="churn model", x=metrics, y=[run.roc_auc, run.pr_auc],
               text=[f"{run.roc_auc:.2f}", f"{run.pr_auc:.2f}"], textposition="outside",
               marker_color="#4C78A8"),
        go.Bar(name="recency only", x=metrics, y=[run.recency_roc_auc, run.recency_pr_auc],
               text=[f"{run.recency_roc_auc:.2f}", f"{run.recency_pr_auc:.2f}"],
               textposition="outside", marker_color="#BAB0AC")])
    fig.update_layout(**LAYOUT, barmode="group", yaxis=dict(range=[0, 1]),
                      title="Backtest: the model vs a recency-only baseline (higher is better)")
    return fig


SOURCE_WORDS = {"web_events": "website", "email_events": "email platform",
                "crm_activities": "CRM"}
METHOD_WORDS = {"crm_record": "recorded in the CRM", "contact_email": "email of a CRM contact",
                "email_domain": "email domain of an account",
                "form_fill": "visitor identified by a form fill",
                "unresolved": "not tied to an account"}


def build_quality_figure(resolution: pd.DataFrame) -> go.Figure:
    """Share of touchpoints per source by stitching method."""
    fig = go.Figure()
    for method, part in resolution.groupby("method"):
        name = METHOD_WORDS.get(method, str(method).replace("_", " "))
        fig.add_trace(go.Bar(x=[SOURCE_WORDS.get(s, s) for s in part.source],
                             y=part.share_of_source, name=name,
                             customdata=part.touchpoints, textposition="inside",
                             text=[f"{v:.0%}" if v >= 0.05 else "" for v in part.share_of_source],
                             hovertemplate="%{x}: %{y:.0%} (%{customdata:,} touchpoints) "
                                           + name + "<extra></extra>"))
    fig.update_layout(**LAYOUT, barmode="stack", yaxis=dict(tickformat=".0%"),
                      title="How touchpoints were tied to accounts, by source")
    return fig


def build_drivers_figure(drivers: pd.DataFrame, per_step: int = 4) -> go.Figure:
    """Odds ratios with 95 % intervals (log scale, 1 = no difference) of the drivers that
    clearly go with moving on (or not), a few per step, steps in funnel order."""
    shown = (drivers[drivers.significant]
             .assign(strength=lambda f: np.abs(np.log(f.odds_ratio)))
             .sort_values("strength", ascending=False).groupby("step", sort=False)
             .head(per_step))
    order = [f"{a} -> {b}" for a, b in zip(FUNNEL[:-1], FUNNEL[1:], strict=True)]
    shown = shown.assign(_o=shown.step.map({s: i for i, s in enumerate(order)})).sort_values(
        ["_o", "odds_ratio"], ascending=[False, True])
    labels = [f"{LABEL[a]} → {LABEL[b]}: "
              + driver_words(d, k)
              for a, b, d, k in zip(shown.from_stage, shown.to_stage, shown.driver, shown.kind,
                                    strict=True)]
    fig = go.Figure(go.Scatter(
        x=shown.odds_ratio, y=labels, mode="markers",
        marker=dict(size=10, color=["#54A24B" if v > 1 else "#E45756"
                                    for v in shown.odds_ratio]),
        error_x=dict(type="data", symmetric=False, array=shown.ci_high - shown.odds_ratio,
                     arrayminus=shown.odds_ratio - shown.ci_low, color="#8c8c8c"),
        customdata=np.stack([shown.conversion_with, shown.conversion_without,
                             shown.accounts_with], axis=-1),
        hovertemplate="%{y}: odds x%{x:.1f}; %{customdata[0]:.0%} moved on with it "
                      "(%{customdata[2]} accounts), %{customdata[1]:.0%} without"
                      "<extra></extra>", showlegend=False))
    fig.add_vline(x=1, line_dash="dot")
    fig.update_layout(**{**LAYOUT, "height": max(320, 80 + 28 * len(shown))},
                      xaxis=RATIO_AXIS, yaxis=dict(automargin=True),
                      title="What goes with moving on: odds ratio and 95 % interval "
                            "(controlled for time in stage)",
                      xaxis_title="times the odds of moving on, with vs without (log scale)")
    return fig


ATTRIBUTION_MODELS = {"first_touch": "first touch", "last_touch": "last touch",
                      "linear": "linear", "position_based": "position-based",
                      "time_decay": "time decay", "markov_1": "Markov (data-driven)",
                      "markov_2": "Markov, 2nd order"}
DIMENSION_WORDS = {"marketing_channel": "marketing channel", "source_medium": "source / medium",
                   "channel": "recording system", "campaign": "campaign",
                   "activity": "touchpoint"}


def build_attribution_figure(attribution: pd.DataFrame, goal: str = "client",
                             dimension: str = "marketing_channel") -> go.Figure:
    """Credit share per value under each model, with 95 % bootstrap intervals; values by
    the data-driven share, the pooled "other" last."""
    part = attribution[(attribution.goal == goal) & (attribution.dimension == dimension)]
    markov = part[part.model == "markov_1"].set_index("value").share
    order = sorted(part.value.unique(), key=lambda v: (v == "other", -markov.get(v, 0.0), v))
    fig = go.Figure()
    for model, label in ATTRIBUTION_MODELS.items():
        rows = part[part.model == model].set_index("value").reindex(order).dropna(
            subset=["share"]).reset_index()
        if rows.empty:
            continue
        fig.add_trace(go.Bar(
            x=rows.value, y=rows.share, name=label,
            error_y=dict(type="data", symmetric=False, array=rows.ci_high - rows.share,
                         arrayminus=rows.share - rows.ci_low),
            hovertemplate=label + " · %{x}: %{y:.0%} of the credit<extra></extra>"))
    fig.update_layout(**LAYOUT, barmode="group", yaxis=dict(tickformat=".0%"),
                      xaxis=dict(categoryorder="array", categoryarray=order),
                      title=f"Credit for reaching {LABEL.get(goal, goal)}, by "
                            f"{DIMENSION_WORDS.get(dimension, dimension)} and model (95 % "
                            "bootstrap interval)")
    return fig


def build_representatives_figure(representatives: pd.DataFrame, level: str = "stage"
                                 ) -> go.Figure:
    """Accounts each representative journey stands for, split into common paths and the
    long tail, with its conversion to client."""
    part = representatives[representatives.level == level].sort_values("accounts")
    labels = [f"#{r}: {_short(p)}" for r, p in zip(part.representative, part.medoid_path,
                                                    strict=True)]
    fig = go.Figure([
        go.Bar(y=labels, x=part.accounts - part.tail_accounts, orientation="h",
               name="on a top-10 path", marker_color="#4C78A8"),
        go.Bar(y=labels, x=part.tail_accounts, orientation="h", name="in the long tail",
               marker_color="#9D755D",
               text=[f"{pct(c)} became clients" for c in part.conversion],
               textposition="outside")])
    fig.update_layout(**{**LAYOUT, "height": max(320, 90 + 45 * len(part))},
                      barmode="stack", yaxis=dict(automargin=True),
                      xaxis=count_axis(part.accounts.max(),
                                       title="accounts with this path or a similar one",
                                       range=[0, 1.45 * max(part.accounts.max(), 1)]),
                      title=f"Representative {level} journeys: who each one stands for")
    return fig


def _short(path: str, steps: int = 6) -> str:
    """A long path shortened for a label: first steps, then how many more."""
    parts = path.split(" > ")
    text = " › ".join(p.replace("_", " ") for p in parts[:steps])
    return text + (f" … (+{len(parts) - steps})" if len(parts) > steps else "")
