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

from journey_mining.sql_models import read_sql
from journey_mining.stages import STAGE_ORDER

__all__ = [
    "BELOW_STAGE_SHARE",
    "METHODS",
    "PRE_SALE",
    "InferenceParams",
    "inferred_stays",
    "scorecard",
    "signal_label_paths",
    "stage_paths",
]

PRE_SALE = ("awareness", "consideration", "evaluation", "decision")
STAY_COLUMNS = ["account_id", "stage", "entered_at", "method", "confidence", "evidence"]
PARAMETER_COLUMNS = ["parameter", "stage", "activity", "value", "method"]


@dataclass(frozen=True)
class InferenceParams:
    """How stages are inferred. Part of the build fingerprint (analysis parameters)."""

    method: str = "evidence"  # the best mean over the scorecard grid (README)
    period_days: int = 7
    window_days: int = 240
    fit_accounts: int = 2000  # EM runs on a random sample of this many accounts at most
    n_iter: int = 25
    random_state: int = 0
    renewal_cycles: bool = True

    @classmethod
    def from_config(cls, config) -> InferenceParams:
        """From the config's `analysis.stage_inference` (StageInferenceConfig)."""
        return cls(method=config.method, period_days=config.period_days,
                   window_days=config.window_days, fit_accounts=config.fit_accounts,
                   renewal_cycles=config.renewal_cycles)


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


# -- the methods -------------------------------------------------------------------------------
# Each reads the pre-sale touchpoints (int_pre_sale_events) and returns (stays, estimated):
# stays with columns account_id, stage, entered_at, posterior, evidence (and `observed`
# when a stay was opened by an observed stage change), and the parameters it estimated.

_NO_PARAMETERS = pd.DataFrame(columns=["parameter", "stage", "activity", "value"])


def _evidence(con: duckdb.DuckDBPyConnection, params: InferenceParams, first_sale: pd.Series):
    from journey_mining.stage_evidence import evidence_stays

    events = con.execute(read_sql("states/methods/pre_sale_events")).df()
    return evidence_stays(events, PRE_SALE, first_sale)


def _hmm(con: duckdb.DuckDBPyConnection, params: InferenceParams, first_sale: pd.Series):
    events = con.execute(read_sql("states/methods/pre_sale_events")).df()
    decoded = _decode_hmm(events, params)
    return _stays_from_periods(decoded, events, params.period_days), _NO_PARAMETERS


def _window(con: duckdb.DuckDBPyConnection, params: InferenceParams, first_sale: pd.Series):
    stays = con.execute(read_sql("states/methods/window_stays"),
                        {"window_days": params.window_days}).df()
    return stays.rename(columns={"confidence": "posterior"}), _NO_PARAMETERS


# The registry of pre-sale methods: adding one is a function here and its test.
METHODS = {"evidence": _evidence, "hmm": _hmm, "window": _window}


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


def _pre_sale_stays(con: duckdb.DuckDBPyConnection, params: InferenceParams,
                    first_sale: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The configured method's stays before the first sale; a stay an observed stage
    change opened is recorded, not inferred (method observed)."""
    has_events = con.execute("SELECT count(*) > 0 FROM int_pre_sale_events").fetchall()[0][0]
    if not has_events:
        return pd.DataFrame(columns=["account_id", "stage", "entered_at", "posterior",
                                     "evidence", "method"]), _NO_PARAMETERS
    pre, estimated = METHODS[params.method](con, params, first_sale)
    pre = pre.assign(method=params.method)
    if "observed" in pre:
        pre.loc[pre.pop("observed").astype(bool), "method"] = "observed"
    return pre, estimated


def inferred_stays(con: duckdb.DuckDBPyConnection, analysis) -> dict[str, pd.DataFrame]:
    """The Python model `int_inferred_stays` (sql/states): the stays the configured method
    reads from the signals before the first sale, plus the renewal cycles between
    engagements, and `stage_inference_parameters`, what the method estimated from this
    data. `analysis` is the build's AnalysisParams (or an InferenceParams).

    Stays: account_id, stage, entered_at, method (evidence | hmm | window | observed),
    confidence (0-1), evidence (signals within the stay). account_stage_history
    (sql/states/account_stage_history.sql) joins them with the post-sale phases.
    """
    params = analysis if isinstance(analysis, InferenceParams) else \
        InferenceParams.from_config(analysis.stage_inference)
    if params.method not in METHODS:
        raise ValueError(f"unknown stage inference method '{params.method}' "
                         f"(methods: {', '.join(METHODS)})")
    first_sale = con.execute("SELECT account_id, sold_at FROM int_first_sales").df() \
        .set_index("account_id").sold_at
    pre, estimated = _pre_sale_stays(con, params, first_sale)
    frames = [pre]
    if params.renewal_cycles:
        from journey_mining.stage_evidence import renewal_stays

        renewals, renewal_parameters = renewal_stays(
            con.execute("SELECT * FROM int_engagement_gaps").df(),
            con.execute("SELECT * FROM int_renewal_signals").df(),
            _sales_cycle_days(pre, first_sale), PRE_SALE)
        frames.append(renewals.assign(method=params.method))
        estimated = _concat([estimated, renewal_parameters])
    setting = pd.DataFrame({"parameter": ["renewal_cycles"], "stage": [None],
                            "activity": [None], "value": [float(params.renewal_cycles)]})
    estimated = _concat([estimated, setting]).assign(method=params.method)
    stays = _concat(frames).rename(columns={"posterior": "confidence"})
    stays = stays.reindex(columns=STAY_COLUMNS).astype(
        {"account_id": str, "stage": str, "method": str, "confidence": float,
         "evidence": float})
    stays["entered_at"] = pd.to_datetime(stays.entered_at)
    return {"int_inferred_stays": stays,
            "stage_inference_parameters": estimated.reindex(columns=PARAMETER_COLUMNS).astype(
                {"parameter": str, "stage": object, "activity": object, "value": float,
                 "method": str})}


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate the non-empty frames (pandas warns on empty ones); the first if none."""
    kept = [frame for frame in frames if len(frame)]
    return pd.concat(kept, ignore_index=True) if kept else frames[0]


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
