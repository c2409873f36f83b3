"""Stage-state inference: the stage an account *is in*, from all its signals over time.

Intuition
---------
A touchpoint *signals* a stage (the stage map), but it is not the stage the
account is in: a prospect in evaluation who opens a newsletter has not stepped
back to awareness, and a client who meets sales is still a client. The labels of
the touchpoints zig-zag; the account's stage moves rarely. So the stage is a
hidden state and the touchpoints are noisy observations of it.

* **Before the first sale** (awareness, consideration, evaluation, decision)
  three methods. The default, `evidence` (stage_evidence.py), measures on the
  user's data which activities are evidence of their stage and which are
  background, then reads each account's visits: up on evidence (confirmed by a
  second visit), down on evidence of a lower stage, never moved by background.
  It is the best over the grid of generated worlds (stage_scorecard.py, README).
  `window` (the highest stage signalled within `window_days`, reset by a lost
  deal) and `hmm` (a hidden Markov model of funnel states over weekly periods,
  after Netzer, Lattin & Srinivasan 2008 and Abhishek, Fader & Hosanagar 2012,
  fitted by EM and decoded by Viterbi) are kept and scored beside it.
* **After the first sale** the phases come from the engagement rules, not from
  a model: client from an engagement's start, between engagements from its end
  by a project completion (advocacy from a referral or case study after that),
  former client from a cancellation, client again at the next start; between
  engagements, evaluation and decision signals open a renewal cycle (measured
  like the pre-sale evidence, stage_evidence.renewal_stays).

Accounts with client-side signals but no deal_won (history before the data)
follow those signals' stages from the first one (method `signal`).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from journey_mining.stages import STAGE_ORDER
from journey_mining.warehouse import store_frame, transaction

__all__ = [
    "BELOW_STAGE_SHARE",
    "FINISH_SQL",
    "METHODS",
    "POST_SALE_SQL",
    "PRE_SALE",
    "PRE_SALE_EVENTS_SQL",
    "WINDOW_SQL",
    "InferenceParams",
    "infer_stage_history",
    "scorecard",
    "signal_label_paths",
    "stage_paths",
    "store_stage_history",
]

PRE_SALE = ("awareness", "consideration", "evaluation", "decision")
METHODS = ("evidence", "hmm", "window")


@dataclass(frozen=True)
class InferenceParams:
    """How stages are inferred. Part of the build fingerprint (analysis parameters)."""

    method: str = "evidence"  # the best mean over the scorecard grid (README)
    period_days: int = 7
    window_days: int = 240
    fit_accounts: int = 2000  # EM runs on a random sample of this many accounts at most
    n_iter: int = 25
    random_state: int = 0


PRE_SALE_EVENTS_SQL = """
-- Pre-sale touchpoints: before the account's first engagement and before any
-- client-side signal; period_no counts periods from the account's first one.
with events as (
    select account_id, occurred_at, activity, stage, stage_order, event_order,
           exists (select 1 from observed_stage_changes o
                   where o.channel = t.channel and o.activity = t.activity) as observed
    from int_journey_events as t
    where stage in (select stage from stage_ladder where phase = 'prospect')
),
cut as (
    select account_id, min(occurred_at) as sold_at
    from (
        select account_id, started_at as occurred_at from engagements
        union all
        select account_id, occurred_at from int_journey_events
        where stage in (select stage from stage_ladder where phase = 'client')
    )
    group by account_id
),
pre as (
    select e.*
    from events e left join cut c using (account_id)
    where c.sold_at is null or e.occurred_at < c.sold_at
)
select account_id, occurred_at, activity, stage, stage_order, event_order, observed,
       cast(floor((epoch(occurred_at) - epoch(min(occurred_at) over (partition by account_id)))
                  / (86400.0 * $period_days)) as integer) as period_no,
       min(occurred_at) over (partition by account_id) as first_at
from pre
order by account_id, event_order
"""


def _materialise_pre_sale(con: duckdb.DuckDBPyConnection, period_days: int) -> int:
    """The pre-sale touchpoints as temp table _pre_sale (stays in DuckDB); returns rows."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _pre_sale AS {PRE_SALE_EVENTS_SQL}",
                {"period_days": period_days})
    return con.execute("SELECT count(*) FROM _pre_sale").fetchall()[0][0]


# -- the hidden Markov model -----------------------------------------------------------------

def _observations(events: pd.DataFrame, activities: list[str]):
    """Per account a (active periods x activities) count matrix, in time order.

    Only periods with a touchpoint are observations: silence is no evidence of a
    stage (newsletters go to everyone, and every stage has its quiet weeks), so a
    dormant prospect is not walked back down the ladder by its silence.
    Returns (accounts, X, lengths, periods) with `periods` the period_no of each row.
    """
    index = {a: i for i, a in enumerate(activities)}
    events = events.assign(_a=events.activity.map(index))
    counts = (events.groupby(["account_id", "period_no", "_a"]).size()
              .rename("n").reset_index())
    periods = counts[["account_id", "period_no"]].drop_duplicates().reset_index(drop=True)
    row = pd.Series(np.arange(len(periods)),
                    index=pd.MultiIndex.from_frame(periods))
    X = np.zeros((len(periods), len(activities)))
    rows = row.loc[list(zip(counts.account_id, counts.period_no, strict=True))].to_numpy()
    X[rows, counts._a.to_numpy()] = counts.n.to_numpy()
    lengths = periods.groupby("account_id", sort=False).size()
    return list(lengths.index), X, lengths.to_numpy(), periods.period_no.to_numpy()


def _initial_model(activity_stages: list[str], params: InferenceParams):
    """A PoissonHMM shaped like the ladder, emissions seeded from the stage map."""
    from hmmlearn.hmm import PoissonHMM

    n = len(PRE_SALE)
    transmat = np.zeros((n, n))
    for i in range(n):
        transmat[i, i] = 0.92
        if i + 1 < n:
            transmat[i, i + 1] = 0.05
        if i + 2 < n:
            transmat[i, i + 2] = 0.01
        if i > 0:
            transmat[i, i - 1] = 0.02
    transmat[3, 1] = 0.02  # a lost deal: back to consideration (or evaluation, above)
    transmat /= transmat.sum(axis=1, keepdims=True)
    lambdas = np.zeros((n, len(activity_stages)))
    for j, stage in enumerate(activity_stages):
        k = PRE_SALE.index(stage)
        for i in range(n):
            lambdas[i, j] = 0.5 if i == k else (0.15 if i > k else 0.01)
    model = PoissonHMM(n_components=n, init_params="", params="stl", n_iter=params.n_iter,
                       random_state=params.random_state, tol=1e-3)
    model.startprob_ = np.array([0.85, 0.08, 0.06, 0.01])
    model.transmat_ = transmat
    model.lambdas_ = lambdas + 0.005
    return model


# Below the stage it signals, an activity is at most this share as frequent as in it:
# what keeps the states in ladder order while EM learns every rate.
BELOW_STAGE_SHARE = 0.5


def _ladder_projection(model, activity_stages: list[str]) -> None:
    """An activity is most frequent in the stage it signals: below it at most
    BELOW_STAGE_SHARE of that rate, above it at most that rate."""
    lambdas = model.lambdas_.copy()
    for j, stage in enumerate(activity_stages):
        k = PRE_SALE.index(stage)
        for i in range(len(PRE_SALE)):
            if i < k:
                lambdas[i, j] = min(lambdas[i, j], BELOW_STAGE_SHARE * lambdas[k, j])
            elif i > k:
                lambdas[i, j] = min(lambdas[i, j], lambdas[k, j])
    model.lambdas_ = np.maximum(lambdas, 1e-4)


def _fit(X: np.ndarray, lengths: np.ndarray, activity_stages: list[str],
         params: InferenceParams):
    """EM on a random sample of accounts (all of them when fewer than `fit_accounts`).

    One EM step at a time, each followed by the ladder projection of the emission
    rates, so the hidden states stay the ladder's stages instead of drifting into
    clusters of channels.
    """
    model = _initial_model(activity_stages, params)
    n_accounts = len(lengths)
    if n_accounts > params.fit_accounts:
        rng = np.random.default_rng(params.random_state)
        chosen = np.sort(rng.choice(n_accounts, params.fit_accounts, replace=False))
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        X = np.concatenate([X[offsets[i]:offsets[i] + lengths[i]] for i in chosen])
        lengths = lengths[chosen]
    model.n_iter = 1
    previous = -np.inf
    for _ in range(params.n_iter):
        model.fit(X, lengths)
        _ladder_projection(model, activity_stages)
        score = model.monitor_.history[-1] if model.monitor_.history else previous
        if abs(score - previous) < 1e-3 * max(1.0, abs(score)) * 1e-2:
            break
        previous = score
    return model


def _decode_hmm(events: pd.DataFrame, params: InferenceParams) -> pd.DataFrame:
    """Per account and period: the decoded pre-sale stage (Viterbi) and its posterior."""
    activity_stage = events.groupby("activity").stage.first()
    activities = list(activity_stage.index)
    accounts, X, lengths, periods = _observations(events, activities)
    model = _fit(X, lengths, list(activity_stage.values), params)
    states = np.empty(len(X), dtype=int)
    posterior = np.empty(len(X))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    # Decode in chunks of accounts: bounded memory at any size.
    step = 20_000
    for lo in range(0, len(lengths), step):
        a, b = offsets[lo], offsets[min(lo + step, len(lengths))]
        chunk_lengths = lengths[lo:lo + step]
        _, decoded = model.decode(X[a:b], chunk_lengths, algorithm="viterbi")
        states[a:b] = decoded
        proba = model.predict_proba(X[a:b], chunk_lengths)
        posterior[a:b] = proba[np.arange(b - a), decoded]
    frame = pd.DataFrame({
        "account_id": np.repeat(accounts, lengths),
        "period_no": periods,
        "stage": [PRE_SALE[s] for s in states],
        "posterior": posterior,
    })
    return frame


def _stays_from_periods(decoded: pd.DataFrame, events: pd.DataFrame,
                        period_days: int) -> pd.DataFrame:
    """Runs of one decoded stage become stays; a stay is entered at its first touchpoint
    (or at its first period's start when that period is silent)."""
    first_at = events.groupby("account_id").first_at.first()
    first_event = (events.groupby(["account_id", "period_no"]).occurred_at.min()
                   .rename("first_event"))
    frame = decoded.join(first_event, on=["account_id", "period_no"])
    frame["period_start"] = (frame.account_id.map(first_at)
                             + pd.to_timedelta(frame.period_no * period_days, unit="D"))
    frame["at"] = frame.first_event.fillna(frame.period_start)
    change = (frame.stage != frame.groupby("account_id").stage.shift()).cumsum()
    stays = frame.groupby(change).agg(account_id=("account_id", "first"),
                                      stage=("stage", "first"), entered_at=("at", "first"),
                                      posterior=("posterior", "mean"),
                                      evidence=("first_event", "count"))
    return stays.reset_index(drop=True)


# -- the window baseline ---------------------------------------------------------------------

WINDOW_SQL = """
with events as (
    select *,
           coalesce(count(*) filter (where activity = 'deal_lost') over (
               partition by account_id order by event_order
               rows between unbounded preceding and 1 preceding), 0) as lost_before
    from _pre_sale
),
state as (
    -- the highest stage signalled within the window since the last lost deal; after a
    -- lost deal the account is back at consideration at least
    select account_id, occurred_at, event_order, stage_order as signal_order,
           greatest(case when lost_before > 0 then 2 else 1 end,
                    max(stage_order) over (
                        partition by account_id, lost_before order by occurred_at
                        range between to_days($window_days) preceding and current row))
               as stage_order
    from events
),
changes as (
    select *,
           stage_order is distinct from lag(stage_order) over (
               partition by account_id order by event_order) as is_new
    from state
),
runs as (
    select *,
           sum(is_new::integer) over (partition by account_id order by event_order
                                      rows unbounded preceding) as run_no
    from changes
)
select r.account_id, l.stage, min(r.occurred_at) as entered_at,
       -- the share of the stay's signals that point to its stage, one contrary signal
       -- more than seen (as the evidence method's confidence)
       count(*) filter (where r.signal_order = r.stage_order) / (count(*) + 1.0)
           as posterior,
       count(*) as evidence
from runs r join stage_ladder l on l.stage_order = r.stage_order
group by r.account_id, r.run_no, l.stage
"""


def _window_stays(con: duckdb.DuckDBPyConnection, params: InferenceParams) -> pd.DataFrame:
    """Stays of the window method, computed in DuckDB (one row per stay comes back)."""
    return con.execute(WINDOW_SQL, {"window_days": params.window_days}).df()


# -- after the sale ---------------------------------------------------------------------------

POST_SALE_SQL = """
with eng as (
    select account_id, engagement_no, started_at, ended_at, end_kind from engagements
),
advocacy as (
    -- the first referral or case study after an engagement ended by a completion,
    -- before the next engagement starts and before any cancellation
    select e.account_id, e.engagement_no, min(t.occurred_at) as entered_at
    from eng e
    join int_journey_events t on t.account_id = e.account_id
        and t.stage = 'advocacy' and t.occurred_at >= e.ended_at
    left join eng n on n.account_id = e.account_id and n.engagement_no = e.engagement_no + 1
    where e.end_kind <> 'cancelled'
        and (n.started_at is null or t.occurred_at < n.started_at)
        -- a former client who refers is still a former client
        and not exists (
            select 1 from int_journey_events c
            where c.account_id = e.account_id
                and c.occurred_at > e.ended_at and c.occurred_at <= t.occurred_at
                and c.activity in (select activity from engagement_rules where role = 'cancel'))
    group by all
),
late_cancel as (
    -- a cancellation after an engagement completed, before the next one: the client left
    select e.account_id, e.engagement_no, min(t.occurred_at) as entered_at
    from eng e
    join int_journey_events t on t.account_id = e.account_id and t.occurred_at > e.ended_at
        and t.activity in (select activity from engagement_rules where role = 'cancel')
    left join eng n on n.account_id = e.account_id and n.engagement_no = e.engagement_no + 1
    where e.end_kind <> 'cancelled'
        and (n.started_at is null or t.occurred_at < n.started_at)
    group by all
),
client_side as (
    -- accounts with client-side signals but no engagement: follow the signals
    select t.account_id, t.occurred_at as entered_at, t.stage, t.event_order
    from int_journey_events t
    join stage_ladder l on l.stage = t.stage
    where l.phase = 'client'
        and not exists (select 1 from eng e where e.account_id = t.account_id)
),
phases as (
    select account_id, started_at as entered_at, 'client' as stage, 'engagement' as method from eng
    union all
    select account_id, ended_at, case end_kind when 'cancelled' then 'former_client'
                                               else 'between_engagements' end, 'engagement'
    from eng where ended_at is not null
    union all
    select account_id, entered_at, 'advocacy', 'engagement' from advocacy
    union all
    select account_id, entered_at, 'former_client', 'engagement' from late_cancel
    union all
    select account_id, entered_at, stage, 'signal' from client_side
)
select account_id, entered_at, stage, method from phases
"""


# -- putting it together ----------------------------------------------------------------------

def infer_stage_history(con: duckdb.DuckDBPyConnection,
                        params: InferenceParams | None = None) -> pd.DataFrame:
    """`account_stage_history` alone (see infer_stage_states)."""
    return infer_stage_states(con, params)[0]


GAPS_SQL = """
-- Between engagements: from an engagement's end by completion to the next start, a
-- cancellation, or the as-of date.
with eng as (
    select account_id, engagement_no, started_at, ended_at, end_kind,
           lead(started_at) over (partition by account_id order by engagement_no)
               as next_start
    from engagements
),
cancels as (
    select account_id, occurred_at from int_journey_events
    where activity in (select activity from engagement_rules where role = 'cancel')
),
gaps as (
    select e.account_id, e.ended_at, e.next_start, min(c.occurred_at) as cancelled_at
    from eng e
    left join cancels c on c.account_id = e.account_id and c.occurred_at > e.ended_at
        and (e.next_start is null or c.occurred_at < e.next_start)
    where e.ended_at is not null and e.end_kind <> 'cancelled'
    group by all
)
select g.account_id, g.ended_at, g.next_start,
       least(coalesce(g.next_start, p.as_of), coalesce(g.cancelled_at, p.as_of)) as gap_end
from gaps g cross join run_parameters p
"""

RENEWAL_SIGNALS_SQL = """
select account_id, occurred_at, activity, stage
from int_journey_events
where stage in ('evaluation', 'decision')
    and account_id in (select account_id from engagements where ended_at is not null)
order by account_id, event_order
"""


def _first_sales(con: duckdb.DuckDBPyConnection) -> pd.Series:
    """account_id -> the start of its first engagement (its first sale)."""
    return con.execute("SELECT account_id, min(started_at) AS sold_at FROM engagements "
                       "GROUP BY account_id").df().set_index("account_id").sold_at


def _sales_cycle_days(pre: pd.DataFrame, first_sale: pd.Series) -> float | None:
    """The 90th percentile of days from a prospect's first evaluation (or decision) stay to
    its first sale: this data's sales cycle, which bounds a renewal cycle."""
    late = pre[pre.stage.isin(("evaluation", "decision"))]
    if late.empty or first_sale.empty:
        return None
    first = late.groupby("account_id").entered_at.min()
    sold = first_sale.reindex(first.index).dropna()
    days = ((sold - first.reindex(sold.index)).dt.total_seconds() / 86400)
    days = days[days > 0]
    return float(days.quantile(0.9)) if len(days) else None


def infer_stage_states(con: duckdb.DuckDBPyConnection, params: InferenceParams | None = None,
                       renewal_cycles: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`account_stage_history` (one row per account per stay in an inferred stage) and the
    parameters the method estimated from this data (`stage_inference_parameters`).

    History columns: account_id, engagement_cycle, stage, entered_at, left_at (null while
    current), method (evidence | hmm | window | engagement | signal), stage_order,
    confidence (0-1: the evidence method's share of the stay's evidence that points to
    its stage, the hmm's mean posterior, 1 for stays the engagement rules observe),
    evidence (signals within the stay), is_renewal (an evaluation or decision stay
    between engagements).
    """
    params = params or InferenceParams()
    if params.method not in METHODS:
        raise ValueError(f"unknown stage inference method '{params.method}' "
                         f"(methods: {', '.join(METHODS)})")
    n_events = _materialise_pre_sale(con, params.period_days)
    first_sale = _first_sales(con)
    estimated = pd.DataFrame(columns=["parameter", "stage", "activity", "value"])
    if not n_events:
        pre = pd.DataFrame(columns=["account_id", "stage", "entered_at", "posterior",
                                    "evidence"])
    elif params.method == "evidence":
        from journey_mining.stage_evidence import evidence_stays

        events = con.execute("SELECT account_id, occurred_at, activity, stage, observed "
                             "FROM _pre_sale ORDER BY account_id, event_order").df()
        pre, estimated = evidence_stays(events, PRE_SALE, first_sale)
    elif params.method == "hmm":
        events = con.execute("SELECT * FROM _pre_sale ORDER BY account_id, event_order").df()
        pre = _stays_from_periods(_decode_hmm(events, params), events, params.period_days)
    else:
        pre = _window_stays(con, params)
    con.execute("DROP TABLE IF EXISTS _pre_sale")
    pre = pre.assign(method=params.method)
    if "observed" in pre:  # a stay an observed stage change opened is recorded, not inferred
        pre.loc[pre.pop("observed").astype(bool), "method"] = "observed"
    post = con.execute(POST_SALE_SQL).df().assign(posterior=1.0, evidence=np.nan)
    frames = [pre, post]
    if renewal_cycles:
        from journey_mining.stage_evidence import renewal_stays

        renewals, renewal_parameters = renewal_stays(
            con.execute(GAPS_SQL).df(), con.execute(RENEWAL_SIGNALS_SQL).df(),
            _sales_cycle_days(pre, first_sale), PRE_SALE)
        frames.append(renewals.assign(method=params.method))
        estimated = pd.concat([frame for frame in (estimated, renewal_parameters)
                               if len(frame)], ignore_index=True) \
            if len(renewal_parameters) else estimated
    frames = [frame for frame in frames if len(frame)]
    stays = pd.concat(frames, ignore_index=True) if frames else \
        pre.assign(method=pd.Series(dtype=str))
    setting = pd.DataFrame({"parameter": ["renewal_cycles"], "stage": [None],
                            "activity": [None], "value": [float(renewal_cycles)]})
    estimated = pd.concat([frame for frame in (estimated, setting) if len(frame)],
                          ignore_index=True).assign(method=params.method)
    return _finish(con, stays), estimated


FINISH_SQL = """
with stays as (
    select s.*, l.stage_order from stays s join stage_ladder l using (stage)
),
ordered as (
    select *, lag(stage) over w as previous_stage
    from stays
    window w as (partition by account_id order by entered_at, stage_order)
),
merged as (
    -- a stay that continues the stage before it is no new stay
    select * from ordered where previous_stage is distinct from stage
),
cycles as (
    select m.account_id, m.entered_at, m.stage,
           coalesce(max(e.engagement_no), 0) + 1 as engagement_cycle
    from merged m
    -- as for touchpoints (int_journey_events): a stay entered at an engagement's end
    -- (between engagements, former client) closes that engagement's cycle; stays after
    -- the end (advocacy, a renewal, the next client stay) are in the next one
    left join engagements e on e.account_id = m.account_id and e.ended_at < m.entered_at
    group by all
)
select
    m.account_id,
    cast(c.engagement_cycle as integer) as engagement_cycle,
    m.stage,
    m.entered_at,
    lead(m.entered_at) over (partition by m.account_id order by m.entered_at, m.stage_order)
        as left_at,
    m.method,
    cast(m.stage_order as integer) as stage_order,
    m.posterior as confidence,
    cast(m.evidence as integer) as evidence,
    c.engagement_cycle > 1 and m.stage in ('evaluation', 'decision') as is_renewal
from merged m join cycles c using (account_id, entered_at, stage)
order by m.account_id, m.entered_at, m.stage_order
"""


def _finish(con: duckdb.DuckDBPyConnection, stays: pd.DataFrame) -> pd.DataFrame:
    stays = stays[["account_id", "stage", "entered_at", "method", "posterior", "evidence"]]
    stays = stays.astype({"posterior": float, "evidence": float})
    con.register("stays", stays)
    try:
        return con.execute(FINISH_SQL).df()
    finally:
        con.unregister("stays")


def store_stage_history(con: duckdb.DuckDBPyConnection, history: pd.DataFrame,
                        parameters: pd.DataFrame | None = None) -> None:
    """Replace `account_stage_history` (and `stage_inference_parameters`, the values the
    method estimated) and set `account_journeys.current_stage` from it."""
    with transaction(con):
        store_frame(con, "account_stage_history", history)
        if parameters is not None:
            store_frame(con, "stage_inference_parameters", parameters.astype(
                {"parameter": str, "stage": object, "activity": object, "value": float}))
        con.execute("""
            UPDATE account_journeys AS j
            SET current_stage = h.stage, current_stage_order = h.stage_order
            FROM account_stage_history AS h
            WHERE h.account_id = j.account_id AND h.left_at IS NULL""")


# -- measured against ground truth -------------------------------------------------------------

def stage_paths(history: pd.DataFrame) -> pd.Series:
    """Per account its stage path as a tuple: stays ordered by entered_at (ladder order on
    ties), repeats merged, advocacy ignored (how the README's scorecard compares paths)."""
    frame = history[history.stage != "advocacy"].assign(
        _o=lambda f: f.stage.map(STAGE_ORDER)).sort_values(["account_id", "entered_at", "_o"])

    def merge(stages):
        path = []
        for stage in stages:
            if not path or path[-1] != stage:
                path.append(stage)
        return tuple(path)

    return frame.groupby("account_id").stage.agg(merge)


def _path_facts(path: tuple) -> dict:
    orders = [STAGE_ORDER[s] for s in path]
    sale = next((i for i, s in enumerate(path) if s == "client"), len(path))
    before = orders[:sale + 1]
    back = any(b < a for a, b in zip(before, before[1:], strict=False))
    skip = (bool(before) and before[0] > 1) or any(
        b > a + 1 and b <= STAGE_ORDER["client"] and max(before[:i + 1]) + 1 < b
        for i, (a, b) in enumerate(zip(before, before[1:], strict=False)))
    return {"back_step": back, "skip": skip, "length": len(path)}


def scorecard(inferred: pd.Series, truth: pd.Series, top: int = 10) -> dict:
    """How close inferred stage paths are to the true ones, over accounts in both."""
    accounts = inferred.index.intersection(truth.index)
    inferred, truth = inferred[accounts], truth[accounts]

    def facts(paths):
        frame = pd.DataFrame([_path_facts(p) for p in paths])
        return frame.back_step.mean(), frame.skip.mean(), frame.length.mean()

    def transitions(paths):
        pairs = pd.Series([pair for p in paths for pair in set(zip(p, p[1:], strict=False))])
        return set(pairs.value_counts().head(top).index) if len(pairs) else set()

    (ib, isk, il), (tb, tsk, tl) = facts(inferred), facts(truth)
    return {
        "accounts": len(accounts),
        "path_equal": float((inferred == truth).mean()),
        "back_step": float(ib), "back_step_truth": float(tb),
        "skip": float(isk), "skip_truth": float(tsk),
        "mean_length": float(il), "mean_length_truth": float(tl),
        "top_transitions_shared": len(transitions(inferred) & transitions(truth)),
    }


def signal_label_paths(con: duckdb.DuckDBPyConnection) -> pd.Series:
    """The old way, for comparison: each touchpoint's signalled stage is the account's."""
    frame = con.execute("""
        SELECT account_id, stage, occurred_at AS entered_at FROM int_journey_events
        WHERE stage IS NOT NULL""").df()
    return stage_paths(frame)
