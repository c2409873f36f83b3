"""Every chart of the report, declared once: `CHARTS`.

A chart is one `Chart` entry (its name, the section it stands in, how it is built
from `ReportData`, when there is nothing to show and what to say then, whether it
is exported as a PNG for slide decks) plus its pure builder in `figures`. The
writer (`html.write_report`) builds, places and exports charts from this list
only, so adding a chart is one entry here and its test, and no chart can be drawn
but left out of the page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import plotly.graph_objects as go

from journey_mining.reports import figures as f
from journey_mining.reports.data import ReportData
from journey_mining.reports.format import MIN_COHORT

__all__ = ["CHARTS", "STATIC_IMAGES", "TOP_PATHS", "Chart", "static_images"]

# The paths chart and table show the same top paths, so their "other" shares agree.
TOP_PATHS = 10


@dataclass(frozen=True)
class Chart:
    """One chart: where it stands, how it is drawn, and what is said in its place when
    there is nothing to draw.

    `empty_when(d)` true: the page shows `empty_sentence` instead of an empty frame.
    `when(d)` false: the chart does not belong in this report at all (no note either),
    e.g. the model-quality chart when no churn model was trained.
    """

    name: str
    section: str
    build: Callable[[ReportData], go.Figure]
    empty_when: Callable[[ReportData], bool] | None
    empty_sentence: str | None
    static_image: bool = False
    when: Callable[[ReportData], bool] | None = None

    def __post_init__(self) -> None:
        # A predicate without its sentence would leave a blank where the chart was.
        if (self.empty_when is None) != (self.empty_sentence is None):
            raise ValueError(f"chart {self.name}: empty_when and empty_sentence go together")

    def belongs(self, d: ReportData) -> bool:
        """Whether this report shows the chart (or a note in its place) at all."""
        return self.when is None or bool(self.when(d))


def _attribution_empty(d: ReportData) -> bool:
    return d.attribution is None or d.attribution[
        (d.attribution.goal == "client")
        & (d.attribution.dimension == "marketing_channel")].empty


def _trained(d: ReportData) -> bool:
    return d.model_run is not None and d.model_run.status == "trained"


# In the order they stand in the report.
CHARTS: tuple[Chart, ...] = (
    Chart("funnel", "funnel", lambda d: f.build_funnel_figure(d.funnel),
          lambda d: d.funnel.reached.sum() == 0,
          "No account has a staged touchpoint yet.", static_image=True),
    Chart("dropoff", "funnel", lambda d: f.build_dropoff_figure(d.funnel),
          lambda d: d.funnel.dropped.sum() == 0,
          "No account has gone quiet before buying."),
    Chart("process-map", "map",
          lambda d: f.build_process_map_figure(d.stage_transitions, d.occupancy),
          lambda d: d.stage_transitions.empty,
          "No account has moved from one stage to another yet.", static_image=True),
    Chart("activity-map", "map",
          lambda d: f.build_activity_map_figure(d.activity_transitions, d.activity_stages),
          lambda d: d.activity_transitions.empty,
          "No account has two touchpoints in a row yet."),
    Chart("paths-sankey", "paths", lambda d: f.build_sankey_figure(d.variants, TOP_PATHS),
          lambda d: d.variants.empty or (d.variants.length <= 1).all(),
          "Every stage path is a single stage: no flow to draw yet.", static_image=True),
    Chart("linearity", "linearity", lambda d: f.build_linearity_figure(d.conformance),
          None, None),
    Chart("cohorts", "cohorts", lambda d: f.build_cohort_figure(d.cohorts),
          lambda d: (d.cohorts.accounts >= MIN_COHORT).sum() == 0,
          f"No monthly cohort has {MIN_COHORT} accounts yet, so no cohort conversion rate "
          "is shown."),
    Chart("segments", "cohorts", lambda d: f.build_segment_figure(d.segments),
          lambda d: (d.segments.accounts >= MIN_COHORT).sum() < 2,
          f"Fewer than two industries with {MIN_COHORT} accounts: nothing to compare."),
    Chart("channel-mix", "channels", lambda d: f.build_channel_mix_figure(d.channel_mix),
          lambda d: d.channel_mix.empty, "No staged touchpoints yet.", static_image=True),
    Chart("reengagement-curve", "reengagement",
          lambda d: f.build_reengagement_curve_figure(d.curves, purchases=d.purchases),
          lambda d: d.curves.empty or d.gaps.empty,
          "No engagement has ended yet, so nobody can have come back.", static_image=True),
    Chart("gap-days", "reengagement", lambda d: f.build_gap_figure(d.gaps),
          lambda d: d.gaps.empty, "No engagement has ended yet: no gaps to show."),
    Chart("lifecycle", "reengagement", lambda d: f.build_lifecycle_figure(d.lifecycle),
          lambda d: d.lifecycle.empty, "No clients yet: no lifecycle to show."),
    Chart("gap-lift", "reengagement", lambda d: f.build_lift_figure(d.lift),
          lambda d: d.lift[~d.lift.defines_return].empty,
          "Too few ended engagements to compare what returning accounts did in the gap."),
    Chart("drivers", "drivers", lambda d: f.build_drivers_figure(d.drivers),
          lambda d: d.drivers is None or not d.drivers.significant.any(),
          "No touchpoint or buying role clearly goes with moving on yet (or the drivers "
          "analysis did not run)."),
    Chart("attribution", "attribution", lambda d: f.build_attribution_figure(d.attribution),
          _attribution_empty,
          "No client reached after a touchpoint yet: nothing to attribute."),
    Chart("representatives", "representatives",
          lambda d: f.build_representatives_figure(d.representatives),
          lambda d: d.representatives is None or not (d.representatives.level == "stage").any(),
          "Too few distinct stage paths to summarise."),
    Chart("model-quality", "churn", lambda d: f.build_model_quality_figure(d.model_run),
          None, None, when=_trained),
    Chart("reliability", "churn", lambda d: f.build_reliability_figure(d.model_run),
          None, None, when=lambda d: _trained(d) and isinstance(
              d.model_run.get("reliability"), str)),
    Chart("trend", "trend", lambda d: f.build_trend_figure(d.history),
          lambda d: d.history is None or len(d.history) < 2,
          "One as-of date so far: the trend starts with the next build at another date (a "
          "scheduled run, or a backfill with --as-of)."),
    Chart("resolution", "quality", lambda d: f.build_quality_figure(d.resolution),
          lambda d: d.resolution.empty, "No touchpoints loaded yet."),
)


def static_images(charts: Iterable[Chart]) -> tuple[str, ...]:
    """The names of the charts exported as PNGs, in report order (read at write time,
    so a chart added to the registry is exported without another list to edit)."""
    return tuple(c.name for c in charts if c.static_image)


STATIC_IMAGES = static_images(CHARTS)
