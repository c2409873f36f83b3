"""Multi-touch attribution at account level, with honest intervals.

For each goal (reaching consideration, evaluation, decision, client) the journeys
are the accounts that entered the stage before the goal (inferred states): an
account *converted* when it later entered the goal stage, and its path is its
touchpoints before that moment; the others' paths run to the as-of date. Credit
goes to channels, campaigns (campaign_id or utm_campaign) or activities.

Rule-based models split each conversion's credit over the touchpoints before it:
first touch, last touch, linear, position-based (40 % first, 40 % last, 20 % over
the middle) and time decay (half-life 7 days before the conversion). The
data-driven model is a Markov chain over the paths (first order, and second order
for channels and campaigns; consecutive repeats merged): a value's *removal effect* is the share of
conversions lost when every path through it fails; credit shares are removal
effects scaled to sum to one. The conversion probability comes from absorbing
chain algebra; `MarkovChain.simulate` walks the same chain as a cross-check.

Every share has a 95 % bootstrap interval over accounts (200 resamples for the
rules, 100 for the chains). A removal effect whose interval reaches zero is marked
`uncertain`: the data cannot tell it from no effect, and the report says so.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from journey_mining.stages import LADDER, STAGE_ORDER

__all__ = ["ATTRIBUTION_COLUMNS", "DIMENSIONS", "GOALS", "MARKOV_ORDERS", "MarkovChain",
           "attribution",
           "goal_paths", "rule_credits"]

GOALS = ("consideration", "evaluation", "decision", "client")
DIMENSIONS = {"channel": "e.channel",
              "campaign": "e.campaign_id",
              "activity": "e.channel || ':' || e.activity"}
RULES = ("first_touch", "last_touch", "linear", "position_based", "time_decay")
HALF_LIFE_DAYS = 7.0
MAX_VALUES = 25  # per dimension; rarer values are pooled as "other"
# Second-order chains for channels and campaigns; activities (25 values, some 600 pair
# states) get the first order only: their second order would need far more journeys
# than a B2B firm has to estimate, and its intervals would say only "uncertain".
MARKOV_ORDERS = {"channel": (1, 2), "campaign": (1, 2), "activity": (1,)}
ATTRIBUTION_COLUMNS = ["goal", "dimension", "model", "value", "conversions", "credit", "share",
                       "ci_low", "ci_high", "removal_effect", "removal_ci_low",
                       "removal_ci_high", "uncertain"]

PATHS_SQL = """
with firsts as (
    select account_id, stage, min(entered_at) as entered_at
    from account_stage_history group by account_id, stage
),
population as (
    select p.account_id, g.entered_at as converted_at,
           coalesce(g.entered_at, (select as_of from run_parameters)) as path_end
    from firsts p
    left join firsts g on g.account_id = p.account_id and g.stage = $goal
        and g.entered_at > p.entered_at
    where p.stage = $before
)
select p.account_id, p.converted_at is not null as converted, p.path_end,
       e.occurred_at, {value} as value
from population p
left join int_journey_events e on e.account_id = p.account_id and e.occurred_at < p.path_end
    and {value} is not null
order by p.account_id, e.event_order
"""


def goal_paths(con: duckdb.DuckDBPyConnection, goal: str, dimension: str) -> pd.DataFrame:
    """Touchpoints (one row each; accounts without any have one row with no value) of the
    accounts that could reach `goal`, up to their conversion or the as-of date."""
    before = LADDER[STAGE_ORDER[goal] - 2]
    sql = PATHS_SQL.format(value=DIMENSIONS[dimension])
    frame = con.execute(sql, {"goal": goal, "before": before}).df()
    top = frame.value.value_counts().head(MAX_VALUES).index
    frame["value"] = frame.value.where(frame.value.isin(top) | frame.value.isna(), "other")
    return frame


def rule_credits(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per converting account, the credit each rule gives each value (rows: account x
    rule, columns: values; each row sums to one)."""
    conv = frame[frame.converted & frame.value.notna()].copy()
    values = sorted(conv.value.unique())
    if not values:
        return pd.DataFrame(columns=["account_id", "rule"]), values
    group = conv.groupby("account_id", sort=False)
    n = group.value.transform("size").to_numpy(float)
    i = group.cumcount().to_numpy(float)
    middle = np.where(n > 2, 0.2 / np.maximum(n - 2, 1), 0.0)
    ends = np.where(n <= 2, 1 / n, 0.4)
    age = (conv.path_end - conv.occurred_at).dt.total_seconds().to_numpy() / 86400
    decay = pd.Series(0.5 ** (age / HALF_LIFE_DAYS), index=conv.index)
    weights = {
        "first_touch": (i == 0).astype(float), "last_touch": (i == n - 1).astype(float),
        "linear": 1 / n,
        "position_based": np.where((i == 0) | (i == n - 1), ends, middle),
        "time_decay": (decay / decay.groupby(conv.account_id).transform("sum")).to_numpy(),
    }
    parts = [conv[["account_id", "value"]].assign(rule=rule, w=w) for rule, w in weights.items()]
    long = pd.concat(parts, ignore_index=True)
    matrix = long.pivot_table(index=["account_id", "rule"], columns="value", values="w",
                              aggfunc="sum", fill_value=0.0, observed=True)
    return matrix.reindex(columns=values, fill_value=0.0).reset_index(), values


@dataclass
class MarkovChain:
    """A Markov chain of order k over paths: states are k-tuples of values, plus start,
    conversion and null (no conversion). Fit once; `reweighted` re-counts the same
    paths with other weights (a bootstrap resample) without walking them again."""

    states: list[tuple]
    counts: np.ndarray  # (transient states) x (transient states + conv + null)
    _pairs: np.ndarray | None = None  # (paths x transitions) counts, for reweighting
    _cells: tuple | None = None  # (row, column) of each transition in `counts`

    @classmethod
    def fit(cls, paths: list[tuple[tuple, bool]], weights=None, order: int = 1) -> MarkovChain:
        """Count transitions over `paths` ((values, converted) pairs, each with a weight)."""
        weights = np.ones(len(paths)) if weights is None else np.asarray(weights, float)
        per_path: list[Counter] = []
        for values, converted in paths:
            seq = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
            states = [("<start>",)] + [tuple(seq[max(0, i - order + 1):i + 1])
                                       for i in range(len(seq))]
            end = ("<conv>",) if converted else ("<null>",)
            per_path.append(Counter(zip(states, [*states[1:], end], strict=True)))
        kinds = sorted({pair for c in per_path for pair in c}, key=str)
        column = {pair: j for j, pair in enumerate(kinds)}
        pairs = np.zeros((len(paths), len(kinds)))
        for i, c in enumerate(per_path):
            for pair, k in c.items():
                pairs[i, column[pair]] = k
        sinks = (("<conv>",), ("<null>",))
        transient = sorted({a for a, _ in kinds} | {b for _, b in kinds if b not in sinks},
                           key=lambda s: (s != ("<start>",), s))
        index = {s: i for i, s in enumerate(transient)}
        n = len(transient)
        rows = np.array([index[a] for a, _ in kinds], dtype=int)
        cols = np.array([n if b == sinks[0] else n + 1 if b == sinks[1] else index[b]
                         for _, b in kinds], dtype=int)
        chain = cls(transient, np.zeros((n, n + 2)), pairs, (rows, cols))
        return chain.reweighted(weights)

    def reweighted(self, weights) -> MarkovChain:
        """The same chain counted with `weights` per path."""
        counts = np.zeros_like(self.counts)
        np.add.at(counts, self._cells, np.asarray(weights, float) @ self._pairs)
        return MarkovChain(self.states, counts, self._pairs, self._cells)

    def _matrices(self, removed: str | None):
        n = len(self.states)
        totals = self.counts.sum(axis=1, keepdims=True)
        probs = np.divide(self.counts, totals, out=np.zeros_like(self.counts),
                          where=totals > 0)
        q, r = probs[:, :n].copy(), probs[:, n].copy()
        if removed is not None:
            gone = [i for i, s in enumerate(self.states) if removed in s]
            q[:, gone] = 0  # a path into the removed value fails (goes to null)
            r[gone] = 0
        return q, r

    def conversion_probability(self, removed: str | None = None) -> float:
        """P(a path from start converts), by absorbing-chain algebra: b = (I - Q)^-1 r."""
        if not len(self.states):
            return 0.0
        q, r = self._matrices(removed)
        b = np.linalg.solve(np.eye(len(self.states)) - q, r)
        return float(b[0])

    def removal_effects(self, values: list[str]) -> dict[str, float]:
        """Share of conversions lost when `value` is removed, per value (all removals in
        one batched solve)."""
        n = len(self.states)
        if not n:
            return dict.fromkeys(values, 0.0)
        q, r = self._matrices(None)
        qs = np.repeat(q[None], len(values) + 1, axis=0)
        rs = np.repeat(r[None], len(values) + 1, axis=0)
        for k, v in enumerate(values, start=1):
            gone = [i for i, s in enumerate(self.states) if v in s]
            qs[k][:, gone] = 0
            rs[k][gone] = 0
        b = np.linalg.solve(np.eye(n)[None] - qs, rs[..., None])[:, 0, 0]
        if b[0] <= 0:
            return dict.fromkeys(values, 0.0)
        return {v: float(1 - b[k] / b[0]) for k, v in enumerate(values, start=1)}

    def simulate(self, n_walks: int, removed: str | None = None, seed: int = 0) -> float:
        """The conversion probability by walking the chain `n_walks` times (a cross-check
        of the algebra, independent of it)."""
        rng = np.random.default_rng(seed)
        n = len(self.states)
        q, r = self._matrices(removed)
        probs = np.column_stack([q, r, 1 - q.sum(axis=1) - r])
        cumulative = np.cumsum(probs, axis=1)
        state = np.zeros(n_walks, dtype=int)
        done = np.zeros(n_walks, dtype=bool)
        converted = np.zeros(n_walks, dtype=bool)
        for _ in range(10_000):
            active = ~done
            if not active.any():
                break
            u = rng.random(active.sum())
            nxt = (cumulative[state[active]] < u[:, None]).sum(axis=1)
            idx = np.flatnonzero(active)
            converted[idx[nxt == n]] = True
            done[idx[nxt >= n]] = True
            state[idx[nxt < n]] = nxt[nxt < n]
        return float(converted.mean())


def _interval(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.nanpercentile(samples, 2.5, axis=0), np.nanpercentile(samples, 97.5, axis=0)


def _rules(goal, dimension, frame, rng, n_boot) -> list[dict]:
    matrix, values = rule_credits(frame)
    rows = []
    if not values:
        return rows
    for rule in RULES:
        part = matrix[matrix.rule == rule]
        credits = part[values].to_numpy()
        n = len(credits)
        draws = rng.multinomial(n, np.full(n, 1 / n), size=n_boot)
        boot = draws @ credits / n
        low, high = _interval(boot)
        shares = credits.sum(axis=0) / n
        for i, v in enumerate(values):
            rows.append({"goal": goal, "dimension": dimension, "model": rule, "value": v,
                         "conversions": n, "credit": float(credits[:, i].sum()),
                         "share": float(shares[i]), "ci_low": float(low[i]),
                         "ci_high": float(high[i])})
    return rows


def _markov(goal, dimension, paths, rng, n_boot, order) -> list[dict]:
    keys = [(tuple(p), bool(c)) for p, c in zip(paths.path, paths.converted, strict=True)]
    counts = paths.accounts.to_numpy(float)
    conversions = int(counts[paths.converted.to_numpy(bool)].sum())
    if not conversions:
        return []
    chain = MarkovChain.fit(keys, counts, order)
    values = sorted({v for p, _ in keys for v in p})
    effects = chain.removal_effects(values)
    total = sum(max(e, 0) for e in effects.values())
    boot_effects, boot_shares = [], []
    for _ in range(n_boot):
        w = rng.multinomial(int(counts.sum()), counts / counts.sum())
        e = chain.reweighted(w).removal_effects(values)
        s = sum(max(x, 0) for x in e.values())
        boot_effects.append([e[v] for v in values])
        boot_shares.append([max(e[v], 0) / s if s > 0 else np.nan for v in values])
    re_low, re_high = _interval(np.array(boot_effects))
    sh_low, sh_high = _interval(np.array(boot_shares))
    rows = []
    for i, v in enumerate(values):
        share = max(effects[v], 0) / total if total > 0 else 0.0
        rows.append({"goal": goal, "dimension": dimension, "model": f"markov_{order}",
                     "value": v, "conversions": conversions, "credit": share * conversions,
                     "share": share, "ci_low": float(sh_low[i]), "ci_high": float(sh_high[i]),
                     "removal_effect": effects[v], "removal_ci_low": float(re_low[i]),
                     "removal_ci_high": float(re_high[i]),
                     "uncertain": bool(re_low[i] <= 0)})
    return rows


def _unique_paths(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> pd.DataFrame:
    """Distinct (path, converted) pairs and how many accounts took each."""
    con.register("_attribution_touches", frame)
    try:
        return con.sql("""
            WITH paths AS (
                SELECT account_id, any_value(converted) AS converted,
                       coalesce(list(value ORDER BY _n) FILTER (WHERE value IS NOT NULL),
                                []::VARCHAR[]) AS path
                FROM (SELECT *, row_number() OVER () AS _n FROM _attribution_touches)
                GROUP BY account_id)
            SELECT path, converted, count(*) AS accounts FROM paths
            GROUP BY path, converted""").df().sort_values(
                ["accounts", "converted"], ascending=[False, True], kind="stable")
    finally:
        con.unregister("_attribution_touches")


def attribution(con: duckdb.DuckDBPyConnection, goals=GOALS, dimensions=tuple(DIMENSIONS),
                n_boot_rules: int = 200, n_boot_markov: int = 100, seed: int = 0
                ) -> pd.DataFrame:
    """`attribution`: one row per (goal, dimension, model, value) with its credit share
    and 95 % bootstrap interval; Markov rows also carry the removal effect and whether
    its interval reaches zero (`uncertain`)."""
    # Many small solves: one BLAS thread each is faster than threads fighting over
    # two cores (measured: 0.3 s alone, 52 s beside another busy process without this).
    with threadpool_limits(1):
        return _attribution(con, goals, dimensions, n_boot_rules, n_boot_markov, seed)


def _attribution(con, goals, dimensions, n_boot_rules, n_boot_markov, seed) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for goal in goals:
        for dimension in dimensions:
            frame = goal_paths(con, goal, dimension)
            if frame.empty or not frame.converted.any():
                continue
            rows += _rules(goal, dimension, frame, rng, n_boot_rules)
            paths = _unique_paths(con, frame)
            for order in MARKOV_ORDERS[dimension]:
                rows += _markov(goal, dimension, paths, rng, n_boot_markov, order)
    out = pd.DataFrame(rows, columns=ATTRIBUTION_COLUMNS)
    out["uncertain"] = out.uncertain.astype("boolean")
    return out
