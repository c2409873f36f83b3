"""The `evidence` method of stage inference: the ladder read from evidence, where what
counts as evidence is measured on the user's own data.

Intuition
---------
A touchpoint signals a stage, but not every signal is evidence of it: newsletters
are opened and blog pages read in every stage, so an open is no step back from
evaluation, and a newsletter click no step up from awareness. Which activities
are evidence is measured, not assumed: an activity is *background* when accounts do it
outside its stage (before or above it) at least as often per day as in it, where
"in that stage" is told by the account's *other* activities, and it moves nobody;
otherwise it is *evidence*.

Reading one account's visits (touchpoints less than 30 minutes apart are one
visit, the web-analytics session convention) in time order:

* **Up** at the first visit with evidence of a higher stage. A jump of two
  stages is a skip, made only on positive evidence of the later stage and none
  of the one between. The move is tentative until a second visit with evidence of
  that stage or above confirms it; evidence of a lower stage first withdraws it
  (one look at the pricing page among white papers is no evaluation).
* **Staying** needs nothing: a quiet account stays where it is (dormant
  prospects do not walk down the ladder by their silence), and background
  signals never move it.
* **Down** at a visit with evidence of a lower stage: a content download after
  the sales meetings, a demo after a lost deal. Because only evidence counts,
  newsletters and blog reading never pull an account down.

Every stay carries `confidence`: the share of its evidence that points to its own
stage, counting one contrary signal more than seen (k / (n + 1): a stay resting on
one signal is a coin flip), 1 for an observed stage change.
The estimated parameters are returned for `stage_inference_parameters`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["VISIT_GAP", "evidence_stays", "informative_activities", "read_journeys"]

# The web-analytics convention for a session: touchpoints closer than this are one visit.
VISIT_GAP = pd.Timedelta(minutes=30)


def _visits(events: pd.DataFrame) -> pd.DataFrame:
    """One row per visit: account, start, highest evidence stage and when it was shown,
    the evidence of its first touchpoint."""
    new_visit = (events.account_id.ne(events.account_id.shift())
                 | (events.occurred_at - events.occurred_at.shift()).ge(VISIT_GAP))
    events = events.assign(visit=new_visit.cumsum())
    evidence = events.level.where(events.informative | events.observed)
    highest = evidence.groupby(events.visit).transform("max")
    visits = events.assign(evidence=evidence, pinned=events.level.where(events.observed),
                           opening=evidence.where(new_visit.to_numpy()),
                           # when the visit first showed its highest evidence
                           evidence_at=events.occurred_at.where(evidence == highest))
    return visits.groupby("visit", sort=True).agg(
        account_id=("account_id", "first"), at=("occurred_at", "first"),
        evidence=("evidence", "max"), evidence_at=("evidence_at", "min"),
        opening=("opening", "max"), pinned=("pinned", "max"),
        touchpoints=("occurred_at", "size")).reset_index(drop=True)


def read_journeys(visits: pd.DataFrame) -> pd.DataFrame:
    """The stays of each account (account_id, level, entered_at, visits, evidence,
    consistent); `level` is the stage's index on the pre-sale ladder (0 = the lowest)."""
    rows = []
    acc = visits.account_id.to_numpy()
    at = visits["at"].to_numpy()
    eat = visits["evidence_at"].to_numpy()
    ev = visits.evidence.to_numpy()
    opening = visits.opening.to_numpy()
    pinned = visits.pinned.to_numpy()
    n = len(visits)
    i = 0
    while i < n:
        j = i
        while j < n and acc[j] == acc[i]:
            j += 1
        rows.extend(_read_one(acc[i], at[i:j], eat[i:j], ev[i:j], opening[i:j],
                              pinned[i:j]))
        i = j
    return pd.DataFrame(rows, columns=["account_id", "level", "entered_at", "visits",
                                       "evidence", "consistent", "observed"])


def _read_one(account, at, eat, ev, opening, pinned):
    """One account's stays. A move up is tentative until a second visit with evidence of
    that stage or above confirms it; evidence of a lower stage first withdraws it (a
    prospect who looks at pricing once and goes on reading white papers never left
    consideration). A move up that nothing follows stands: a prospect often goes quiet
    right after one step up. A visit with evidence of a lower stage (evidence, not
    background) is a step back there; a lost deal is not needed. An observed stage change
    (`pinned`) puts the account in its stage, up or down, for certain."""
    # A journey starts in awareness unless its very first touchpoint is evidence of more
    # (reading pages before filling a form is being aware).
    level = 0 if np.isnan(opening[0]) else int(opening[0])
    stays = [[account, level, at[0], 0, 0, 0, False]]
    tentative = (0, 0) if level > 0 else None  # (stay index, level before)

    def withdraw():
        index, before = tentative
        if index == 0:
            stays[0][1] = before
        else:
            moved = stays.pop(index)
            # its visits stay with the stay before, its evidence counts against it
            stays[-1][3] += moved[3]
            stays[-1][4] += moved[4]
        return before

    for k in range(len(at)):
        stay = stays[-1]
        stay[3] += 1
        if not np.isnan(pinned[k]):
            e = int(pinned[k])
            tentative = None
            if e != level or not stay[6]:
                level = e
                stays.append([account, level, eat[k], 1, 0, 0, True])
                stay = stays[-1]
            stay[4] += 1
            stay[5] += 1
        elif not np.isnan(ev[k]):
            e = int(ev[k])
            if tentative is not None and e < level:
                level, tentative = withdraw(), None
                stay = stays[-1]
            elif tentative is not None:
                tentative = None  # confirmed
            if e != level:
                tentative = (len(stays), level) if e > level else None
                level = e
                stays.append([account, level, eat[k], 1, 0, 0, False])
                stay = stays[-1]
            stay[4] += 1
            stay[5] += int(e == level)
    return stays


def _first_times(events: pd.DataFrame, level: int) -> pd.DataFrame:
    """Per account the first time of a signal at `level` or above, the activity that gave
    it, and the first time by any other activity (so each activity can be left out)."""
    high = events[events.level >= level]
    firsts = (high.groupby(["account_id", "activity"]).occurred_at.min().reset_index()
              .sort_values(["account_id", "occurred_at"]))
    firsts["rank"] = firsts.groupby("account_id").cumcount()
    one = firsts[firsts["rank"] == 0].set_index("account_id")
    two = firsts[firsts["rank"] == 1].set_index("account_id")
    return pd.DataFrame({"first_at": one.occurred_at, "first_activity": one.activity,
                         "second_at": two.occurred_at.reindex(one.index)})


def _as_often_outside(n_in: int, n_out: int, days_in: float, days_out: float) -> bool:
    """Whether accounts do an activity outside its stage at least as often per day as in
    it. Decided only when there are enough occurrences for the comparison to mean
    something - at least 5 expected both in and outside the stage at equal rates
    (Cochran's rule for count comparisons); otherwise no, and the stage map's word
    stands (a small export keeps its stage map)."""
    if not _enough(n_in + n_out, days_in, days_out):
        return False
    return n_out / days_out >= n_in / days_in


def _enough(total: int, days_in: float, days_out: float) -> bool:
    """At least 5 occurrences expected both in and outside the stage at equal rates."""
    if total == 0 or days_in <= 0 or days_out <= 0:
        return False
    p_in = days_in / (days_in + days_out)
    return min(total * p_in, total * (1 - p_in)) >= 5


def _opens_stage(group: pd.DataFrame, others: pd.DataFrame, sales: pd.DataFrame,
                 usual) -> np.ndarray:
    """Per occurrence of an activity, whether it opened its stage.

    An entry signal (a proposal before the negotiation, a demo request before the
    meetings) comes first by nature: the last occurrence before another signal of the
    stage or above (or a sale), when at most a usual gap before it (the median gap
    between the stage's other signals), opened the stage and counts in it.
    """
    if pd.isna(usual):
        return np.zeros(len(group), dtype=bool)
    follows = pd.concat([others[["account_id", "occurred_at"]], sales]).sort_values(
        "occurred_at").rename(columns={"occurred_at": "next_at"})
    mine = group[["account_id", "occurred_at"]].reset_index().sort_values("occurred_at")
    nxt = pd.merge_asof(mine, follows, left_on="occurred_at", right_on="next_at",
                        by="account_id", direction="forward", allow_exact_matches=False)
    # only the last occurrence before the stage's other signals can have opened it
    last = ~nxt.duplicated(subset=["account_id", "next_at"], keep="last")
    opens = (((nxt.next_at - nxt.occurred_at) <= usual) & last).set_axis(nxt["index"])
    return opens.reindex(group.index).fillna(False).to_numpy(dtype=bool)


def informative_activities(events: pd.DataFrame,
                           sold_at: pd.Series | None = None) -> pd.DataFrame:
    """Per activity its rate per account-day before, in and after its own stage.

    Where an account is, for this measurement, comes from the *other* activities: the
    account is in stage s from its first signal of s or above by another activity until
    its first signal above s (or, for an account that never went above, until just before
    its last touch: the last touch of a stalled journey is where it stopped, so it counts
    with the signals after the stage). An activity is background when accounts do it
    outside its stage (before and above it, together) at least as often per day as in it:
    newsletter clicks go on whatever the stage and say nothing about it. Otherwise it is
    evidence; an activity too rare for the comparison to mean anything keeps the stage
    map's word (evidence); so does an entry signal, counted in its stage
    when it opens it (see below). The lowest stage's signals are background by definition;
    `sold_at` (account -> first sale) lets a sale follow a decision signal.
    """
    span = events.groupby("account_id").occurred_at.agg(["min", "max"])
    end = span["max"]
    sales = (pd.DataFrame({"account_id": sold_at.index, "occurred_at": sold_at.to_numpy()})
             .astype({"occurred_at": events.occurred_at.dtype})
             if sold_at is not None and len(sold_at) else
             pd.DataFrame({"account_id": pd.Series(dtype=events.account_id.dtype),
                           "occurred_at": pd.Series(dtype=events.occurred_at.dtype)}))
    out = []
    firsts: dict[int, pd.DataFrame] = {}  # per level, computed once
    for (activity, own), group in events.groupby(["activity", "level"]):
        own = int(own)
        if own == 0:
            out.append((activity, own, np.nan, np.nan, np.nan, False, False))
            continue
        others = events[(events.activity != activity) & (events.level >= own)]
        if own not in firsts:
            firsts[own] = _first_times(events, own)
        f = firsts[own]
        # the first signal of the stage or above by another activity (leave-one-out)
        here = f.first_at.where(f.first_activity != activity, f.second_at)
        usual = others.groupby("account_id").occurred_at.diff().median()
        if own + 1 not in firsts:
            firsts[own + 1] = _first_times(events, own + 1)
        above = firsts[own + 1].first_at
        start = here.reindex(span.index)
        stop = above.reindex(span.index)
        t0, t1 = span["min"], end
        enter = start.fillna(t1).clip(lower=t0)
        leave = stop.fillna(t1).clip(lower=enter)

        def days(a, b):
            return float(((b - a).dt.total_seconds() / 86400).clip(lower=0).sum())

        # A journey's first touch opens the observation, so it is certain to be there
        # whatever it is: it is not counted (else every entry signal that starts
        # journeys, such as a form fill, would look as common before its stage as in it).
        group = group[group.occurred_at > t0.reindex(group.account_id).to_numpy()]
        at = group.occurred_at
        acc = group.account_id
        e, lv = enter.reindex(acc).to_numpy(), leave.reindex(acc).to_numpy()
        opens = _opens_stage(group, others, sales, usual)
        early = at.to_numpy() < e
        before = int((early & ~opens).sum())
        inside = int(((~early & (at.to_numpy() < lv)) | (early & opens)).sum())
        # What a stalled journey ends on counts against the activity: an account that
        # never went above the stage is in it until its last touch, and that last touch,
        # if it is this activity, is where the journey stopped, not what moved it (stalled
        # prospects' last touch is often a newsletter click).
        after = len(group) - before - inside
        exposure = (days(t0, enter), days(enter, leave), days(leave, t1))
        rates = [n / d if d > 0 else 0.0 for n, d in zip((before, inside, after), exposure,
                                                          strict=True)]
        background = _as_often_outside(inside, before + after, exposure[1],
                                       exposure[0] + exposure[2])
        measured = _enough(inside + before + after, exposure[1], exposure[0] + exposure[2])
        out.append((activity, own, *rates, not background, measured))
    return pd.DataFrame(out, columns=["activity", "level", "rate_before", "rate_in_stage",
                                      "rate_above", "informative", "measured"])


def evidence_stays(events: pd.DataFrame, ladder: tuple[str, ...],
                   sold_at: pd.Series | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pre-sale stays and the parameters estimated on the way.

    events: account_id, occurred_at, activity, stage, in event order; optionally
    observed (the touchpoint is a recorded stage change: it pins the stage).
    Returns (stays with stage, entered_at, confidence, evidence; parameters).
    """
    events = events.assign(level=events.stage.map({s: i for i, s in enumerate(ladder)}))
    observed = (events.observed.fillna(False).astype(bool) if "observed" in events
                else pd.Series(False, index=events.index))
    events = events.assign(observed=observed)
    # 1. which activities are evidence of their stage
    activities = informative_activities(events, sold_at)
    informative = set(activities.activity[activities.informative])
    # 2. read the journeys with evidence only
    events = events.assign(informative=events.activity.isin(informative))
    stays = read_journeys(_visits(events))
    stays = stays[stays.visits > 0] if len(stays) else stays
    # How sure: the share of the stay's evidence that points to its stage, counting one
    # contrary signal more than seen (a stay on one signal is a coin flip, 0.5; on two,
    # 0.67; on five, 0.83; a withdrawn step up counts against the stay it left). Awareness
    # has no evidence of its own: its visits count. An observed stage change is a fact: 1.
    confidence = np.where(stays.observed, 1.0,
                          np.where(stays.level == 0, stays.visits / (stays.visits + 1),
                                   stays.consistent / (stays.evidence + 1)))
    stays = stays.assign(stage=[ladder[int(v)] for v in stays.level],
                         posterior=confidence)
    parameters = pd.concat([
        pd.DataFrame({"parameter": "rate_before_stage_per_day",
                      "stage": [ladder[int(v)] for v in activities.level],
                      "activity": activities.activity, "value": activities.rate_before}),
        pd.DataFrame({"parameter": "evidence_rate_in_stage_per_day",
                      "stage": [ladder[int(v)] for v in activities.level],
                      "activity": activities.activity, "value": activities.rate_in_stage}),
        pd.DataFrame({"parameter": "evidence_rate_above_stage_per_day",
                      "stage": [ladder[int(v)] for v in activities.level],
                      "activity": activities.activity, "value": activities.rate_above}),
        pd.DataFrame({"parameter": "is_evidence",
                      "stage": [ladder[int(v)] for v in activities.level],
                      "activity": activities.activity,
                      "value": activities.informative.astype(float)}),
        pd.DataFrame({"parameter": "evidence_measured",
                      "stage": [ladder[int(v)] for v in activities.level],
                      "activity": activities.activity,
                      "value": activities.measured.astype(float)}),
    ], ignore_index=True)
    return stays[["account_id", "stage", "entered_at", "posterior", "evidence",
                  "observed"]], parameters


def renewal_stays(gaps: pd.DataFrame, events: pd.DataFrame, sales_cycle_days: float | None,
                  ladder: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Renewal cycles (contract v3, section 5): between engagements, an account that
    evaluates and decides on a new project is in evaluation / decision again before the
    next engagement starts.

    gaps: account_id, ended_at (the engagement's end), next_start (or NaT), gap_end (the
    next start, a cancellation or the as-of date). events: the evaluation and decision
    signals of the accounts (account_id, occurred_at, activity, stage).

    Which activities are renewal evidence is measured on the gaps: clients browse the
    pricing page between engagements whether or not they come back, so an activity counts
    only unless the data show it is at least as common far from a new engagement (more
    than one sales cycle before it, or in gaps that never end in one) as within one sales
    cycle before it. The sales cycle is this data's: the 90th percentile of the time from
    a prospect's first evaluation to its first sale. A renewal starts at the first
    evidence that is followed, within a sales cycle, by a decision signal or the next
    engagement.
    """
    empty = pd.DataFrame(columns=["account_id", "stage", "entered_at", "posterior",
                                  "evidence"])
    if not sales_cycle_days or gaps.empty or events.empty:
        return empty, pd.DataFrame(columns=["parameter", "stage", "activity", "value"])
    cycle = pd.Timedelta(days=sales_cycle_days)
    located = events.merge(gaps, on="account_id")
    located = located[(located.occurred_at > located.ended_at)
                      & (located.occurred_at < located.gap_end)]
    near = located.next_start.notna() & (located.occurred_at >= located.next_start - cycle)
    gap_days = (gaps.gap_end - gaps.ended_at).dt.total_seconds() / 86400
    near_days = np.where(gaps.next_start.notna(), np.minimum(gap_days, sales_cycle_days), 0)
    d_near, d_far = float(near_days.sum()), float((gap_days - near_days).sum())
    rows = []
    for activity, group in located.groupby("activity"):
        n_near = int(near[group.index].sum())
        n_far = len(group) - n_near
        rows.append((activity, group.stage.iloc[0],
                     n_near / d_near if d_near else 0.0, n_far / d_far if d_far else 0.0,
                     not _as_often_outside(n_near, n_far, d_near, d_far)))
    tested = pd.DataFrame(rows, columns=["activity", "stage", "rate_near", "rate_far",
                                         "informative"])
    evidence = located[located.activity.isin(set(tested.activity[tested.informative]))]
    stays = []
    decision = ladder[ladder.index("decision")]
    for _, gap in evidence.groupby(["account_id", "ended_at"]):
        gap = gap.sort_values("occurred_at")
        times = gap.occurred_at.to_numpy()
        is_decision = (gap.stage == decision).to_numpy()
        next_start = gap.next_start.iloc[0]
        for k in range(len(gap)):
            limit = times[k] + cycle.to_timedelta64()
            later_decision = is_decision[k + 1:] & (times[k + 1:] <= limit)
            closes = pd.notna(next_start) and next_start.to_datetime64() <= limit
            if is_decision[k] or later_decision.any() or closes:
                account = gap.account_id.iloc[0]
                first_stage = decision if is_decision[k] else gap.stage.iloc[k]
                n_evidence = len(gap) - k
                stays.append((account, first_stage, gap.occurred_at.iloc[k], n_evidence))
                if not is_decision[k] and is_decision[k:].any():
                    at = gap.occurred_at.iloc[k + int(np.argmax(is_decision[k:]))]
                    stays.append((account, decision, at, int(is_decision[k:].sum())))
                break
    frame = pd.DataFrame(stays, columns=["account_id", "stage", "entered_at", "evidence"])
    frame["posterior"] = frame.evidence / (frame.evidence + 1)
    parameters = pd.concat([
        pd.DataFrame({"parameter": "renewal_rate_within_a_sales_cycle_per_day",
                      "stage": tested.stage, "activity": tested.activity,
                      "value": tested.rate_near}),
        pd.DataFrame({"parameter": "renewal_rate_elsewhere_per_day", "stage": tested.stage,
                      "activity": tested.activity, "value": tested.rate_far}),
        pd.DataFrame({"parameter": "is_renewal_evidence", "stage": tested.stage,
                      "activity": tested.activity,
                      "value": tested.informative.astype(float)}),
        pd.DataFrame({"parameter": ["sales_cycle_days"], "stage": [None], "activity": [None],
                      "value": [sales_cycle_days]}),
    ], ignore_index=True)
    return (frame[["account_id", "stage", "entered_at", "posterior", "evidence"]]
            if len(frame) else empty), parameters
