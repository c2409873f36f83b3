"""The one writer: a self-contained `index.html` (plotly.js embedded once, no CDN,
works offline), CSV lists beside it, and PNGs of the key charts for slide decks.

Which charts there are, and in which section each stands, is declared once in
`charts.CHARTS`; the sections, in page order, are `SECTIONS` here. Each section
places the charts registered for it, so a chart is never placed by name."""

from __future__ import annotations

import datetime as dt
import html
import os
import shutil
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from journey_mining.reports import charts as chart_registry
from journey_mining.reports.charts import STATIC_IMAGES, TOP_PATHS, Chart, static_images
from journey_mining.reports.data import ReportData, report_data
from journey_mining.reports.format import FUNNEL, LABEL, duration, missing, pct
from journey_mining.reports.headlines import headlines
from journey_mining.warehouse import run_issues

__all__ = ["GLOSSARY", "NOT_IN_THIS_RUN", "SECTIONS", "STATIC_IMAGES", "TOP_PATHS", "Drawn",
           "Section", "drawn_charts", "find_chromium", "from_absent_table", "spreadsheet_safe",
           "write_csv", "write_report", "write_static_images"]


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
header h1{margin:0;font-size:24px}header p{margin:4px 0 0;opacity:.9}
nav{padding:8px 32px;background:#fff;border-bottom:1px solid #ddd;position:sticky;top:0;
z-index:10}nav a{margin-right:14px;color:#1f3a5f;text-decoration:none;font-size:14px}
main{max-width:1400px;margin:0 auto;padding:8px 24px 48px}section{background:#fff;
border:1px solid #e4e4e4;border-radius:8px;padding:16px 20px;margin:18px 0}
h2{margin:0 0 6px;font-size:20px}.headline{font-size:16px;margin:0 0 12px;color:#333}
.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:12px}
.grid>*,.chart{min-width:0}
@media (max-width:1100px){.grid{grid-template-columns:minmax(0,1fr)}}
.kpis{display:flex;gap:12px;flex-wrap:wrap}.kpi{background:#f1f5f9;border-radius:6px;
padding:10px 14px;min-width:150px;flex:1}.kpi b{display:block;font-size:22px}
.questions{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:12px}
@media (max-width:900px){.questions{grid-template-columns:minmax(0,1fr)}}
.question{background:#f1f5f9;border-radius:6px;padding:12px 16px}
.question h3{margin:0 0 6px;font-size:15px;color:#1f3a5f}.question b{font-size:26px}
.question p{margin:6px 0 0;font-size:14px}
table{border-collapse:collapse;font-size:13px;width:100%}th,td{padding:4px 8px;
border-bottom:1px solid #eee;text-align:left;vertical-align:top}th{background:#f6f6f6}
.note{font-size:12px;color:#666}.missing{font-size:14px;color:#555;background:#f6f6f6;
border-radius:6px;padding:14px}
.dq{font-size:13px}.dq a{color:#fff}
.issues{background:#fff4e5;color:#5c3b00;border-radius:6px;padding:8px 14px;margin-top:10px;
font-size:14px}.issues ul{margin:4px 0}
dl.glossary dt{font-weight:600;margin-top:8px}dl.glossary dd{margin:2px 0 0 0;font-size:14px}
abbr{text-decoration:underline dotted;cursor:help}
"""

# Terms the report uses, in the words the report uses them. Each term links here.
GLOSSARY = {
    "prospect": "An account with at least one touchpoint that signals a stage (awareness "
                "or later): someone at the company showed interest.",
    "became a client": "An account whose furthest stage is client or later (a former "
                       "client counts: it was a client). Prospect-to-client rate = accounts "
                       "that became clients / prospects.",
    "client now": "An account whose latest engagement was not cancelled: in a project or "
                  "between two. These are the clients scored for churn risk.",
    "former client": "An account whose latest engagement ended with a cancellation.",
    "engagement": "A period of work with a client: by default from a deal won to the first "
                  "completed project or cancellation after it (configurable).",
    "between engagements": "A client whose last engagement ended (not cancelled) and who has "
                           "not started a new one yet.",
    "bought again": "In a purchase log (engagements.instant): customers with purchases on "
                    "two or more days / customers with a purchase. Churn there means no "
                    "purchase in the horizon.",
    "re-engagement rate": "Accounts with two or more engagements / accounts whose first "
                          "engagement has ended: how often clients come back.",
    "advocacy": "A referral or a case study (a touchpoint the stage map puts in advocacy), "
                "counted by what the account was when it gave it: a prospect, a client in "
                "an engagement, between engagements or a former client. The advocacy stage "
                "of the process map is narrower: an account enters it with its first "
                "referral or case study after an engagement completed (a former client "
                "who refers stays a former client).",
    "reached": "Accounts whose furthest stage is this stage or a later one; conversion is "
               "reached(next stage) / reached(this stage).",
    "dropped": "A prospect (never a client) with no touchpoint for more than the dormancy "
               "period (default 90 days) before the as-of date.",
    "Kaplan-Meier": "A way to estimate 'how many within N days' when some accounts are still "
                    "waiting: it uses everyone for as long as we have seen them.",
    "censored": "An account still waiting at the as-of date (not moved on, not come back "
                "yet): we know it took at least that long, not how long.",
    "ROC AUC": "How well a score ranks the accounts that did churn above those that did "
               "not: 0.5 is a coin toss, 1.0 is perfect.",
    "lift": "How many times more often accounts with this touchpoint in the gap came back "
            "than accounts without it; 1 means no difference. The bar is a 95 % interval.",
}


def _term(text: str, key: str | None = None) -> str:
    """A term linked to its glossary entry (dotted underline, definition on hover)."""
    key = key or text
    return (f"<a href='#glossary'><abbr title='{html.escape(GLOSSARY[key])}'>"
            f"{html.escape(text)}</abbr></a>")


def _glossary() -> str:
    return "<dl class='glossary'>" + "".join(
        f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>"
        for term, text in GLOSSARY.items()) + "</dl>"


def _count(n) -> str:
    return "—" if missing(n) else f"{int(n):,}"


def _questions(k: pd.Series, purchases: bool = False) -> str:
    """The three questions a B2B firm asks first, answered from journey_kpis (in purchase
    words for a purchase log: each purchase is an engagement there)."""
    came_back = (
        ("How often do customers buy again?", pct(k.re_engagement_rate),
         f"{_term('bought again')}: {_count(k.re_engaged_accounts)} of "
         f"{_count(k.first_engagement_ended)} customers made another purchase after their "
         "first" + ("" if missing(k.median_gap_days) else
                    f", after a median of {k.median_gap_days:.0f} days") + ".")
        if purchases else
        ("How often do clients come back after an engagement?", pct(k.re_engagement_rate),
         f"{_term('re-engagement rate')}: {_count(k.re_engaged_accounts)} of "
         f"{_count(k.first_engagement_ended)} accounts whose first "
         f"{_term('engagement')} ended started another"
         + ("" if missing(k.median_gap_days) else
            f", after a median of {k.median_gap_days:.0f} days "
            f"{_term('between engagements')}") + "."))
    became = (
        ("What share of accounts buy?", pct(k.prospect_to_client_rate),
         f"{_count(k.clients_ever)} of {_count(k.prospects)} accounts made a purchase.")
        if purchases else
        ("What share of prospects become clients?", pct(k.prospect_to_client_rate),
         f"{_count(k.clients_ever)} of {_count(k.prospects)} {_term('prospects', 'prospect')} "
         f"{_term('became clients', 'became a client')}: {_count(k.current_clients)} are "
         f"{_term('clients now', 'client now')} (in an engagement or between two), "
         f"{_count(k.former_clients)} "
         f"{_term('former clients', 'former client')}."))
    cards = [
        became,
        came_back,
        ("Who refers us or gives a case study?", _count(k.advocates) + " accounts",
         f"{_term('advocacy', 'advocacy')}: {_count(k.former_clients_advocating)} of "
         f"{_count(k.former_clients_ever)} former clients "
         f"({pct(k.former_client_advocacy_rate)}) and "
         f"{_count(k.advocates_between_engagements)} of "
         f"{_count(k.clients_between_engagements_ever)} clients who were between engagements "
         f"({pct(k.between_engagements_advocacy_rate)})"
         + (f"; {_count(k.advocates_otherwise)} only while prospects or in an engagement"
            if k.advocates_otherwise else "") + "."),
    ]
    return "<div class='questions'>" + "".join(
        f"<div class='question'><h3>{html.escape(q)}</h3><b>{html.escape(v)}</b><p>{t}</p>"
        "</div>" for q, v, t in cards) + "</div>"


def find_chromium() -> str | None:
    """A Chrome or Chromium binary for static images (Debian: apt install chromium)."""
    return os.environ.get("BROWSER_PATH") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None)


def write_static_images(figures: dict[str, go.Figure], out: Path) -> list[Path]:
    """PNGs of the key charts for slide decks (those registered with `static_image`),
    via kaleido and a local Chromium.

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
        for name in static_images(chart_registry.CHARTS):
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


def _fit(fig: go.Figure) -> go.Figure:
    """Title top left, wrapped to half a screen; the legend between title and plot.

    Charts share a row at widths down to 1,100 px (about 590 px a chart), so a title
    longer than 55 characters is wrapped rather than cut off. The title hangs from
    the top edge, which leaves two legend rows between it and the plot.
    """
    title = fig.layout.title.text or ""
    lines = textwrap.wrap(title.replace("<br>", " "), 55) if "<br>" not in title else [title]
    legend = sum(getattr(t, "showlegend", False) is not False for t in fig.data) > 1
    top = 24 * len(lines) + (75 if legend else 30)
    fig.update_layout(title=dict(text="<br>".join(lines), x=0.01, xanchor="left",
                                 yref="container", y=1, yanchor="top", pad=dict(t=12)),
                      margin=dict(t=max(fig.layout.margin.t or 0, top)))
    if fig.layout.legend.orientation == "h":
        fig.update_layout(legend=dict(y=1.02, yanchor="bottom", x=0, xanchor="left"))
    return fig


def _certainty(occupancy: pd.DataFrame) -> str:
    """How sure the inferred stages are: the share of stays read from signals that rest on
    little or mixed evidence (confidence below 0.6)."""
    inferred = int(occupancy.inferred_stays.sum())
    if not inferred:
        return ""
    unsure = int(occupancy.unsure_stays.sum())
    return (f"<p class='note'>How sure: {unsure / inferred:.0%} of the {inferred:,} stays "
            f"read from signals ({unsure:,}) rest on little or mixed evidence (confidence "
            f"below 60 %: one signal, or signals pointing elsewhere); the others are backed "
            f"by at least two signals of their stage. Stays from deals won, projects "
            f"completed, cancellations and recorded stage changes are facts.</p>")


def _drivers_table(drivers: pd.DataFrame | None) -> pd.DataFrame:
    if drivers is None:
        return pd.DataFrame()
    shown = drivers[drivers.significant]
    return pd.DataFrame({
        "step": [f"{LABEL[a]} → {LABEL[b]}" for a, b in zip(shown.from_stage, shown.to_stage,
                                                             strict=True)],
        "touchpoint or role": [v.split(":", 1)[1].replace("_", " ")
                               + (" (role)" if k == "role" else "")
                               for v, k in zip(shown.driver, shown.kind, strict=True)],
        "accounts with it": shown.accounts_with, "moved on with": shown.conversion_with,
        "without": shown.conversion_without,
        "odds ratio (95 %)": [f"x{o:.1f} ({lo:.1f}-{hi:.1f})" for o, lo, hi in
                              zip(shown.odds_ratio, shown.ci_low, shown.ci_high, strict=True)],
        "effect": shown.direction})


def _removal_table(attribution: pd.DataFrame | None) -> pd.DataFrame:
    if attribution is None:
        return pd.DataFrame()
    part = attribution[(attribution.goal == "client") & (attribution.dimension == "campaign")
                       & (attribution.model == "markov_1")].sort_values("share", ascending=False)
    return pd.DataFrame({
        "campaign": part.value, "share": part.share,
        "interval": [f"{lo:.1%} to {hi:.1%}" for lo, hi in zip(part.ci_low, part.ci_high,
                                                               strict=True)],
        "removal effect": [f"{e:.1%} ({lo:.1%} to {hi:.1%})" for e, lo, hi in
                           zip(part.removal_effect, part.removal_ci_low, part.removal_ci_high,
                               strict=True)],
        "reading": ["uncertain" if u else "clear" for u in part.uncertain]}).head(15)


def _representatives_table(representatives: pd.DataFrame | None) -> pd.DataFrame:
    if representatives is None:
        return pd.DataFrame()
    part = representatives[representatives.level == "stage"]
    return pd.DataFrame({
        "#": part.representative, "journey (a real path)": part.medoid_path,
        "accounts": part.accounts, "coverage": part.coverage,
        "long-tail share": part.tail_coverage, "became clients": part.conversion})


# Where a chart or table of an optional step would be, when that step did not finish.
NOT_IN_THIS_RUN = ("Not in this run: the analysis behind this did not finish (the note at "
                   "the top says which and why). The next run tries it again.")


def from_absent_table(exc: Exception, d) -> bool:
    """Whether `exc` comes from reading a table an optional step did not write (its
    frame is None in `ReportData`), not from a bug."""
    return bool(d.absent) and isinstance(exc, AttributeError | TypeError) and (
        "NoneType" in str(exc))


def _section_content(build, d) -> str:
    """A section's HTML; one built from a table an optional step did not write says so
    instead (any other failure still raises)."""
    try:
        return build()
    except Exception as exc:
        if not from_absent_table(exc, d):
            raise
        return f"<p class='missing'>{html.escape(NOT_IN_THIS_RUN)}</p>"


# A spreadsheet evaluates a cell that starts with one of these (OWASP: CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A text cell a spreadsheet would read as a formula (=HYPERLINK(...), +1+cmd|...,
    @SUM(...)) gets a leading apostrophe, so it is shown as the text it is; numbers and
    other values are left as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """A CSV list for spreadsheets: text cells neutralised (`spreadsheet_safe`)."""
    safe = frame.copy()
    for column in safe.columns:
        if not (pd.api.types.is_numeric_dtype(safe[column])
                or pd.api.types.is_datetime64_any_dtype(safe[column])):
            safe[column] = safe[column].map(spreadsheet_safe)
    safe.to_csv(path, index=False)


def _chart(fig: go.Figure, name: str) -> str:
    return _fit(fig).to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{name}",
                       default_width="100%",
                       config={"displaylogo": False, "responsive": True})


# Plots drawn while the page was still laid out get the final width of their cell.
REFIT = ("<script>window.addEventListener('load',function(){document.querySelectorAll("
         "'.js-plotly-plot').forEach(function(d){Plotly.Plots.resize(d);});});</script>")


def _missing(sentence: str) -> str:
    """A sentence standing where a chart or table would be, said in the page's grey box."""
    return f"<p class='missing'>{html.escape(sentence)}</p>"


@dataclass(frozen=True)
class Drawn:
    """One registered chart as the page shows it.

    `html` is the figure, or the sentence in its place (nothing to show, not in this
    run, could not be drawn); `figure` is kept for the PNG export; `failed` says why
    the builder raised, for the note at the top of the page.
    """

    chart: Chart
    html: str
    figure: go.Figure | None = None
    failed: str | None = None


def _draw(chart: Chart, d: ReportData) -> Drawn:
    """The chart drawn, or the sentence that replaces it: a chart that cannot be drawn is
    said where it would be, and the rest of the report stays."""
    try:
        if chart.empty_when is not None and bool(chart.empty_when(d)):
            return Drawn(chart, _missing(chart.empty_sentence))
        figure = chart.build(d)
    except Exception as exc:  # noqa: BLE001
        if from_absent_table(exc, d):
            return Drawn(chart, _missing(NOT_IN_THIS_RUN))
        why = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        return Drawn(chart, f"<p class='note'>This chart could not be drawn "
                            f"({html.escape(why)}).</p>", failed=why)
    # Figure ids carry a prefix: a section and a chart must never share an id.
    return Drawn(chart, f"<div class='chart'>{_chart(figure, chart.name)}</div>", figure)


def drawn_charts(d: ReportData) -> list[Drawn]:
    """Every registered chart that belongs in this report, drawn, in report order. The
    registry is read at call time, so a chart added to it is drawn with no other edit."""
    return [_draw(chart, d) for chart in chart_registry.CHARTS if chart.belongs(d)]


def _charts_by_section(drawn: list[Drawn]) -> dict[str, list[str]]:
    """The HTML of each section's charts, in registry order: a section places its charts
    from here, never by a list of names, so a new chart of a section is placed too."""
    placed: dict[str, list[str]] = {}
    for chart in drawn:
        placed.setdefault(chart.chart.section, []).append(chart.html)
    return placed


def _chart_issues(drawn: list[Drawn]) -> list[tuple[str, str]]:
    """The charts that could not be drawn, as lines of the note at the top."""
    return [(f"chart {c.chart.name}", c.failed) for c in drawn if c.failed is not None]


def _grid(charts: list[str]) -> str:
    """Charts side by side, two a row on a wide screen."""
    return f'<div class="grid">{"".join(charts)}</div>'


def _kpi_tiles(k: pd.Series) -> str:
    tiles = [(f"{int(k.accounts):,}", "accounts"), (f"{int(k.touchpoints):,}", "touchpoints"),
             (pct(k.resolved_share), "tied to an account"),
             (f"{int(k.dropped_accounts):,}", _term("dropped"))]
    return ('<div class="kpis">' + "".join(f'<div class="kpi"><b>{value}</b>{label}</div>'
                                           for value, label in tiles) + "</div>")


_FMT_DAYS = {c: (lambda v: duration(None if pd.isna(v) else v * 24))
             for c in ("median_days", "p75_days", "p90_days")}


def _timing_table(stage_timing: pd.DataFrame | None) -> str:
    """Kaplan-Meier time to move on per stage before client (the mining step writes it)."""
    if stage_timing is None:
        return _missing(NOT_IN_THIS_RUN)
    shown = stage_timing[stage_timing.stage.isin(FUNNEL[:-1])
                         & (stage_timing.accounts_entered > 0)][
        ["stage", "accounts_entered", "moved_on", "censored", "median_days", "p75_days",
         "p90_days", "moved_on_within_90d"]]
    return _table(shown, {**_FMT_DAYS, "moved_on_within_90d": pct},
                  "No account has entered a stage before client yet.")


def _dropped_list(dropped: pd.DataFrame) -> str:
    """The dropped accounts to follow up first, and a link to all of them."""
    top = dropped.head(15)[["account_id", "account_name", "industry", "dropped_at_stage",
                            "last_touch_at", "days_silent"]]
    if not len(dropped):
        return "<p class='note'>No account has gone quiet before buying.</p>"
    return (f"{_table(top)}<p class='note'>All {len(dropped):,} dropped accounts: "
            f"<a href='dropped_accounts.csv' download>dropped_accounts.csv</a></p>")


def _deviations_table(transitions: pd.DataFrame) -> pd.DataFrame:
    """Departures from the ladder (skips, steps back); returns and cancellations after a
    sale are not departures."""
    top = (transitions[transitions.kind.isin(("skip", "back_step"))]
           .sort_values("accounts", ascending=False).head(8))
    return pd.DataFrame({
        "move": [f"{LABEL[a]} → {LABEL[b]}" for a, b in zip(top.from_stage, top.to_stage,
                                                             strict=True)],
        "kind": [str(k).replace("_", "-") for k in top.kind],
        "accounts": top.accounts, "times": top.transitions,
        "median time": [duration(h) for h in top.median_hours]})


def _charts_only(d: ReportData, charts: list[str]) -> str:
    """A section that is its charts alone, in the order they are registered."""
    return "".join(charts)


def _funnel_section(d: ReportData, charts: list[str]) -> str:
    return (_kpi_tiles(d.kpis) + _grid(charts)
            + f"<h3>Time to move on ({_term('Kaplan-Meier')}; journeys still open are "
              f"{_term('censored')})</h3>{_timing_table(d.stage_timing)}"
            + "<h3>Dropped accounts to follow up</h3>" + _dropped_list(d.dropped))


_MAP_NOTE = (
    "<p class='note'>Each circle is a stage; its size is the number of accounts that were in "
    "it (inferred stage states). Each arrow is a move from one stage to another: blue up the "
    "ladder, brown skipping a stage, red stepping back, green a return after an engagement "
    "(a renewal, a new project), grey a cancellation; its width is the number of moves. A "
    "label reads 'moves · median time between the two stages'; hover for the number of "
    "accounts.</p>")


def _map_section(d: ReportData, charts: list[str]) -> str:
    # The note and the certainty line explain the first chart, the stage map.
    return ("".join(charts[:1]) + _MAP_NOTE + _certainty(d.occupancy)
            + "".join(charts[1:]))


def _paths_section(d: ReportData, charts: list[str]) -> str:
    variants = d.variants.head(TOP_PATHS)[["variant_rank", "variant", "cases", "coverage",
                                           "cumulative_coverage"]]
    others = len(d.variants) - len(variants)
    return ("".join(charts) + "<h3>Most common paths</h3>"
            + _table(variants, {"coverage": pct, "cumulative_coverage": pct})
            + (f"<p class='note'>The other {others:,} paths cover "
               f"{pct(1 - variants.coverage.sum())} of accounts.</p>" if others > 0 else "")
            + _certainty(d.occupancy))


def _linearity_section(d: ReportData, charts: list[str]) -> str:
    return ("".join(charts) + "<h3>Most common departures from the ladder</h3>"
            + _table(_deviations_table(d.stage_transitions),
                     empty="No step back or skip between two stages."))


def _reengagement_section(d: ReportData, charts: list[str]) -> str:
    # The curve and the gaps side by side; the lifecycle and the lift full width.
    return _grid(charts[:2]) + "".join(charts[2:])


def _advocacy_section(d: ReportData, charts: list[str]) -> str:
    advocates = d.advocates[["account_id", "first_advocacy_at", "referrals", "case_studies",
                             "advocated_as"]].head(20)
    return "".join(charts) + _table(advocates, empty="No referral or case study yet.")


def _charts_over_table(charts: list[str], frame: pd.DataFrame, formats: dict, empty: str,
                       note: str = "") -> str:
    """A section's charts over the table listing what they show, then how to read it."""
    return ("".join(charts) + _table(frame, formats, empty)
            + (f"<p class='note'>{note}</p>" if note else ""))


def _drivers_section(d: ReportData, charts: list[str]) -> str:
    return _charts_over_table(
        charts, _drivers_table(d.drivers), {"moved on with": pct, "without": pct},
        "Nothing to list yet.",
        "Odds ratio: how many times the odds of moving on are higher with the touchpoint or "
        "role than without, for accounts as long in the stage. Only rows whose "
        "false-discovery-corrected q is below 0.05 are listed; all tests are in the table "
        "conversion_drivers.")


def _attribution_section(d: ReportData, charts: list[str]) -> str:
    return _charts_over_table(
        charts, _removal_table(d.attribution), {"share": pct, "interval": str},
        "Nothing to attribute yet.",
        "Removal effect: the share of conversions lost if every journey through that "
        "campaign had failed (Markov chain of the journeys). 'uncertain' means its 95 % "
        "interval reaches zero. All goals, dimensions and models are in the table "
        "attribution.")


def _representatives_section(d: ReportData, charts: list[str]) -> str:
    return _charts_over_table(
        charts, _representatives_table(d.representatives),
        {"coverage": pct, "long-tail share": pct, "became clients": pct},
        "Too few distinct paths to summarise.")


def _churn_section(d: ReportData, charts: list[str]) -> str:
    top = d.churn.head(20)[["account_id", "account_name", "churn_probability", "risk_band",
                            "top_factors"]]
    who = "Customers least likely to buy again" if d.purchases else "Clients most at risk"
    return ("".join(charts) + f"<h3>{who}</h3>"
            + _table(top, {"churn_probability": pct},
                     "No customers to score." if d.purchases else "No clients to score.")
            + ("<p class='note'>All scores: <a href='churn_scores.csv' download>"
               "churn_scores.csv</a></p>" if len(d.churn) else ""))


def _quality_section(d: ReportData, charts: list[str]) -> str:
    loads = d.loads[["load_id", "finished_at", "files_seen", "files_read", "rows_read",
                     "rows_loaded", "rows_duplicate", "rows_rejected"]]
    return ("".join(charts) + "<h3>Loads</h3>" + _table(loads)
            + "<h3>Rejected rows by reason</h3>" + _table(d.rejects, empty="No row rejected."))


@dataclass(frozen=True)
class Section:
    """A section of the page: its anchor (also the key of its headline and of the charts
    registered for it), its title, and its content from the data and its charts' HTML."""

    id: str
    title: str
    content: Callable[[ReportData, list[str]], str] = _charts_only
    purchase_title: str | None = None  # the title for a purchase log, where it differs

    def title_for(self, d: ReportData) -> str:
        """The section's title for this report (purchase words for a purchase log)."""
        return (self.purchase_title if d.purchases and self.purchase_title else self.title)


# In the order they stand in the page (and in its navigation bar). Every section places
# the charts registered for it, so none can be registered and then left out.
SECTIONS: tuple[Section, ...] = (
    Section("questions", "The three questions first",
            lambda d, charts: _questions(d.kpis, d.purchases) + "".join(charts)),
    Section("funnel", "Funnel and drop-offs", _funnel_section),
    Section("map", "The process map", _map_section),
    Section("paths", "Paths", _paths_section),
    Section("linearity", "How linear are journeys?", _linearity_section),
    Section("cohorts", "Conversion over time and by segment", lambda d, charts: _grid(charts)),
    Section("channels", "Channel mix per stage"),
    Section("reengagement", "Between engagements: who comes back", _reengagement_section,
            purchase_title="Repeat purchases: who buys again"),
    Section("advocacy", "Advocacy: referrals and case studies", _advocacy_section),
    Section("drivers", "What moves accounts forward", _drivers_section),
    Section("attribution", "Which channels and campaigns get the credit",
            _attribution_section),
    Section("representatives", "Representative journeys", _representatives_section),
    Section("churn", "Churn risk", _churn_section,
            purchase_title="Churn risk: who may not buy again"),
    Section("trend", "Over time"),
    Section("quality", "Data quality", _quality_section),
    Section("glossary", "Glossary", lambda d, charts: _glossary() + "".join(charts)),
)


def _section_html(section: Section, d: ReportData, charts: list[str],
                  heads: dict[str, str]) -> str:
    """A whole <section>: title, headline sentence (if any) and content."""
    content = _section_content(lambda: section.content(d, charts), d)
    headline = (f'<p class="headline">{html.escape(heads[section.id])}</p>'
                if section.id in heads else "")
    return (f'<section id="{section.id}"><h2>{html.escape(section.title_for(d))}</h2>{headline}'
            f"{content}</section>")


def _tests_clause(tests: pd.DataFrame | None) -> str:
    if tests is None:
        return "; data tests not run"
    failed = ~tests.passed
    errors = int((failed & (tests.severity == "error")).sum())
    return (f"; {int(failed.sum())} of {len(tests)} data tests failed"
            + (f" ({errors} errors)" if errors else ""))


def _quality_line(d: ReportData) -> str:
    """The one line under the title a reader checks before trusting the numbers: rows
    rejected in the last load and data tests failed (empty before any load)."""
    last = d.loads.tail(1)
    if not len(last):
        return ""
    return (f"Data quality: {int(last.rows_rejected.sum()):,} of {int(last.rows_read.sum()):,} "
            f"rows rejected in the last load{_tests_clause(d.tests)}. "
            "<a href='#quality'>Details</a>")


def _issues_html(issues: list[tuple[str, str]]) -> str:
    """What is missing from this report and why, at the top, so nobody reads a partial
    report as a complete one (empty when nothing is missing)."""
    if not issues:
        return ""
    return ("<div class='issues'><b>Not in this report:</b><ul>" + "".join(
        f"<li>{html.escape(step)}: {html.escape(problem)}</li>" for step, problem in issues)
        + "</ul>Everything else below is complete.</div>")


def _page(d: ReportData, drawn: list[Drawn], issues: list[tuple[str, str]],
          run_name: str) -> str:
    """The whole self-contained page (plotly.js inline, so it works offline)."""
    placed, heads = _charts_by_section(drawn), headlines(d)
    body = "".join(_section_html(s, d, placed.get(s.id, []), heads) for s in SECTIONS)
    nav = "".join(f'<a href="#{s.id}">{html.escape(s.title_for(d))}</a>' for s in SECTIONS)
    as_of = d.kpis.as_of
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Customer journeys as of {as_of:%Y-%m-%d}</title><style>{CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"<header><h1>Customer journeys</h1><p>As of {as_of:%d %B %Y} · report {run_name}"
        f"</p><p class='dq'>{_quality_line(d)}</p>{_issues_html(issues)}</header>"
        f"<nav>{nav}</nav><main>{body}</main>{REFIT}</body></html>")


def _write_lists(d: ReportData, out: Path) -> None:
    """The CSV lists the page links to, for follow-up in a spreadsheet."""
    write_csv(d.dropped, out / "dropped_accounts.csv")
    if d.churn is not None:
        write_csv(d.churn, out / "churn_scores.csv")


def _refresh_latest(out: Path, reports_dir: Path) -> None:
    """reports/latest/ is a copy of this run, so a bookmark always shows the newest."""
    latest = Path(reports_dir) / "latest"
    if latest.exists():
        shutil.rmtree(latest)
    shutil.copytree(out, latest)


def write_report(con: duckdb.DuckDBPyConnection, reports_dir: Path,
                 run_name: str | None = None, static_images: bool = True) -> Path:
    """Write reports/<run>/index.html (+ CSV lists, PNGs) and refresh reports/latest/."""
    d = report_data(con)
    run_name = run_name or dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(reports_dir) / run_name
    out.mkdir(parents=True, exist_ok=True)
    _write_lists(d, out)
    drawn = drawn_charts(d)
    issues = [*run_issues(con), *_chart_issues(drawn)]
    index = out / "index.html"
    index.write_text(_page(d, drawn, issues, run_name), encoding="utf-8")
    if static_images:
        write_static_images({c.chart.name: c.figure for c in drawn if c.figure is not None},
                            out)
    _refresh_latest(out, reports_dir)
    return index
