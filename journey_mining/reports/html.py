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
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from journey_mining.reports import charts as chart_registry
from journey_mining.reports.charts import STATIC_IMAGES, TOP_PATHS, Chart, static_images
from journey_mining.reports.data import ReportData, report_data
from journey_mining.reports.figures import (
    DIMENSION_WORDS,
    SOURCE_WORDS,
    UNMATCHED,
    driver_words,
)
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
    # Headers in words: a column without a name of its own reads with spaces, not as
    # the field it came from.
    head = "".join(f"<th>{html.escape(str(c).replace('_', ' '))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = "".join(
            f"<td>{html.escape(formats[c](v) if c in formats else _cell(v))}</td>"
            for c, v in row.items())
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cell(value) -> str:
    """A table cell: counts with thousands separators, an empty value empty."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    return "" if pd.isna(value) else str(value)


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
            "than accounts without it; 1 means no difference. The bar is a 95 % interval. "
            "An association: a touchpoint can mark clients already on their way back.",
    "marketing channel": "Where a touchpoint came from, as a marketer groups it. The "
                         "default groups: organic or paid search, organic or paid social, "
                         "email, referral, display, events/offline, direct, sales outreach, "
                         "account management, and other (no rule matched); a config's own "
                         "rules may name others. "
                         "Read from the UTM tags, the referring site, the campaign and the "
                         "CRM activity type by ordered rules (analysis.marketing_channels "
                         "in the config changes them).",
    "source / medium": "Web analytics' source and medium of a visit (google / cpc); a visit "
                       "without tags: its referring site / organic (a search engine), / "
                       "social (a social network), / email (a webmail) or / referral, or "
                       "(direct) / (none).",
    "recording system": "The system that recorded a touchpoint: the website, the email "
                        "platform or the CRM.",
    "reached vs were in": "'Reached' counts accounts whose furthest stage is this one or "
                          "later (the funnel); 'were in' counts accounts whose inferred stage "
                          "was this one at some point (the process map). An account can "
                          "jump past a stage: it reached it without being in it.",
    "kinds of move": "Up the ladder: to the next stage. Skip: past a funnel stage. Step "
                     "back: to an earlier stage before a sale. Return: from between "
                     "engagements, advocacy or former client to an earlier stage (a "
                     "renewal, a new project). Cancellation: to former client. Revisit: "
                     "back to a stage the journey was in before.",
    "long tail": "The accounts whose stage path is not one of the ten most common.",
    "confidence": "For an inferred stay: the share of its evidence that points to its "
                  "stage (0-100 %); below 60 % the stay rests on little or mixed evidence.",
    "removal effect": "The share of conversions that would be lost if every journey "
                      "through a channel or campaign had failed, from a Markov chain of "
                      "the real journeys: the data-driven credit.",
    "bootstrap": "Re-running a measure on many resamples of the accounts (drawn with "
                 "replacement) to see how much it moves: the 95 % interval is the middle "
                 "95 % of those re-runs.",
    "odds ratio": "How many times higher the odds of moving on are with a touchpoint than "
                  "without, for accounts as long in the stage; 1 means no difference. An "
                  "association, not proof of cause.",
    "PR AUC": "How well a score finds the clients who did churn among all: the area under "
              "precision against recall. Compare it with the share who churned (what a "
              "random order would give).",
    "Brier score": "The mean squared gap between predicted churn probabilities and what "
                   "happened (0 or 1): lower is better; predicting the base rate for "
                   "everyone is the bar to beat.",
    "q-value": "A p-value corrected for testing many candidates at once "
               "(Benjamini-Hochberg): below 0.05, fewer than one in twenty of the listed "
               "findings is expected to be chance.",
    "attribution models": "How the credit for a conversion is split over the touchpoints "
                          "before it. First touch: all to the first; last touch: all to the "
                          "last; linear: equal shares; position-based: 40 % first, 40 % last, "
                          "20 % over the middle; time decay: more to recent ones (half-life "
                          "7 days); Markov (data-driven): by removal effect, from the real "
                          "journeys; Markov 2nd order: the same with the two touchpoints "
                          "before each step as the state.",
    "new, returning, resurrecting, dormant": "In a month: new accounts have their first "
                                             "touchpoint; returning ones were active the "
                                             "month before too; resurrecting ones come back "
                                             "after at least a month without; dormant ones "
                                             "were active the month before and not now.",
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


def _questions(k: pd.Series, purchases: bool = False, in_advocacy_stage=None) -> str:
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
            if k.advocates_otherwise else "") + "."
         + ("" if in_advocacy_stage is None else
            f" The process map's advocacy stage counts {_count(in_advocacy_stage)}: only "
            "those who gave one after an engagement was completed.")),
    ]
    return "<div class='questions'>" + "".join(
        f"<div class='question'><h3>{html.escape(q)}</h3><b>{html.escape(v)}</b><p>{t}</p>"
        "</div>" for q, v, t in cards) + "</div>"


def _in_stage(d: ReportData, stage: str):
    """Accounts whose inferred stage was `stage` at some point (stage_occupancy)."""
    rows = d.occupancy[d.occupancy.stage == stage]
    return int(rows.accounts_ever_in.iloc[0]) if len(rows) else None


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
        (out / "images").mkdir(exist_ok=True)
        names = [n for n in static_images(chart_registry.CHARTS) if n in figures]
        paths = [out / "images" / f"{name}.png" for name in names]
        if names:  # one browser for all of them (write_image starts one per image)
            pio.write_images([figures[n] for n in names], paths, width=1200, height=650,
                             scale=1)
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
    space = 75 if legend else 30
    top = 24 * len(lines) + space
    fig.update_layout(title=dict(text="<br>".join(lines), x=0.01, xanchor="left",
                                 yref="container", y=1, yanchor="top", pad=dict(t=12)),
                      margin=dict(t=max(fig.layout.margin.t or 0, top)),
                      # The page re-wraps the title to the chart's width (REFIT).
                      meta=dict(title=" ".join(title.replace("<br>", " ").split()),
                                title_space=max((fig.layout.margin.t or 0) - 24 * len(lines),
                                                space)))
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
        "touchpoint, channel or role": [driver_words(v, k) for v, k in
                                        zip(shown.driver, shown.kind, strict=True)],
        "accounts with it": shown.accounts_with, "moved on with": shown.conversion_with,
        "without": shown.conversion_without,
        "odds ratio (95 %)": [_odds(o, lo, hi) for o, lo, hi in
                              zip(shown.odds_ratio, shown.ci_low, shown.ci_high, strict=True)],
        "effect": shown.direction})


def _odds(ratio: float, low: float, high: float) -> str:
    """An odds ratio as a reader can use it; one whose interval spans more than a factor
    of 100 says only its direction (a handful of accounts on one side decide it)."""
    if high / max(low, 1e-12) > 100:
        return f"{'above' if low > 1 else 'below'} 1, size unclear (too few accounts)"
    return f"x{ratio:.1f} ({low:.1f}-{high:.1f})"


def _removal_table(attribution: pd.DataFrame | None, dimension: str = "marketing_channel",
                   rows: int = 12) -> pd.DataFrame:
    """The data-driven credit for reaching client by `dimension`, biggest first and the
    pooled "other" last (it is many small values, not one)."""
    if attribution is None:
        return pd.DataFrame()
    part = attribution[(attribution.goal == "client") & (attribution.dimension == dimension)
                       & (attribution.model == "markov_1")]
    part = part.assign(_other=part.value == "other").sort_values(
        ["_other", "share"], ascending=[True, False])
    part = pd.concat([part[~part._other].head(rows - 1), part[part._other]])
    other = (UNMATCHED if dimension == "marketing_channel"
             else "other (the rarer ones, pooled)")
    return pd.DataFrame({
        DIMENSION_WORDS.get(dimension, dimension): [
            other if v == "other" else v for v in part.value],
        "share of the credit": part.share.map(pct),
        "95 % interval": [f"{lo:.1%} to {hi:.1%}" for lo, hi in zip(part.ci_low, part.ci_high,
                                                                     strict=True)],
        "model's conversions lost without it": [
            f"{e:.1%} ({lo:.1%} to {hi:.1%})" for e, lo, hi in
            zip(part.removal_effect, part.removal_ci_low, part.removal_ci_high, strict=True)],
        "reading": ["uncertain" if u else "clear" for u in part.uncertain]})


def _representatives_table(representatives: pd.DataFrame | None) -> pd.DataFrame:
    if representatives is None:
        return pd.DataFrame()
    part = representatives[representatives.level == "stage"]
    return pd.DataFrame({
        "#": part.representative,
        "journey (a real path)": [" → ".join(LABEL.get(s, s) for s in p.split(" > "))
                                  for p in part.medoid_path],
        "accounts with this path or a similar one": part.accounts,
        "share of accounts": part.coverage.map(pct),
        "share of the long tail": part.tail_coverage.map(pct),
        "became clients": part.conversion.map(pct)})


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


# Plots drawn while the page was still laid out get the final width of their cell, and
# each title is wrapped to the width its chart has on this screen (layout.meta.title
# holds it unwrapped): a fixed break wraps at a fraction of a wide chart.
REFIT = """<script>
function wrapTitles(){
  var ctx = wrapTitles.ctx || (wrapTitles.ctx = document.createElement('canvas').getContext('2d'));
  document.querySelectorAll('.js-plotly-plot').forEach(function(d){
    var m = d.layout && d.layout.meta;
    if (!m || !m.title || !d._fullLayout) return;
    var width = d.getBoundingClientRect().width - 40;
    if (width <= 0) return;
    var f = d._fullLayout.title.font;
    ctx.font = f.size + 'px ' + f.family;
    var lines = [], line = '';
    m.title.split(' ').forEach(function(word){
      var next = line ? line + ' ' + word : word;
      if (line && ctx.measureText(next).width > width) { lines.push(line); line = word; }
      else line = next;
    });
    if (line) lines.push(line);
    var text = lines.join('<br>');
    if (text === d.layout.title.text) return;
    Plotly.relayout(d, {'title.text': text, 'margin.t': 24 * lines.length + m.title_space});
  });
}
window.addEventListener('load', function(){
  document.querySelectorAll('.js-plotly-plot').forEach(function(d){ Plotly.Plots.resize(d); });
  wrapTitles();
});
window.addEventListener('resize', function(){
  clearTimeout(wrapTitles.timer); wrapTitles.timer = setTimeout(wrapTitles, 150);
});
</script>"""


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


def _timing_table(stage_timing: pd.DataFrame | None) -> str:
    """Kaplan-Meier time to move on per stage before client (the mining step writes it)."""
    if stage_timing is None:
        return _missing(NOT_IN_THIS_RUN)
    shown = stage_timing[stage_timing.stage.isin(FUNNEL[:-1])
                         & (stage_timing.accounts_entered > 0)]
    table = pd.DataFrame({
        "stage": [LABEL[s] for s in shown.stage],
        "accounts that entered it": shown.accounts_entered,
        "moved on": shown.moved_on, "still there (censored)": shown.censored,
        "half had moved on within": shown.median_days.map(_days_or_not_yet),
        "three in four within": shown.p75_days.map(_days_or_not_yet),
        "nine in ten within": shown.p90_days.map(_days_or_not_yet),
        "moved on within 90 days": shown.moved_on_within_90d.map(pct)})
    return (_table(table, empty="No account has entered a stage before client yet.")
            + "<p class='note'>'not yet': fewer than that share have moved on so far.</p>")


def _days_or_not_yet(days) -> str:
    """A Kaplan-Meier time, or 'not yet' where too few have moved on to read it."""
    return "not yet" if missing(days) else duration(days * 24)


def _dropped_list(dropped: pd.DataFrame) -> str:
    """The dropped accounts to follow up first, and a link to all of them."""
    if not len(dropped):
        return "<p class='note'>No account has gone quiet before buying.</p>"
    head = dropped.head(15)
    top = pd.DataFrame({
        "account": head.account_id, "name": head.account_name, "industry": head.industry,
        "went quiet at": [LABEL.get(s, s) for s in head.dropped_at_stage],
        "last touchpoint": [f"{t:%d %b %Y}" for t in head.last_touch_at],
        "days silent": head.days_silent})
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
    "<p class='note'>Each circle is a stage; its size and the number under it are the "
    "accounts that were in it at some point (inferred stage states: not the funnel's "
    "'reached', see <a href='#glossary'>reached vs were in</a>). Each arrow is a move "
    "from one stage to another: blue up the "
    "ladder, brown skipping a stage, red stepping back, green a return after an engagement "
    "(a renewal, a new project), grey a cancellation; its width is the number of moves. A "
    "label reads 'moves · median time between the two stages'; hover for the number of "
    "accounts.</p>")


def _map_section(d: ReportData, charts: list[str]) -> str:
    # The note and the certainty line explain the first chart, the stage map.
    return ("".join(charts[:1]) + _MAP_NOTE + _certainty(d.occupancy)
            + "".join(charts[1:]))


def _paths_section(d: ReportData, charts: list[str]) -> str:
    variants = d.variants.head(TOP_PATHS)
    others = len(d.variants) - len(variants)
    table = pd.DataFrame({
        "#": variants.variant_rank,
        "stage path": [" → ".join(LABEL.get(s, s) for s in v.split(" > "))
                       for v in variants.variant],
        "accounts on exactly this path": variants.cases,
        "share of accounts": variants.coverage.map(pct),
        "running total": variants.cumulative_coverage.map(pct)})
    return ("".join(charts) + "<h3>Most common paths</h3>"
            + _table(table)
            + (f"<p class='note'>The other {others:,} paths cover "
               f"{pct(1 - variants.coverage.sum())} of accounts.</p>" if others > 0 else "")
            + _certainty(d.occupancy))


def _linearity_section(d: ReportData, charts: list[str]) -> str:
    return ("".join(charts) + "<h3>Most common departures from the ladder</h3>"
            + _table(_deviations_table(d.stage_transitions),
                     empty="No step back or skip between two stages."))


def _channel_paths_table(paths: pd.DataFrame, rows: int = 10) -> pd.DataFrame:
    """The most common orders in which accounts met marketing channels, up to becoming a
    client (the channel_paths mart)."""
    part = paths[paths.dimension == "marketing_channel"].head(rows)
    return pd.DataFrame({
        "channel path (up to becoming a client)": part.path,
        "accounts": part.accounts, "share of accounts": part.share.map(pct),
        "became clients": [f"{int(c):,} ({pct(r)})" for c, r in
                           zip(part.became_clients, part.conversion, strict=True)]})


def _channels_section(d: ReportData, charts: list[str]) -> str:
    return ("".join(charts) + "<h3>Most common channel paths</h3>"
            + _table(_channel_paths_table(d.channel_paths), empty="No channel paths yet.")
            + "<p class='note'>Each path is the order in which an account met "
            f"{_term('marketing channels', 'marketing channel')} (repeats merged), up to "
            "becoming a client or to the as-of date. By source / medium and by recording "
            "system: the table channel_paths.</p>")


def _reengagement_section(d: ReportData, charts: list[str]) -> str:
    # The curve and the gaps side by side; the lifecycle and the lift full width.
    return (_grid(charts[:2])
            + "<p class='note'>The curve can end above the rate in the headline: the rate "
              "counts an account still in its gap as not back, the curve (Kaplan-Meier) "
              "as not back <i>yet</i>, and estimates how many come back in the end.</p>"
            + "".join(charts[2:]))


def _advocacy_section(d: ReportData, charts: list[str]) -> str:
    head = d.advocates.head(20)
    advocates = pd.DataFrame({
        "account": head.account_id,
        "name": head.account_name if "account_name" in head else "",
        "first referral or case study": [f"{t:%d %b %Y}" for t in head.first_advocacy_at],
        "referrals": head.referrals, "case studies": head.case_studies,
        "first given as": [LABEL.get(s, s) for s in head.advocated_as]})
    return "".join(charts) + _table(advocates, empty="No referral or case study yet.")


def _charts_over_table(charts: list[str], frame: pd.DataFrame, formats: dict, empty: str,
                       note: str = "") -> str:
    """A section's charts over the table listing what they show, then how to read it."""
    return ("".join(charts) + _table(frame, formats, empty)
            + (f"<p class='note'>{note}</p>" if note else ""))


def _fit_note(d: ReportData, analysis: str, what: str) -> str:
    """Which fit a section shows: this run's, or the last one, kept between fits (the
    heavy fits are redone on their cadence, journey_mining.fits)."""
    fit = d.fits.get(analysis)
    if fit is None:
        return ""
    fitted_at, data_as_of, this_build = fit
    if this_build:
        text = f"{what}: fitted in this run, on the data up to {data_as_of:%d %b %Y}."
    else:
        days = (d.kpis.as_of - data_as_of).days
        text = (f"{what}: the fit of {fitted_at:%d %b %Y}, on the data up to "
                f"{data_as_of:%d %b %Y}"
                + (f" ({days} day{'' if days == 1 else 's'} before this report's)"
                   if days > 0 else "")
                + ". Heavy fits are redone weekly (setting fits.every_days) or with "
                "journey run --refit.")
    return f"<p class='note fit'>{text}</p>"


def _drivers_section(d: ReportData, charts: list[str]) -> str:
    listed = _drivers_table(d.drivers)
    note = _fit_note(d, "drivers", "Conversion drivers")
    if listed.empty:  # the chart's sentence already says nothing clearly goes with it
        return "".join(charts) + note
    return note + _charts_over_table(
        charts, listed, {"moved on with": pct, "without": pct}, "",
        f"{_term('Odds ratio', 'odds ratio')}: how many times the odds of moving on are higher "
        "with the touchpoint, channel or role than without, for accounts as long in the "
        "stage. 'Moved on with' and 'without' are the plain shares, not adjusted for time "
        "in the stage, so they can point the other way (accounts that stay long collect "
        "more touchpoints). Only rows whose false-discovery-corrected "
        f"{_term('q-value')} is below 0.05 are listed; every test is in the warehouse "
        "table conversion_drivers.")


def _attribution_section(d: ReportData, charts: list[str]) -> str:
    note = (f"The model's conversions lost without it (the {_term('removal effect')}): the "
            "share of conversions the Markov chain of the journeys loses if every journey "
            "through that channel or campaign fails; a model's credit, not a measured loss "
            "(it says nothing of what a cut budget would do). 'uncertain': its 95 % interval "
            f"({_term('bootstrap')}) reaches zero. Campaigns carry their names where the "
            "exports give them (email campaign name, web utm_campaign). Every goal, cut "
            "(marketing channel, source / medium, campaign, recording system, touchpoint) "
            "and model is in the table attribution.")
    return ("".join(charts) + "<h3>By marketing channel</h3>"
            + _table(_removal_table(d.attribution), empty="Nothing to attribute yet.")
            + "<h3>By campaign</h3>"
            + _table(_removal_table(d.attribution, "campaign"),
                     empty="No campaign on the journeys to client.")
            + f"<p class='note'>{note}</p>" + _fit_note(d, "drivers", "Attribution"))


def _representatives_section(d: ReportData, charts: list[str]) -> str:
    return _fit_note(d, "drivers", "Representative journeys") + _charts_over_table(
        charts, _representatives_table(d.representatives), {},
        "Too few distinct paths to summarise.",
        "Each representative is a real path standing for the accounts whose paths are "
        "closest to it, so it counts more accounts than the same path does under 'Most "
        "common paths' (exactly that path). The long tail: the accounts off the ten most "
        "common paths.")


def _churn_section(d: ReportData, charts: list[str]) -> str:
    head = d.churn.head(20)
    horizon = int(d.model_run.horizon_days) if d.model_run is not None else 180
    top = pd.DataFrame({
        "account": head.account_id, "name": head.account_name,
        (f"chance of no purchase in {horizon} days" if d.purchases
         else f"risk of leaving within {horizon} days"): head.churn_probability.map(
             lambda p: "not scored" if missing(p) else pct(p)),
        "risk band": head.risk_band.fillna("not scored"),
        "why (strongest signals)": head.top_factors})
    who = "Customers least likely to buy again" if d.purchases else "Clients most at risk"
    return ("".join(charts) + f"<h3>{who}</h3>"
            + _table(top, {},
                     "No customers to score." if d.purchases else "No clients to score.")
            + ("<p class='note'>All scores: <a href='churn_scores.csv' download>"
               "churn_scores.csv</a></p>" if len(d.churn) else "")
            + _fit_note(d, "churn", "Churn model (today's clients are scored with it)"))


def _quality_section(d: ReportData, charts: list[str]) -> str:
    loads = pd.DataFrame({
        "load": d.loads.load_id,
        "finished": [f"{t:%d %b %Y %H:%M}" for t in d.loads.finished_at],
        "files found": d.loads.files_seen, "files read": d.loads.files_read,
        "rows read": d.loads.rows_read, "rows loaded": d.loads.rows_loaded,
        "duplicates skipped": d.loads.rows_duplicate, "rows rejected": d.loads.rows_rejected})
    rejects = pd.DataFrame({"source": [SOURCE_WORDS.get(s, s) for s in d.rejects.source],
                            "reason": d.rejects.reason,
                            "rows": d.rejects.rows})
    return ("".join(charts) + "<h3>Loads</h3>" + _table(loads)
            + "<h3>Rejected rows by reason</h3>" + _table(rejects, empty="No row rejected."))


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
            lambda d, charts: _questions(d.kpis, d.purchases, _in_stage(d, "advocacy"))
            + "".join(charts)),
    Section("funnel", "Funnel and drop-offs", _funnel_section),
    Section("map", "The process map", _map_section),
    Section("paths", "Paths", _paths_section),
    Section("linearity", "How linear are journeys?", _linearity_section),
    Section("cohorts", "Conversion over time and by segment", lambda d, charts: _grid(charts)),
    Section("channels", "Channels accounts use in each stage", _channels_section),
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
          run_name: str, source: str | None = None) -> str:
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
        + (f" · warehouse {html.escape(source)}" if source else "") +
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
                 run_name: str | None = None, static_images: bool = True,
                 source: str | None = None) -> Path:
    """Write reports/<run>/index.html (+ CSV lists, PNGs) and refresh reports/latest/.
    `source` names the warehouse in the header: two tabs of two warehouses' reports are
    told apart at a glance."""
    d = report_data(con)
    run_name = run_name or dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(reports_dir) / run_name
    out.mkdir(parents=True, exist_ok=True)
    _write_lists(d, out)
    drawn = drawn_charts(d)
    issues = [*run_issues(con), *_chart_issues(drawn)]
    index = out / "index.html"
    index.write_text(_page(d, drawn, issues, run_name, source), encoding="utf-8")
    if static_images:
        write_static_images({c.chart.name: c.figure for c in drawn if c.figure is not None},
                            out)
    _refresh_latest(out, reports_dir)
    return index
