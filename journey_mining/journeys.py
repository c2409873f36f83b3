"""Journey headline numbers, read from the marts (defined once, in sql/marts/journey_kpis.sql)."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from journey_mining.errors import NoDataError
from journey_mining.sql_models import read_sql
from journey_mining.warehouse import run_issues

__all__ = [
    "FunnelStage",
    "JourneySummary",
    "journey_summary",
    "record_kpi_history",
    "require_touchpoints",
    "unmapped_activities",
    "run_tables",
]


@dataclass(frozen=True)
class FunnelStage:
    """One row of the funnel as the summary prints it: `reached`, `conversion_to_next` and
    `dropped` are the funnel's (stage_funnel; None after the first client stage, where the
    ladder is no funnel), `ever_in` and `now` the accounts whose inferred stage was or is
    this one (stage_occupancy, the one "accounts in a stage" figure)."""
    stage: str
    reached: int | None
    conversion_to_next: float | None
    dropped: int | None
    ever_in: int = 0
    now: int = 0


@dataclass(frozen=True)
class JourneySummary:
    """The short summary `make demo` prints: one build's headline numbers."""

    as_of: object
    accounts: int
    accounts_with_touchpoints: int
    touchpoints: int
    resolved_share: float | None
    dropped_accounts: int
    re_engagement_rate: float | None
    re_engaged_accounts: int
    first_engagement_ended: int
    funnel: tuple[FunnelStage, ...]
    paths: dict | None = None  # from the mining step, when it has run
    issues: tuple[tuple[str, str], ...] = ()  # optional analyses that failed in this build
    stages: dict | None = None  # how stage states were inferred (stage_inference_parameters)
    purchases: bool = False  # instant engagements: a purchase log, said in purchase words
    churn: dict | None = None  # the churn step's last run (model_runs, churn_scores)

    def to_text(self) -> str:
        """The summary as the lines `journey run` prints."""
        pct = lambda x: "n/a" if x is None else f"{x:.1%}"  # noqa: E731
        lines = [
            f"Journeys as of {self.as_of:%Y-%m-%d}: {self.accounts:,} accounts "
            f"({self.accounts_with_touchpoints:,} with touchpoints), {self.touchpoints:,} "
            f"touchpoints, {pct(self.resolved_share)} tied to an account",
            f"{'stage':<20}{'reached':>9}{'to next':>9}{'dropped':>9}{'ever in':>9}{'now':>7}",
        ]
        count = lambda n: "" if n is None else f"{n:,}"  # noqa: E731
        for s in self.funnel:
            conversion = "" if s.conversion_to_next is None else pct(s.conversion_to_next)
            lines.append(f"{s.stage:<20}{count(s.reached):>9}{conversion:>9}"
                         f"{count(s.dropped):>9}{s.ever_in:>9,}{s.now:>7,}")
        lines.append("reached: accounts whose furthest stage is this one or later (the "
                     "funnel, to client); ever in / now: accounts whose inferred stage was / "
                     "is this one")
        came_back = (
            f"Repeat purchase: {pct(self.re_engagement_rate)} ({self.re_engaged_accounts:,} "
            f"of {self.first_engagement_ended:,} customers bought again)"
            if self.purchases else
            f"Re-engagement: {pct(self.re_engagement_rate)} ({self.re_engaged_accounts:,} of "
            f"{self.first_engagement_ended:,} accounts whose first engagement ended came back)")
        lines.append(f"Dropped: {self.dropped_accounts:,} account"
                     f"{'' if self.dropped_accounts == 1 else 's'}. {came_back}")
        if self.paths:
            p = self.paths
            lines.append(
                f"Paths: {pct(p['linear_share'])} of journeys follow the ladder; "
                f"{p['variants']:,} distinct stage paths, the 10 most common cover "
                f"{pct(p['top_10_coverage'])}. Reached client: {pct(p['conversion_linear'])} "
                f"of linear vs {pct(p['conversion_non_linear'])} of non-linear journeys"
            )
        if self.stages:
            st = self.stages
            line = (f"Stage states ({st['method']}, renewal cycles "
                    f"{'on' if st['renewals'] else 'off'}): {pct(st['unsure_share'])} of "
                    f"{st['inferred']:,} inferred stays rest on little or mixed evidence "
                    f"(confidence below 60 %)")
            if st["method"] == "evidence":
                line += ("; measured as background, not evidence of their stage: "
                         + (", ".join(st["background"]) or "none"))
            lines.append(line)
        if self.churn:
            lines.append(self._churn_line())
        if self.issues:
            lines.append(f"Not in this run ({len(self.issues)} optional "
                         f"analys{'is' if len(self.issues) == 1 else 'es'} failed; "
                         "everything else is complete):")
            lines.extend(f"  - {step}: {problem}" for step, problem in self.issues)
        return "\n".join(lines)


    def _churn_line(self) -> str:
        c = self.churn
        who = "customers" if self.purchases else "clients"
        if c["status"] != "trained":
            return (f"Churn risk: not scored ({c['reason']}); {c['n_scored']:,} {who} are "
                    "listed with the signals seen, without a probability or band")
        model = "BG/NBD" if c["model"] == "bg_nbd" else "logistic regression"
        kept = (f", the fit of {c['fitted_at']:%d %b %Y}" if c.get("fitted_at") is not None
                and c["fitted_at"] != c["trained_at"] else "")
        return (f"Churn risk ({model}{kept}, next {c['horizon_days']} days): {c['high']:,} of "
                f"{c['n_scored']:,} {who} at high risk; {c['verdict']}")


def _churn(con: duckdb.DuckDBPyConnection) -> dict | None:
    """The last churn run in the summary's words (None when the step has not run)."""
    if not {"model_runs", "churn_scores"} <= _table_names(con):
        return None
    from journey_mining.churn import ranking_verdict

    runs = con.sql("SELECT * FROM model_runs ORDER BY trained_at DESC LIMIT 1").df()
    if not len(runs):
        return None
    run = runs.iloc[0]
    high = con.execute("SELECT count(*) FILTER (WHERE risk_band = 'high') FROM churn_scores"
                       ).fetchall()[0][0]
    return {"status": run["status"], "reason": run["reason"], "model": run["model"],
            "n_scored": int(run["n_scored"]), "high": int(high),
            "horizon_days": int(run["horizon_days"]), "verdict": ranking_verdict(run),
            "trained_at": run["trained_at"],
            "fitted_at": run["fitted_at"] if "fitted_at" in run and pd.notna(run["fitted_at"])
            else None}


def _table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The tables and views the warehouse holds (optional steps' tables may be absent;
    with engine.kind spark the models are views over the build's Parquet)."""
    return {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() UNION "
        "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}


def journey_summary(con: duckdb.DuckDBPyConnection) -> JourneySummary:
    """Headline numbers and the funnel of the last build."""
    kpis = con.execute(
        "SELECT as_of, accounts, accounts_with_touchpoints, touchpoints, resolved_share, "
        "dropped_accounts, re_engagement_rate, re_engaged_accounts, first_engagement_ended "
        "FROM journey_kpis"
    ).fetchall()[0]
    funnel = tuple(FunnelStage(*row) for row in con.execute(read_sql("analysis/summary_funnel")
                                                             ).fetchall())
    instant = con.execute("SELECT instant_engagements FROM run_parameters").fetchall()[0][0]
    return JourneySummary(*kpis, funnel=funnel, paths=_paths(con),
                          issues=tuple(run_issues(con)), stages=_stages(con),
                          purchases=bool(instant), churn=_churn(con))


def _stages(con: duckdb.DuckDBPyConnection) -> dict | None:
    """The inference method, the activities it measured as background and how sure it is."""
    tables = _table_names(con)
    if not {"stage_inference_parameters", "stage_occupancy", "account_stage_history"} <= tables:
        return None
    method = con.execute("SELECT any_value(method) FROM account_stage_history "
                         "WHERE method NOT IN ('engagement', 'signal', 'observed')"
                         ).fetchall()[0][0]
    if method is None:
        return None
    background = [r[0] for r in con.execute(
        "SELECT activity FROM stage_inference_parameters WHERE parameter = 'is_evidence' "
        "AND value = 0 AND stage <> (SELECT stage FROM stage_ladder WHERE stage_order = "
        "(SELECT min(stage_order) FROM stage_ladder)) ORDER BY activity").fetchall()]
    inferred, unsure = con.execute("SELECT sum(inferred_stays), sum(unsure_stays) "
                                   "FROM stage_occupancy").fetchall()[0]
    renewals = con.execute("SELECT coalesce(max(value), 0) FROM stage_inference_parameters "
                           "WHERE parameter = 'renewal_cycles'").fetchall()[0][0] > 0
    return {"method": method, "background": background, "inferred": int(inferred or 0),
            "unsure_share": (unsure / inferred) if inferred else None, "renewals": renewals}


def _paths(con: duckdb.DuckDBPyConnection) -> dict | None:
    tables = _table_names(con)
    if not {"conformance_summary", "path_variants"} <= tables:
        return None
    linear, conv_linear, conv_other = con.execute(
        "SELECT linear_share, client_conversion_linear, client_conversion_non_linear "
        "FROM conformance_summary").fetchall()[0]
    variants, top = con.execute(
        "SELECT count(*), sum(coverage) FILTER (WHERE variant_rank <= 10) "
        "FROM path_variants WHERE level = 'stage'").fetchall()[0]
    return {"linear_share": linear, "conversion_linear": conv_linear,
            "conversion_non_linear": conv_other, "variants": variants, "top_10_coverage": top}


def require_touchpoints(con: duckdb.DuckDBPyConnection) -> int:
    """Raise a clear `NoDataError` when the build has no touchpoint up to its as-of date.

    Every analysis after the build needs journeys; an empty folder on a new
    warehouse, or an as-of before the first event, is said in one sentence
    instead of failing somewhere inside pandas or pm4py. Returns the count.
    """
    as_of, in_range, total, first, last = con.execute(
        """SELECT (SELECT as_of FROM run_parameters),
                  count(*) FILTER (WHERE occurred_at <= (SELECT as_of FROM run_parameters)),
                  count(*), min(occurred_at), max(occurred_at)
           FROM int_touchpoints_unioned""").fetchall()[0]
    if in_range:
        return in_range
    if not total:
        from journey_mining.sources import SOURCES

        events = [n for n, spec in SOURCES.items() if "occurred_at" in spec.required]
        raise NoDataError("the warehouse holds no touchpoints yet: the input folder had no "
                          f"rows of {', '.join(events[:-1])} or {events[-1]}")
    raise NoDataError(f"no touchpoint up to the as-of date {as_of:%Y-%m-%d}: the warehouse "
                      f"holds {total:,} from {first:%Y-%m-%d} to {last:%Y-%m-%d}; "
                      "choose a later --as-of")


def unmapped_activities(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    """Activities of the journeys that signal no stage and play no other part (not a
    negative signal, not an engagement start, end or cancel), with their touchpoints.

    A CRM type renamed in the source (`meeting` -> `zoom_meeting`) lands here: its
    touchpoints stay in the journeys but move no account, which a user must be told.
    """
    return con.execute(
        """SELECT activity, touchpoints FROM activity_stages
           WHERE stage IS NULL
             AND activity NOT IN (SELECT activity FROM negative_signals)
             AND activity NOT IN (SELECT activity FROM engagement_rules)
           ORDER BY touchpoints DESC, activity""").fetchall()


def record_kpi_history(con: duckdb.DuckDBPyConnection, failed_checks: int = 0) -> None:
    """Append this build's headline numbers to `kpi_history` (one row per build), so a
    scheduled run, or a backfill at another as-of, adds a point to the trend."""
    from journey_mining.warehouse import store_frame

    tables = _table_names(con)
    status, auc = None, None
    if "model_runs" in tables:
        rows = con.execute("SELECT status, roc_auc FROM model_runs "
                           "ORDER BY trained_at DESC LIMIT 1").fetchall()
        status, auc = rows[0] if rows else (None, None)

    frame = con.execute(read_sql("analysis/kpi_history"), {
        "failed_checks": int(failed_checks), "run_issues": len(run_issues(con)),
        "churn_status": status, "churn_roc_auc": auc}).df()
    store_frame(con, "kpi_history", frame, append=True)


def run_tables(con: duckdb.DuckDBPyConnection) -> dict:
    """The small tables a scheduled run publishes (Prefect artifacts): the funnel, the
    data quality of the last load and build, and the clients most at risk."""
    tables = _table_names(con)
    funnel = con.execute(
        "SELECT stage, reached, round(conversion_to_next, 3) AS conversion_to_next, dropped "
        "FROM stage_funnel ORDER BY stage_order").df()
    quality = con.execute("""
        SELECT f.source, sum(f.rows_read) AS rows_read, sum(f.rows_loaded) AS rows_loaded,
               sum(f.rows_duplicate) AS rows_duplicate, sum(f.rows_rejected) AS rows_rejected,
               round(sum(f.rows_rejected) / nullif(sum(f.rows_read), 0), 4) AS rejected_share
        FROM load_files f WHERE f.load_id = (SELECT max(load_id) FROM loads)
        GROUP BY f.source ORDER BY f.source""").df()
    top = (con.execute(
        "SELECT account_id, round(churn_probability, 3) AS churn_probability, risk_band, "
        "top_factors FROM churn_scores ORDER BY churn_probability DESC LIMIT 20").df()
        if "churn_scores" in tables else None)
    return {"funnel": funnel, "data_quality": quality, "churn_top": top}
