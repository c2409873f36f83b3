"""How far real journeys are from the textbook ladder.

Intuition
---------
The reference model is the stage ladder read as a textbook funnel: stages in
ladder order, each once, and a journey may stop after any stage (a prospect still
in evaluation has not deviated; it is just not done). Against it:

* pm4py's token-based replay gives each account a fitness in [0, 1];
* SQL over the stage-level log names the deviations that explain it: skipped
  stages (a jump up the ladder, or a journey that starts above awareness),
  back-steps (a move down), loops (a return to a stage already visited) and
  re-engagement cycles (engagements after the first).

Replay runs once per distinct stage path (variant), not once per account, and the
fitness is joined back to accounts: B2B stage logs have a few hundred variants
however many accounts there are, so this scales. Each account's deviations are
counted in SQL over all its events.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from journey_mining.sql_models import read_sql
from journey_mining.stages import LADDER

__all__ = [
    "journey_deviations",
    "ladder_model",
    "variant_fitness",
]


def ladder_model():
    """The textbook ladder as a Petri net: (net, initial marking, final marking)."""
    from pm4py.objects.petri_net.obj import Marking, PetriNet
    from pm4py.objects.petri_net.utils.petri_utils import add_arc_from_to

    net = PetriNet("textbook ladder")
    places = [PetriNet.Place(f"p{i}") for i in range(len(LADDER) + 1)]
    end = PetriNet.Place("end")
    for place in [*places, end]:
        net.places.add(place)
    for i, stage in enumerate(LADDER):
        step = PetriNet.Transition(stage, stage)
        net.transitions.add(step)
        add_arc_from_to(places[i], step, net)
        add_arc_from_to(step, places[i + 1], net)
        stop = PetriNet.Transition(f"stop_after_{stage}", None)  # silent: may stop here
        net.transitions.add(stop)
        add_arc_from_to(places[i + 1], stop, net)
        add_arc_from_to(stop, end, net)
    return net, Marking({places[0]: 1}), Marking({end: 1})


def variant_fitness(variants: pd.DataFrame) -> pd.DataFrame:
    """Token-based replay fitness of each stage variant on the ladder: variant, fitness."""
    import pm4py

    if variants.empty:
        return pd.DataFrame({"variant": variants["variant"].iloc[0:0],
                             "fitness": pd.Series([], dtype=float)})
    rows = []
    for i, variant in enumerate(variants["variant"]):
        for j, stage in enumerate(variant.split(" > ")):
            rows.append((str(i), stage, pd.Timestamp("2000-01-01", tz="UTC")
                         + pd.Timedelta(minutes=j)))
    log = pd.DataFrame(rows, columns=["case:concept:name", "concept:name", "time:timestamp"])
    net, initial, final = ladder_model()
    replay = pm4py.conformance_diagnostics_token_based_replay(
        log, net, initial, final, opt_parameters={"show_progress_bar": False})
    # pm4py returns one result per case, in the log's case order (0, 1, ... as strings)
    order = sorted(log["case:concept:name"].unique(), key=int)
    fitness = {case: r["trace_fitness"] for case, r in zip(order, replay, strict=True)}
    return pd.DataFrame({"variant": list(variants["variant"]),
                         "fitness": [fitness[str(i)] for i in range(len(variants))]})


def journey_deviations(stage_log: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Per account: n_skipped_stages, n_back_steps, n_loops over its stage-level log.

    A skip counts the ladder stages jumped over beyond the furthest stage reached so
    far (so a return to a lower stage and back is a back-step and a loop, not a skip).
    """
    return stage_log.query("event_log", read_sql("mining/journey_deviations")).df()
