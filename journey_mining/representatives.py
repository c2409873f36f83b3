"""Representative journeys: a handful of real paths that stand for the long tail.

After Bernard & Andritsos (2017), who summarised 123,706 customer journeys by a few
representative ones: the distinct paths (stage level and activity level) are
compared by edit distance (Levenshtein over steps, divided by the longer path's
length), clustered with k-medoids weighted by how many accounts took each path,
and each cluster is shown by its medoid, a path some accounts really took. Each
representative carries how many accounts it stands for, how many of those are in
the long tail (paths outside the ten most common), how many became clients, and
how far its members are from it on average.

The most frequent `max_paths` paths are clustered; rarer paths join their nearest
medoid afterwards (their share is reported), which keeps the distance matrix small.
k runs from 2 to `max_k` and the weighted silhouette picks it.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist

from journey_mining.sql_models import read_sql

__all__ = ["REPRESENTATIVE_COLUMNS", "account_paths", "k_medoids",
           "representative_journeys", "weighted_silhouette"]

REPRESENTATIVE_COLUMNS = ["level", "representative", "medoid_path", "medoid_length",
                          "accounts", "coverage", "tail_accounts", "tail_coverage",
                          "paths", "became_client", "conversion", "mean_distance"]

# The stored log of each level: the table account_paths reads (named, not formatted in).
_LOG_TABLES = {"stage": "stage_log", "activity": "activity_log"}


def account_paths(con: duckdb.DuckDBPyConnection, level: str) -> pd.DataFrame:
    """Distinct paths of the stored log at `level` (stage or activity), with how many
    accounts took each and how many of those became clients."""
    log = con.table(_LOG_TABLES[level])
    return log.query("event_log", read_sql("analysis/representative_paths")).df()


def k_medoids(distances: np.ndarray, weights: np.ndarray, k: int, iterations: int = 50
              ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted k-medoids (greedy build, then alternate assignment and medoid update).
    Returns (medoid indices, label of each point)."""
    n = len(distances)
    medoids = [int(np.argmin(distances @ weights))]
    while len(medoids) < k:
        nearest = distances[:, medoids].min(axis=1)
        gain = (np.maximum(nearest[None, :] - distances, 0) * weights[None, :]).sum(axis=1)
        gain[medoids] = -1
        medoids.append(int(np.argmax(gain)))
    medoids = np.array(medoids)
    for _ in range(iterations):
        labels = np.argmin(distances[:, medoids], axis=1)
        updated = medoids.copy()
        for c in range(k):
            members = np.flatnonzero(labels == c)
            if len(members):
                cost = distances[np.ix_(members, members)] @ weights[members]
                updated[c] = members[np.argmin(cost)]
        if np.array_equal(updated, medoids):
            break
        medoids = updated
    return medoids, np.argmin(distances[:, medoids], axis=1) if n else np.array([], int)


def weighted_silhouette(distances: np.ndarray, labels: np.ndarray, weights: np.ndarray
                        ) -> float:
    """Mean silhouette, each path weighted by its accounts."""
    clusters = np.unique(labels)
    if len(clusters) < 2:
        return -1.0
    mean_to = np.stack([(distances[:, labels == c] @ weights[labels == c])
                        / weights[labels == c].sum() for c in clusters], axis=1)
    own = mean_to[np.arange(len(labels)), np.searchsorted(clusters, labels)]
    other = np.where(clusters[None, :] == labels[:, None], np.inf, mean_to).min(axis=1)
    s = np.where(np.maximum(own, other) > 0, (other - own) / np.maximum(own, other), 0)
    return float((s * weights).sum() / weights.sum())


def representative_journeys(con: duckdb.DuckDBPyConnection, levels=("stage", "activity"),
                            max_k: int = 6, max_paths: int = 400, top_k: int = 10
                            ) -> pd.DataFrame:
    """`representative_journeys`: per level, a handful of medoid paths with the accounts
    they stand for, their long-tail share and their conversion to client."""
    rows = []
    for level in levels:
        paths = account_paths(con, level)
        if len(paths) < 2:
            continue
        steps = [p.split(" > ") for p in paths.path]
        head = min(len(paths), max_paths)
        weights = paths.accounts.to_numpy(float)
        distances = cdist(steps[:head], steps[:head], scorer=Levenshtein.normalized_distance,
                          workers=1).astype(float)
        best = None
        for k in range(2, min(max_k, head - 1) + 1):
            medoids, labels = k_medoids(distances, weights[:head], k)
            score = weighted_silhouette(distances, labels, weights[:head])
            if best is None or score > best[0] + 1e-9:
                best = (score, medoids, labels)
        if best is None:
            medoids, labels = np.array([0]), np.zeros(head, int)
        else:
            _, medoids, labels = best
        medoid_steps = [steps[m] for m in medoids]
        if len(paths) > head:  # the rarest paths join their nearest medoid
            tail = cdist(steps[head:], medoid_steps, scorer=Levenshtein.normalized_distance,
                         workers=1)
            labels = np.r_[labels, np.argmin(tail, axis=1)]
        to_medoid = cdist(steps, medoid_steps, scorer=Levenshtein.normalized_distance,
                          workers=1)[np.arange(len(steps)), labels]
        in_tail = np.arange(len(paths)) >= top_k
        total = weights.sum()
        for c, m in enumerate(medoids):
            member = labels == c
            accounts = weights[member].sum()
            clients = paths.became_client.to_numpy(float)[member].sum()
            tail_accounts = weights[member & in_tail].sum()
            rows.append({
                "level": level, "representative": c + 1, "medoid_path": paths.path.iloc[m],
                "medoid_length": len(steps[m]), "accounts": int(accounts),
                "coverage": accounts / total, "tail_accounts": int(tail_accounts),
                "tail_coverage": tail_accounts / max(weights[in_tail].sum(), 1),
                "paths": int(member.sum()), "became_client": int(clients),
                "conversion": clients / accounts if accounts else None,
                "mean_distance": float((to_medoid[member] * weights[member]).sum() / accounts)
                if accounts else None})
    frame = pd.DataFrame(rows, columns=REPRESENTATIVE_COLUMNS)
    frame = frame.sort_values(["level", "accounts"], ascending=[False, False])
    frame["representative"] = frame.groupby("level").cumcount() + 1
    return frame.reset_index(drop=True)
