"""Score stage-state inference against the generator's latent truth (README scorecard).

    .venv/bin/python scripts/stage_scorecard.py --seeds 1 2 3 4 --accounts 800

Prints a Markdown table: per seed and method (signal labels, window, hmm), the share
of accounts whose inferred path equals the true one, back-steps before the first
sale and skips (inferred vs truth), mean path length and the shared top-10
transitions.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from journey_mining import ingest, stage_inference, warehouse
from journey_mining.config import AnalysisParams
from journey_mining.generator import GeneratorSpec, generate_exports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--accounts", type=int, default=800)
    args = parser.parse_args()
    print("| seed | method | path equal | back-step (truth) | skip (truth) "
          "| mean length (truth) | top-10 shared | seconds |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            generate_exports(Path(tmp), GeneratorSpec(n_accounts=args.accounts, seed=seed))
            con = warehouse.connect()
            ingest.load_exports(con, tmp)
            warehouse.build(con, AnalysisParams())
            truth = stage_inference.stage_paths(pd.read_csv(
                Path(tmp) / "truth" / "stage_paths.csv", parse_dates=["entered_at"]))
            runs = {"signal labels": lambda c=con: stage_inference.signal_label_paths(c)}
            for method in stage_inference.METHODS:
                params = stage_inference.InferenceParams(method=method)
                runs[method] = lambda p=params, c=con: stage_inference.stage_paths(
                    stage_inference.infer_stage_history(c, p))
            for name, run in runs.items():
                started = time.perf_counter()
                paths = run()
                seconds = time.perf_counter() - started
                c = stage_inference.scorecard(paths, truth)
                print(f"| {seed} | {name} | {c['path_equal']:.1%} | {c['back_step']:.1%} "
                      f"({c['back_step_truth']:.1%}) | {c['skip']:.1%} ({c['skip_truth']:.1%}) "
                      f"| {c['mean_length']:.2f} ({c['mean_length_truth']:.2f}) "
                      f"| {c['top_transitions_shared']} | {seconds:.1f} |")
            con.close()


if __name__ == "__main__":
    main()
