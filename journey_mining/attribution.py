"""Multi-touch attribution at account level, with honest intervals.

For each goal (reaching consideration, evaluation, decision, client) the journeys
are the accounts that entered the stage before the goal (inferred states): an
account *converted* when it later entered the goal stage, and its path is its
touchpoints before that moment; the others' paths run to the as-of date. Credit
goes to marketing channels, source / medium, recording systems, campaigns (their
names where the exports have them) or activities.

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

Scale: paths, rule credits and distinct paths are computed in DuckDB; Python sees
one row per (converting account, value) and one per distinct path. A goal with
more than `max_journeys` accounts (default 50,000) is analysed on a uniform sample
of that many, drawn by a hash of the account id (the same accounts every run);
`journeys` and `population` in the table say so, and the intervals are those of
the sample. At 10 M events (217,391 accounts) the sample keeps the step in
bounded time; below the cap nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from scipy import sparse
from threadpoolctl import threadpool_limits

from journey_mining.sql_models import read_sql

__all__ = ["ATTRIBUTION_COLUMNS", "DIMENSIONS", "GOALS", "MARKOV_ORDERS", "MAX_JOURNEYS",
           "MarkovChain", "attribution",
           "goal_paths", "rule_credits"]

GOALS = ("consideration", "evaluation", "decision", "client")
# What each dimension's value is: attribution_journeys.sql computes all three, and
# attribution_touches.sql picks one by its bound name.
DIMENSIONS = {"marketing_channel": "the touchpoint's marketing channel (paid search, ...)",
              "source_medium": "its source / medium (google / cpc, ...)",
              "channel": "the system that recorded it (web, email, crm)",
              "campaign": "its campaign name (or id where the export has no name)",
              "activity": "channel:activity"}
RULES = ("first_touch", "last_touch", "linear", "position_based", "time_decay")
HALF_LIFE_DAYS = 7.0
MAX_VALUES = 25  # per dimension; rarer values are pooled as "other"
MAX_JOURNEYS = 50_000  # accounts per goal; above it, a repeatable uniform sample
# Second-order chains for channels and campaigns; activities (25 values, some 600 pair
# states) get the first order only: their second order would need far more journeys
# than a B2B firm has to estimate, and its intervals would say only "uncertain".
MARKOV_ORDERS = {"marketing_channel": (1, 2), "source_medium": (1,), "channel": (1, 2),
                 "campaign": (1, 2), "activity": (1,)}
ATTRIBUTION_COLUMNS = ["goal", "dimension", "model", "value", "conversions", "credit", "share",
                       "ci_low", "ci_high", "removal_effect", "removal_ci_low",
                       "removal_ci_high", "uncertain", "journeys", "population"]

# The temp tables the step's SQL files write (their names are fixed in the files).
_DROP_TEMP_TABLES = ("drop table if exists _attribution_journeys; "
                     "drop table if exists _attribution_touches; "
                     "drop table if exists _attribution_codes; "
                     "drop table if exists _attribution_paths")


def _load_journeys(con: duckdb.DuckDBPyConnection, goal: str, dimensions,
                   max_journeys: int = MAX_JOURNEYS) -> None:
    """The goal's journeys with every dimension's value: the one join with every event."""
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown:
        raise KeyError(f"unknown dimensions {unknown} (dimensions: {', '.join(DIMENSIONS)})")
    con.execute(read_sql("analysis/attribution_journeys"),
                {"goal": goal, "max_journeys": max_journeys})


def _load_paths(con: duckdb.DuckDBPyConnection, dimension: str) -> None:
    con.execute(read_sql("analysis/attribution_touches"),
                {"dimension": dimension, "max_values": MAX_VALUES})


def goal_paths(con: duckdb.DuckDBPyConnection, goal: str, dimension: str,
               max_journeys: int = MAX_JOURNEYS) -> pd.DataFrame:
    """Touchpoints (one row each; accounts without any have one row with no value) of the
    accounts that could reach `goal`, up to their conversion or the as-of date; at most
    `max_journeys` accounts (a repeatable sample above it; `population` is the whole)."""
    _load_journeys(con, goal, (dimension,), max_journeys)
    _load_paths(con, dimension)
    return con.sql("select * from _attribution_touches order by account_id, event_order").df()


def _credits(con: duckdb.DuckDBPyConnection
             ) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
    """Converting accounts, the values, and per rule an (accounts x values) credit matrix,
    of the dimension's paths in the temp table _attribution_touches."""
    long = con.execute(read_sql("analysis/attribution_credits"),
                       {"half_life": HALF_LIFE_DAYS}).fetchnumpy()
    account_idx, value_idx = long["account_index"], long["value_index"]
    n_accounts = int(account_idx.max()) + 1 if len(account_idx) else 0
    n_values = int(value_idx.max()) + 1 if len(value_idx) else 0
    accounts = np.empty(n_accounts, dtype=object)
    accounts[account_idx] = long["account_id"]
    values = np.empty(n_values, dtype=object)
    values[value_idx] = long["value"]
    matrices = {}
    for rule in RULES:
        m = np.zeros((n_accounts, n_values))
        m[account_idx, value_idx] = long[rule]
        matrices[rule] = m
    return accounts.astype(str), [str(v) for v in values], matrices


def rule_credits(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per converting account, the credit each rule gives each value (rows: account x
    rule, columns: values; each row sums to one). `frame` is in path order per account
    (the shape `goal_paths` returns); the pipeline runs the same SQL in the warehouse."""
    if "event_order" not in frame.columns:  # the frame's order is the path order
        frame = frame.assign(event_order=np.arange(1, len(frame) + 1))
    con = duckdb.connect()
    try:
        # A private connection: the frame becomes the table the pipeline's SQL reads.
        con.from_df(frame).create("_attribution_touches")
        accounts, values, matrices = _credits(con)
    finally:
        con.close()
    parts = [pd.DataFrame(matrices[rule], columns=values).assign(account_id=accounts, rule=rule)
             for rule in RULES]
    if not len(accounts):
        return pd.DataFrame(columns=["account_id", "rule"]), values
    matrix = pd.concat(parts, ignore_index=True).sort_values(["account_id", "rule"])
    return matrix[["account_id", "rule", *values]].reset_index(drop=True), values


@dataclass
class MarkovChain:
    """A Markov chain of order k over paths: states are k-tuples of values, plus start,
    conversion and null (no conversion). Fit once; `reweighted` re-counts the same
    paths with other weights (a bootstrap resample) without walking them again."""

    states: list[tuple]
    counts: np.ndarray  # (transient states) x (transient states + conv + null)
    _pairs: sparse.csr_array | None = None  # (paths x transitions) counts, to reweight
    _cells: tuple | None = None  # (row, column) of each transition in `counts`
    # value -> indices of the states holding it; shared by every reweighting (same states)
    _holding_cache: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, paths: list[tuple[tuple, bool]], weights=None, order: int = 1) -> MarkovChain:
        """Count transitions over `paths` ((values, converted) pairs, each with a weight).

        Vectorised: values become integer codes, a state of order k is the number whose
        base-(values + 1) digits are its last k values (0: before the path began), and
        each path's transitions are counted with one `np.unique` over all paths."""
        names = sorted({v for p, _ in paths for v in p})
        code = {v: i + 1 for i, v in enumerate(names)}
        lengths = np.fromiter((len(p) for p, _ in paths), np.int64, len(paths))
        flat = np.fromiter((code[v] for p, _ in paths for v in p), np.int64, int(lengths.sum()))
        converted = np.fromiter((bool(c) for _, c in paths), bool, len(paths))
        return cls.from_codes(names, flat, lengths, converted, weights, order)

    @classmethod
    def from_codes(cls, names: list[str], flat: np.ndarray, lengths: np.ndarray,
                   converted: np.ndarray, weights=None, order: int = 1) -> MarkovChain:
        """`fit` on paths given as arrays: every path's values one after another as codes
        (1 + the index in the sorted `names`), each path's length and whether it converted.
        The pipeline builds these in SQL, so no path becomes a Python tuple."""
        n_paths = len(lengths)
        weights = np.ones(n_paths) if weights is None else np.asarray(weights, float)
        base = len(names) + 1
        flat, lengths = np.asarray(flat, np.int64), np.asarray(lengths, np.int64)
        path_of = np.repeat(np.arange(n_paths), lengths)
        repeat = np.zeros(len(flat), bool)  # consecutive repeats within a path merge
        repeat[1:] = (flat[1:] == flat[:-1]) & (path_of[1:] == path_of[:-1])
        flat, path_of = flat[~repeat], path_of[~repeat]
        state = flat.copy()
        for lag in range(1, order):
            earlier = np.zeros(len(flat), np.int64)
            same = path_of[lag:] == path_of[:-lag]
            earlier[lag:] = np.where(same, flat[:-lag], 0)
            state += earlier * base ** lag
        start, conv, null = -1, -2, -3
        end = np.where(np.asarray(converted, bool), conv, null)
        first = np.ones(len(state), bool)
        first[1:] = path_of[1:] != path_of[:-1]
        last = np.ones(len(state), bool)
        last[:-1] = path_of[:-1] != path_of[1:]
        empty = np.flatnonzero(lengths == 0)
        inner = ~last
        rows = np.concatenate([path_of[first], empty, path_of[inner], path_of[last]])
        frm = np.concatenate([np.full(first.sum() + len(empty), start), state[inner],
                              state[last]])
        to = np.concatenate([state[first], end[empty], state[1:][inner[:-1]],
                             end[path_of[last]]])
        # One integer key per (path, from, to): 1-D uniques sort fast, row-wise ones do not.
        seen, inverse = np.unique(np.concatenate([frm, to]), return_inverse=True)
        width = len(seen)
        f, t = inverse[:len(frm)], inverse[len(frm):]
        keys, data = np.unique((rows * width + f) * width + t, return_counts=True)
        kind_keys, column = np.unique(keys % (width * width), return_inverse=True)
        kinds = np.stack([seen[kind_keys // width], seen[kind_keys % width]], axis=1)
        # Sparse: a path uses a handful of the (at order 2, thousands of) transitions.
        pairs = sparse.csr_array((data.astype(float), (keys // (width * width), column.ravel())),
                                 shape=(n_paths, len(kinds)))

        def spelled(s: int) -> tuple:
            if s == start:
                return ("<start>",)
            digits = [(s // base ** lag) % base for lag in reversed(range(order))]
            return tuple(names[d - 1] for d in digits if d)

        codes = np.unique(np.concatenate([kinds[:, 0], kinds[:, 1][kinds[:, 1] >= start]]))
        transient = sorted(((spelled(int(s)), int(s)) for s in codes),
                           key=lambda t: (t[0] != ("<start>",), t[0]))
        index = {s: i for i, (_, s) in enumerate(transient)}
        n = len(transient)
        cells = (np.array([index[int(a)] for a in kinds[:, 0]], dtype=int),
                 np.array([n if b == conv else n + 1 if b == null else index[int(b)]
                           for b in kinds[:, 1]], dtype=int))
        chain = cls([s for s, _ in transient], np.zeros((n, n + 2)), pairs, cells)
        return chain.reweighted(weights)

    def reweighted(self, weights) -> MarkovChain:
        """The same chain counted with `weights` per path."""
        counts = np.zeros_like(self.counts)
        np.add.at(counts, self._cells, self._pairs.T @ np.asarray(weights, float))
        return MarkovChain(self.states, counts, self._pairs, self._cells, self._holding_cache)

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
        """Share of conversions lost when `value` is removed, per value.

        Removing a value sends every move into its states to null, a change of rank k
        (the k states holding it) to I - Q. One factorisation gives (I - Q)^-1 [r | Q]
        and row 0 of (I - Q)^-1; each removal is then a k x k solve (Woodbury), not
        another n x n one. `test_attribution` checks it against the direct solve."""
        n = len(self.states)
        if not n:
            return dict.fromkeys(values, 0.0)
        q, r = self._matrices(None)
        a = np.eye(n) - q
        solved = np.linalg.solve(a, np.column_stack([r, q]))
        absorbed, w = solved[:, 0], solved[:, 1:]
        if absorbed[0] <= 0:
            return dict.fromkeys(values, 0.0)
        row0 = np.linalg.solve(a.T, np.eye(n)[0]) @ q
        effects = {}
        for v in values:
            gone = self._holding(v)
            if not len(gone):
                effects[v] = 0.0
                continue
            lost = row0[gone] @ np.linalg.solve(np.eye(len(gone)) + w[np.ix_(gone, gone)],
                                                absorbed[gone])
            effects[v] = float(lost / absorbed[0])
        return effects

    def _holding(self, value: str) -> np.ndarray:
        """Indices of the states that hold `value` (cached: the states never change)."""
        if value not in self._holding_cache:
            self._holding_cache[value] = np.array(
                [i for i, s in enumerate(self.states) if value in s], dtype=int)
        return self._holding_cache[value]

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


def _resamples(rng, n: int, n_boot: int) -> np.ndarray:
    """(n_boot x n) bootstrap weights: how often each of n accounts is drawn, n draws
    (every resample's draws counted by one bincount)."""
    draws = rng.integers(0, n, (n_boot, n)) + n * np.arange(n_boot)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def _rules(goal, dimension, con, rng, n_boot) -> list[dict]:
    accounts, values, matrices = _credits(con)
    rows = []
    if not values:
        return rows
    n = len(accounts)
    draws = _resamples(rng, n, n_boot)  # one resample of accounts for every rule
    for rule in RULES:
        credits = matrices[rule]
        low, high = _interval(draws @ credits / n)
        shares = credits.sum(axis=0) / n
        for i, v in enumerate(values):
            rows.append({"goal": goal, "dimension": dimension, "model": rule, "value": v,
                         "conversions": n, "credit": float(credits[:, i].sum()),
                         "share": float(shares[i]), "ci_low": float(low[i]),
                         "ci_high": float(high[i])})
    return rows


def _distinct_paths(con) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The distinct paths of the dimension's table as arrays: value names, every path's
    codes one after another, each path's length, converted, and accounts."""
    con.execute(read_sql("analysis/attribution_codes"))
    con.execute(read_sql("analysis/attribution_distinct_paths"))
    names = [v for (v,) in con.execute(
        "select value from _attribution_codes order by code").fetchall()]
    per_path = con.execute("select len(path) as length, converted, accounts "
                           "from _attribution_paths order by n").fetchnumpy()
    flat = con.execute("select unnest(path) as code, unnest(range(len(path))) as i, n "
                       "from _attribution_paths order by n, i").fetchnumpy()["code"]
    return (names, flat, per_path["length"], per_path["converted"].astype(bool),
            per_path["accounts"].astype(float))


def _markov(goal, dimension, paths, rng, n_boot, order) -> list[dict]:
    values, flat, lengths, converted, counts = paths
    conversions = int(counts[converted].sum())
    if not conversions:
        return []
    chain = MarkovChain.from_codes(values, flat, lengths, converted, counts, order)
    path_of_account = np.repeat(np.arange(len(counts)), counts.astype(np.int64))
    n_accounts = len(path_of_account)
    effects = chain.removal_effects(values)
    total = sum(max(e, 0) for e in effects.values())
    boot_effects, boot_shares = [], []
    for _ in range(n_boot):
        # Accounts drawn with replacement, counted per path: a multinomial over the paths
        # with p = accounts / all, drawn in O(accounts) instead of a binomial per path.
        w = np.bincount(path_of_account[rng.integers(0, n_accounts, n_accounts)],
                        minlength=len(counts))
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


def attribution(con: duckdb.DuckDBPyConnection, goals=GOALS, dimensions=tuple(DIMENSIONS),
                n_boot_rules: int = 200, n_boot_markov: int = 100, seed: int = 0,
                max_journeys: int = MAX_JOURNEYS) -> pd.DataFrame:
    """`attribution`: one row per (goal, dimension, model, value) with its credit share
    and 95 % bootstrap interval; Markov rows also carry the removal effect and whether
    its interval reaches zero (`uncertain`). `journeys` accounts were analysed of the
    `population` that could reach the goal (fewer only above `max_journeys`)."""
    # Many small solves: one BLAS thread each is faster than threads fighting over
    # two cores (measured: 0.3 s alone, 52 s beside another busy process without this).
    with threadpool_limits(1):
        try:
            return _attribution(con, goals, dimensions, n_boot_rules, n_boot_markov, seed,
                                max_journeys)
        finally:
            con.execute(_DROP_TEMP_TABLES)


def _attribution(con, goals, dimensions, n_boot_rules, n_boot_markov, seed, max_journeys
                 ) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for goal in goals:
        _load_journeys(con, goal, dimensions, max_journeys)
        journeys, population, converted = con.sql(
            "select count(distinct account_id), max(population), "
            "count(*) filter (where converted) from _attribution_journeys").fetchall()[0]
        if not converted:
            continue
        for dimension in dimensions:
            _load_paths(con, dimension)
            found = _rules(goal, dimension, con, rng, n_boot_rules)
            paths = _distinct_paths(con)
            for order in MARKOV_ORDERS[dimension]:
                found += _markov(goal, dimension, paths, rng, n_boot_markov, order)
            rows += [dict(r, journeys=journeys, population=population) for r in found]
    out = pd.DataFrame(rows, columns=ATTRIBUTION_COLUMNS)
    out["uncertain"] = out.uncertain.astype("boolean")
    return out
