"""The mining step of the pipeline: paths, variants, conformance and stage timing, stored.

Reads the built journeys (`int_journey_events`) and writes, in one transaction:

| table | one row is |
|---|---|
| `stage_transitions` | a directly-follows pair of stages (contract section 4), with its kind |
| `activity_transitions` | a directly-follows pair of touchpoint activities |
| `process_endpoints` | a level x activity: cases starting / ending with it |
| `path_variants` | a level x distinct path: cases, coverage, rank, cumulative coverage |
| `journey_conformance` | an account: its stage path, ladder fitness and deviations |
| `conformance_summary` | one row: share linear, fitness, conversion linear vs not |
| `stage_timing` | a stage: time to the next stage, Kaplan-Meier, open journeys censored |

and, when given a folder, the discovered process models (BPMN, PNML) and the
XES and OCEL 2.0 exports. All counting runs in DuckDB; pm4py gets the
aggregated DFG (discovery) and one trace per variant (conformance).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import duckdb
import pandas as pd

from journey_mining import conformance, discovery, eventlog, exports, survival
from journey_mining.operations import is_stop
from journey_mining.sql_models import read_sql
from journey_mining.stages import LADDER, STAGE_ORDER
from journey_mining.warehouse import record_issue, store_frame, transaction

__all__ = [
    "MiningParams",
    "MiningResult",
    "conformance_summary",
    "journey_conformance",
    "mine",
    "stage_timing",
    "stage_transitions",
]


@dataclass(frozen=True)
class MiningParams:
    """Choices of the mining step: repeats collapsed, top-k, noise, replay cap."""
    collapse_repeats: bool = True
    noise_threshold: float = 0.2
    top_k: int = 10
    # pm4py replays one trace per variant; beyond this many variants (the rare ones,
    # most followed by one account each) replay is skipped and fitness left empty.
    max_replayed_variants: int = 2000
    # which files go to the outputs folder (config `outputs`)
    process_models: bool = True
    xes: bool = True
    ocel: bool = True


@dataclass
class MiningResult:
    """What the mining step stored and wrote, and what failed."""
    tables: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    # (step, exception) of the optional parts that failed: pm4py models and exports
    issues: list[tuple[str, BaseException]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # export name -> time to write


# After an engagement ended: a move from here to an earlier stage is a return (a renewal
# or a new engagement), not a step back (contract v3 section 5).
AFTER_ENGAGEMENT = ("between_engagements", "advocacy", "former_client")
# The stage after each on the ladder (neighbours by name): a move to it is a ladder step.
NEXT_STAGE = dict(pairwise(LADDER))


def _transition_kind(from_stage: str, to_stage: str) -> str:
    if to_stage == "former_client" and from_stage != "former_client":
        return "cancellation"
    if to_stage == from_stage:
        return "repeat"
    if to_stage == NEXT_STAGE.get(from_stage):
        return "ladder"
    if STAGE_ORDER[to_stage] > STAGE_ORDER[from_stage]:
        # A skip jumps over a funnel stage; the stages after a sale are no ladder to climb.
        jumped = [s for s in LADDER
                  if STAGE_ORDER[from_stage] < STAGE_ORDER[s] < STAGE_ORDER[to_stage]
                  and STAGE_ORDER[s] <= STAGE_ORDER["client"]]
        return "skip" if jumped else "ladder"
    return "return" if from_stage in AFTER_ENGAGEMENT else "back_step"


def stage_transitions(dfg: pd.DataFrame) -> pd.DataFrame:
    """The stage DFG in the contract's shape, each pair marked ladder, skip, back_step,
    repeat, return (from after an engagement back to an earlier stage) or cancellation."""
    frame = dfg.rename(columns={"from_activity": "from_stage", "to_activity": "to_stage",
                                "cases": "accounts"})
    frame["kind"] = [_transition_kind(a, b) for a, b in zip(frame.from_stage, frame.to_stage,
                                                             strict=True)]
    columns = ["from_stage", "to_stage", "transitions", "accounts", "median_hours", "kind",
               "mean_hours", "p75_hours", "p90_hours", "min_hours", "max_hours"]
    return frame[columns]


def stage_timing(stage_log: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Per stage: time from first entering it to first entering any later stage.

    Kaplan-Meier over accounts, censored at the as-of date when they have not moved
    on yet. median/p75/p90_days are the times by which 50/75/90 % have moved on
    (None when fewer than that share move on within the observed time).
    """
    durations = stage_log.query("event_log", read_sql("mining/stage_durations")).df()
    rows = []
    for stage in LADDER[:-1]:
        subset = durations[durations.stage == stage]
        if subset.empty:
            rows.append((stage, STAGE_ORDER[stage], 0, 0, 0, None, None, None, None))
            continue
        curve = survival.kaplan_meier(subset.days, subset.converted)
        within_90 = curve.loc[curve.time <= 90, "converted"]
        rows.append((
            stage, STAGE_ORDER[stage], len(subset), int(subset.converted.sum()),
            int((~subset.converted).sum()),
            survival.time_to_fraction(curve, 0.5), survival.time_to_fraction(curve, 0.75),
            survival.time_to_fraction(curve, 0.9),
            float(within_90.iloc[-1]) if len(within_90) else 0.0,
        ))
    return pd.DataFrame(rows, columns=[
        "stage", "stage_order", "accounts_entered", "moved_on", "censored", "median_days",
        "p75_days", "p90_days", "moved_on_within_90d"])


def journey_conformance(con: duckdb.DuckDBPyConnection, stage_log: duckdb.DuckDBPyRelation,
                        max_replayed_variants: int = 2000,
                        issues: list | None = None) -> pd.DataFrame:
    """Per account: stage path, ladder fitness (pm4py, per variant) and deviations (SQL).

    Fitness comes from replaying the `max_replayed_variants` most frequent variants;
    accounts on rarer paths get no fitness (`fitness_replayed` false) but every
    account gets its deviations, counted in SQL. With an `issues` list, a replay
    failure is appended to it and fitness left empty instead of raising.
    """
    paths = stage_log.query("event_log", read_sql("mining/stage_paths")).df()
    frequent = (paths.groupby("variant").size().sort_values(ascending=False, kind="stable")
                .head(max_replayed_variants).index)
    frequent = pd.DataFrame({"variant": pd.Series(list(frequent), dtype=paths.variant.dtype)})
    try:
        fitness = conformance.variant_fitness(frequent)
    except Exception as exc:  # noqa: BLE001 - pm4py failing must not lose the deviations
        if issues is None or is_stop(exc):
            raise
        issues.append(("conformance: ladder replay (pm4py)", exc))
        fitness = frequent.assign(fitness=pd.Series([None] * len(frequent), dtype=float))
    deviations = conformance.journey_deviations(stage_log)
    journeys = con.sql(
        "SELECT account_id, n_engagements, furthest_stage_order FROM account_journeys").df()
    frame = (paths.merge(fitness, on="variant", how="left")
             .merge(deviations, on="account_id", how="left")
             .merge(journeys, on="account_id", how="left"))
    frame["n_reengagement_cycles"] = (frame.n_engagements.fillna(0) - 1).clip(lower=0).astype(int)
    frame["is_linear"] = (frame.n_skipped_stages == 0) & (frame.n_back_steps == 0)
    frame["reached_client"] = frame.furthest_stage_order >= STAGE_ORDER["client"]
    frame["fitness_replayed"] = frame.fitness.notna()
    return frame[["account_id", "variant", "n_stage_steps", "fitness", "fitness_replayed",
                  "n_skipped_stages",
                  "n_back_steps", "n_loops", "n_reengagement_cycles", "is_linear",
                  "reached_client"]].sort_values("account_id").reset_index(drop=True)


def conformance_summary(journeys: pd.DataFrame) -> pd.DataFrame:
    """One row: how linear journeys are, and whether the linear ones convert better."""
    def rate(flags: pd.Series) -> float | None:
        return float(flags.mean()) if len(flags) else None

    linear = journeys[journeys.is_linear]
    other = journeys[~journeys.is_linear]
    return pd.DataFrame([{
        "accounts": len(journeys),
        "linear_share": rate(journeys.is_linear),
        "mean_fitness": rate(journeys.fitness.dropna()),
        "fitness_replayed_share": rate(journeys.fitness_replayed),
        "share_with_skips": rate(journeys.n_skipped_stages > 0),
        "share_with_back_steps": rate(journeys.n_back_steps > 0),
        "share_with_loops": rate(journeys.n_loops > 0),
        "share_reengaged": rate(journeys.n_reengagement_cycles > 0),
        "accounts_linear": len(linear),
        "accounts_non_linear": len(other),
        "client_conversion_linear": rate(linear.reached_client),
        "client_conversion_non_linear": rate(other.reached_client),
    }])


def mine(con: duckdb.DuckDBPyConnection, out_dir: Path | None = None,
         params: MiningParams | None = None) -> MiningResult:
    """Run the mining step on built journeys; store its tables (and files in `out_dir`)."""
    params = params or MiningParams()
    result = MiningResult()
    # The logs are warehouse tables: every analysis below, pm4py and notebooks read them.
    logs = {level: eventlog.materialise(
                con, eventlog.event_log(con, level, "account", params.collapse_repeats),
                f"{level}_log", temporary=False)
            for level in ("stage", "activity")}
    dfgs = {level: discovery.discover_dfg(log) for level, log in logs.items()}
    endpoints = {level: discovery.discover_start_end(log) for level, log in logs.items()}
    variants = {level: discovery.discover_variants(log) for level, log in logs.items()}
    journeys = journey_conformance(con, logs["stage"], params.max_replayed_variants,
                                   result.issues)
    tables = {
        "stage_transitions": stage_transitions(dfgs["stage"]),
        "activity_transitions": dfgs["activity"].rename(columns={"cases": "accounts"}),
        "process_endpoints": pd.concat(
            [frame.assign(level=level) for level, frame in endpoints.items()], ignore_index=True),
        "path_variants": pd.concat(
            [frame.assign(level=level, in_top_k=frame.variant_rank <= params.top_k)
             for level, frame in variants.items()], ignore_index=True),
        "journey_conformance": journeys,
        "conformance_summary": conformance_summary(journeys),
        "stage_timing": stage_timing(logs["stage"]),
    }
    with transaction(con):
        for name, frame in tables.items():
            store_frame(con, name, frame)
    result.tables = ["stage_log", "activity_log", *tables]
    if out_dir is not None:
        _write_models_and_exports(con, Path(out_dir), dfgs, endpoints, variants, params,
                                  result)
    for step, exc in result.issues:
        record_issue(con, step, exc)
    result.summary = {level: discovery.variants_summary(frame, params.top_k)
                      for level, frame in variants.items()}
    return result


def _write_models_and_exports(con, out_dir: Path, dfgs, endpoints, variants,
                              params: MiningParams, result: MiningResult) -> None:
    """Process models (pm4py's inductive miner) and XES/OCEL exports, each optional:
    one that fails is noted in `result.issues` and the others are still written."""
    for level in ("stage", "activity"):
        if dfgs[level].empty or not params.process_models:
            continue
        try:
            model = discovery.discover_process_model(dfgs[level], endpoints[level],
                                                     params.noise_threshold, variants[level])
            for kind, path in discovery.write_process_model(
                    model, out_dir / "models", f"{level}_process").items():
                result.files[f"{level}_{kind}"] = path
        except Exception as exc:  # noqa: BLE001 - one model failing loses nothing else
            if is_stop(exc):
                raise
            result.issues.append((f"{level} process model (pm4py inductive miner)", exc))
    for name, write in (("xes", lambda: exports.write_xes(
                            con, out_dir / "exports" / "account_log.xes")),
                        ("ocel", lambda: exports.write_ocel(
                            con, out_dir / "exports" / "journeys.jsonocel"))):
        if not getattr(params, name):
            continue
        started = time.perf_counter()
        try:
            result.files[name] = write()
            result.seconds[name] = time.perf_counter() - started
        except Exception as exc:  # noqa: BLE001
            if is_stop(exc):
                raise
            result.issues.append((f"{name} export", exc))
