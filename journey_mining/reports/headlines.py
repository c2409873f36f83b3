"""The sentences at the top of each section: plain words a reader acts on.

Each takes the report's data (marts read once, `ReportData`) and says what it
shows, or, where something cannot be measured yet, why.
"""

from __future__ import annotations

import pandas as pd

from journey_mining.churn import ranking_verdict
from journey_mining.reports.data import ReportData
from journey_mining.reports.figures import channel_words, driver_words, touchpoint_words
from journey_mining.reports.format import FUNNEL, LABEL, missing, pct, points

__all__ = ["headlines"]

def headlines(d: ReportData) -> dict[str, str]:
    """One sentence or two per section, in words a reader acts on, for any amount of data:
    where something cannot be measured yet, the sentence says why."""
    sentences = {
        "funnel": lambda: _funnel_sentence(d), "map": lambda: _map_sentence(d),
        "paths": lambda: _paths_sentence(d.variants), "linearity": lambda: _linearity_sentence(d),
        "cohorts": lambda: _cohort_sentence(d.cohorts, d.segments),
        "channels": lambda: _channel_sentence(d.channel_mix),
        "reengagement": lambda: _reengagement_sentence(d), "churn": lambda: _churn_sentence(d),
        "advocacy": lambda: _advocacy_sentence(d),
        "drivers": lambda: _drivers_sentence(d.drivers),
        "attribution": lambda: _attribution_sentence(d.attribution),
        "representatives": lambda: _representatives_sentence(d.representatives),
        "trend": lambda: _trend_sentence(d.history), "quality": lambda: _quality_sentence(d)}
    said = {}
    for section, sentence in sentences.items():
        try:
            said[section] = sentence()
        except (AttributeError, TypeError) as exc:
            # Drawn from a table an optional step did not write: the section says so.
            if not (d.absent and "NoneType" in str(exc)):
                raise
    return said


def _trend_sentence(history: pd.DataFrame | None) -> str:
    if history is None or len(history) < 2:
        return "Each build at a new as-of date adds a point here."
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
    if missing(c.linear_share):
        return "No journeys to compare with the textbook ladder yet."
    text = f"{pct(c.linear_share)} of journeys follow the textbook ladder."
    if not missing(c.client_conversion_linear) and not missing(
            c.client_conversion_non_linear) and (c.client_conversion_linear
                                                 or c.client_conversion_non_linear):
        text += (f" {pct(c.client_conversion_linear)} of those reached client, against "
                 f"{pct(c.client_conversion_non_linear)} of the others; read this as "
                 "description, not cause.")
    return text


def _reengagement_sentence(d: ReportData) -> str:
    k = d.kpis
    if not k.first_engagement_ended:
        return "No engagement has ended yet, so nobody can have come back."
    text = (f"{int(k.re_engaged_accounts):,} of {int(k.first_engagement_ended):,} customers "
            f"bought again ({pct(k.re_engagement_rate)})." if d.purchases else
            f"{int(k.re_engaged_accounts):,} of {int(k.first_engagement_ended):,} accounts "
            f"whose first engagement ended started another (re-engagement rate "
            f"{pct(k.re_engagement_rate)}).")
    lift = d.lift[~d.lift.defines_return]
    top = lift[lift.significant & (lift.lift > 1)].head(1)
    if len(top):
        name = touchpoint_words(top.iloc[0].touchpoint)
        text += (f" Accounts with {name} in the gap came back x{top.iloc[0].lift:.1f} as "
                 "often as those without: an association (it can mark clients already on "
                 "their way back), worth testing, not proof that it brings them back.")
    return text


def _advocacy_sentence(d: ReportData) -> str:
    k = d.kpis
    if not k.advocates:
        return "No account has given a referral or a case study yet."
    return (f"{int(k.advocates):,} accounts gave a referral or a case study: "
            f"{int(k.advocates_between_engagements):,} while between engagements, "
            f"{int(k.former_clients_advocating):,} as former clients. Clients between "
            "engagements are the ones to ask.")


def _churn_sentence(d: ReportData) -> str:
    k = d.kpis
    if d.churn.empty:
        return ("No clients to score at the as-of date: nobody is a client now (none yet, "
                "or every client has left).")
    horizon = int(d.model_run.horizon_days) if d.model_run is not None else 180
    if d.model_run is not None and d.model_run.status != "trained" and d.purchases:
        return (f"{len(d.churn):,} customers. Their risk of making no purchase in the next "
                f"{horizon} days cannot be scored yet ({d.model_run.reason}): no "
                "probability or band is shown, only each customer's purchases so far.")
    if d.model_run is not None and d.model_run.status != "trained":
        return (f"{len(d.churn):,} clients now ({int(k.clients_ever):,} became clients; "
                f"{int(k.former_clients):,} of them have left). Too little history to score "
                f"the risk of leaving in the next {horizon} days ({d.model_run.reason}): no "
                "probability or band is shown, only the signals seen for each client.")
    high = int((d.churn.risk_band == 'high').sum())
    text = (f"{len(d.churn):,} customers are scored; {high:,} are at high risk of making no "
            f"purchase in the next {horizon} days." if d.purchases else
            f"{len(d.churn):,} clients now are scored ({int(k.clients_ever):,} became "
            f"clients; {int(k.former_clients):,} of them have left); "
            f"{high:,} are at high risk of leaving in the next {horizon} days.")
    return text + (_model_sentence(d.model_run, d.purchases) if d.model_run is not None
                   else "")


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
    """The channels accounts use while researching alone, and how much of evaluation and
    decision is the sales team's (channel_mix: by the stage the account was in)."""
    def shares(stages):
        part = mix[mix.stage.isin(stages)]
        total = part.touchpoints.sum()
        return (part.groupby("marketing_channel").touchpoints.sum() / total
                ).sort_values(ascending=False) if total else None

    early, late = shares(FUNNEL[:2]), shares(FUNNEL[2:4])
    parts = []
    if early is not None:
        top = [f"{channel_words(name)} ({pct(share)})" for name, share in early.head(3).items()]
        parts.append("While in awareness and consideration, accounts' touchpoints come most "
                     f"from {', '.join(top[:-1])} and {top[-1]}." if len(top) > 1 else
                     f"While in awareness and consideration, every touchpoint is {top[0]}.")
    if late is not None:
        parts.append(f"While in evaluation and decision, the most are "
                     f"{channel_words(late.index[0])} "
                     f"({pct(late.iloc[0])}).")
    return " ".join(parts) or "No touchpoints in a stage yet."


def _model_sentence(run: pd.Series, purchases: bool = False) -> str:
    if run.status != "trained":
        return f" Too little history to train a model ({run.reason}): no scores."
    model = ("BG/NBD, a model of repeat buying," if run.model == "bg_nbd"
             else "a logistic regression on the clients' signals,")
    compared = run.get("bgnbd_brier_compared")
    chosen = ""
    if compared is not None and not pd.isna(compared):
        chosen = (f" (chosen over the other model by Brier score "
                  f"{min(compared, run.logistic_brier_compared):.3f} vs "
                  f"{max(compared, run.logistic_brier_compared):.3f} on "
                  f"{int(run.compared_rows):,} backtest rows)")
    who = "customers" if purchases else "clients"
    verdict = ranking_verdict(run)
    return f" In the backtest {model}{chosen} ranks {who}: {verdict}."





def _drivers_sentence(drivers: pd.DataFrame | None) -> str:
    if drivers is None or drivers.empty:
        return ("Too few accounts in each stage to compare those with and without a "
                "touchpoint (at least 10 of each are needed).")
    found = drivers[drivers.significant & (drivers.odds_ratio > 1)]
    text = (f"{int(drivers.significant.sum())} of {len(drivers)} touchpoints, channels and "
            "buying roles "
            "tested clearly go with moving on or not (false discoveries controlled); the "
            "others cannot be told from chance.")
    if len(found):
        top = found.loc[(found.conversion_with - found.conversion_without).idxmax()]
        text += (f" Strongest: at {LABEL[top.from_stage]} → {LABEL[top.to_stage]}, accounts "
                 f"with {driver_words(top.driver, top.kind)} moved on "
                 f"{pct(top.conversion_with)} of the time against "
                 f"{pct(top.conversion_without)} without (odds x{top.odds_ratio:.1f}, "
                 "controlled for time in stage).")
    return text + " This is association, not proof of cause: test it before moving budget."


def _attribution_sentence(attribution: pd.DataFrame | None) -> str:
    if attribution is None or attribution.empty:
        return "No account has reached a stage after a touchpoint yet: nothing to attribute."
    dimension = ("marketing_channel" if (attribution.dimension == "marketing_channel").any()
                 else "channel")
    part = attribution[(attribution.goal == "client") & (attribution.dimension == dimension)]
    markov, last = part[part.model == "markov_1"], part[part.model == "last_touch"]
    if markov.empty or last.empty:
        return "Too few clients to attribute by channel yet."
    top = markov.loc[markov.share.idxmax()]
    text = (f"For reaching client, the data-driven model gives {top.value} "
            f"{pct(top.share)} of the credit ({pct(top.ci_low)} to {pct(top.ci_high)}).")
    last_share, markov_share = last.set_index("value").share, markov.set_index("value").share
    gap = (last_share - markov_share).dropna()
    if len(gap) and gap.max() > 0:
        over = gap.idxmax()
        text += (f" Last-touch reports give {over} {points(gap.max())} more than the "
                 f"journeys support ({pct(last_share[over])} vs {pct(markov_share[over])}).")
    uncertain = part[(part.model == "markov_1") & part.uncertain.fillna(False).astype(bool)]
    if len(uncertain):
        text += (f" {len(uncertain)} of {len(markov)} channels "
                 f"{'has' if len(uncertain) == 1 else 'have'} a removal effect whose "
                 "interval reaches zero: marked uncertain, not worth a budget decision.")
    if "journeys" in part and (part.journeys < part.population).any():
        row = part.iloc[0]
        text += (f" Measured on a repeatable sample of {row.journeys:,} of the "
                 f"{row.population:,} accounts that could become clients.")
    return text


def _representatives_sentence(representatives: pd.DataFrame | None) -> str:
    if representatives is None or representatives.empty:
        return "Too few distinct paths to summarise."
    stage = representatives[representatives.level == "stage"]
    if stage.empty:
        return "Too few distinct stage paths to summarise."
    tail = stage.loc[stage.tail_accounts.idxmax()]
    return (f"{len(stage)} real stage paths stand for every account; #{int(tail.representative)} "
            f"covers most of the long tail ({pct(tail.tail_coverage)} of accounts off the "
            f"ten most common paths), and {pct(tail.conversion)} of the accounts it stands "
            "for became clients.")
