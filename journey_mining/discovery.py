"""Process discovery on event logs: directly-follows graphs, variants and a process model.

Module-level `discover_*` verbs in the style of pm4py's simplified interface,
but the heavy counting runs in DuckDB over a log relation (see
`journey_mining.eventlog`), so it scales to millions of events. pm4py gets only
the aggregated directly-follows graph to discover a model from.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from journey_mining.eventlog import mining_sql

__all__ = [
    "FALLBACK_TRACES",
    "discover_dfg",
    "discover_process_model",
    "discover_start_end",
    "discover_variants",
    "to_pm4py_dfg",
    "variants_as_log",
    "variants_summary",
    "write_process_model",
]


def _over(log: duckdb.DuckDBPyRelation, name: str) -> pd.DataFrame:
    return log.query("event_log", mining_sql(name)).df()


def discover_dfg(log: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Directly-follows pairs: from_activity, to_activity, transitions, cases, and hours
    between the two events (mean, median, p75, p90, min, max). One row per pair."""
    return _over(log, "directly_follows")


def discover_start_end(log: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Per activity: how many cases start and end with it."""
    return _over(log, "endpoints")


def discover_variants(log: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Distinct paths, ranked: variant, length, cases, coverage, variant_rank,
    cumulative_coverage."""
    return _over(log, "variants")


def variants_summary(variants: pd.DataFrame, top_k: int = 10) -> dict:
    """Top-k coverage and the long tail it leaves out, so nobody mistakes one for the whole."""
    top = variants[variants.variant_rank <= top_k]
    return {
        "variants": int(len(variants)),
        "cases": int(variants.cases.sum()),
        "top_k": top_k,
        "top_k_coverage": float(top.coverage.sum()),
        "long_tail_share": float(1 - top.coverage.sum()),
        "unique_path_share": float(variants.loc[variants.cases == 1, "cases"].sum()
                                   / max(variants.cases.sum(), 1)),
    }


def to_pm4py_dfg(dfg: pd.DataFrame, endpoints: pd.DataFrame):
    """Our DFG and endpoints as pm4py's DirectlyFollowsGraph object."""
    from pm4py.objects.dfg.obj import DFG

    graph = {(r.from_activity, r.to_activity): int(r.transitions) for r in dfg.itertuples()}
    starts = {r.activity: int(r.starts) for r in endpoints.itertuples() if r.starts}
    ends = {r.activity: int(r.ends) for r in endpoints.itertuples() if r.ends}
    return DFG(graph, starts, ends)


# The fallback replays at most this many traces (variants repeated by frequency,
# scaled down when the log is larger), so it stays fast at any log size.
FALLBACK_TRACES = 20_000


def variants_as_log(variants: pd.DataFrame, max_traces: int = FALLBACK_TRACES) -> pd.DataFrame:
    """A pm4py-ready log with each variant repeated by its frequency (scaled to
    `max_traces`, at least once): enough for discovery, never the raw log."""
    total = max(int(variants.cases.sum()), 1)
    scale = min(1.0, max_traces / total)
    rows, case = [], 0
    start = pd.Timestamp("2000-01-01", tz="UTC")
    for variant, cases in zip(variants.variant, variants.cases, strict=True):
        for _ in range(max(1, round(cases * scale))):
            for j, activity in enumerate(variant.split(" > ")):
                rows.append((str(case), activity, start + pd.Timedelta(minutes=j)))
            case += 1
    return pd.DataFrame(rows, columns=["case:concept:name", "concept:name", "time:timestamp"])


def discover_process_model(dfg: pd.DataFrame, endpoints: pd.DataFrame,
                           noise_threshold: float = 0.2, variants: pd.DataFrame | None = None):
    """Inductive miner on the aggregated DFG (never the raw log): (net, initial, final).

    pm4py's DFG-based inductive miner fails on some graphs (an `IndexError` when a
    cut leaves a part with no start activity, seen on generated logs of 3,000
    accounts). With `variants`, the miner then runs on a variant log instead
    (`variants_as_log`), which gives a sound model of the same behaviour.
    """
    import pm4py

    try:
        return pm4py.discover_petri_net_inductive(
            to_pm4py_dfg(dfg, endpoints), noise_threshold=noise_threshold)
    except (IndexError, KeyError, ValueError):
        if variants is None or variants.empty:
            raise
        return pm4py.discover_petri_net_inductive(
            variants_as_log(variants), noise_threshold=noise_threshold)


def write_process_model(model, directory: Path, name: str) -> dict[str, Path]:
    """Save a discovered Petri net as PNML and BPMN for other tools."""
    import pm4py

    net, initial, final = model
    directory.mkdir(parents=True, exist_ok=True)
    pnml, bpmn = directory / f"{name}.pnml", directory / f"{name}.bpmn"
    pm4py.write_pnml(net, initial, final, str(pnml))
    # No auto-layout: it shells out to the Graphviz binary, which users may not have.
    pm4py.write_bpmn(pm4py.convert_to_bpmn(net, initial, final), str(bpmn), auto_layout=False)
    return {"pnml": pnml, "bpmn": bpmn}
