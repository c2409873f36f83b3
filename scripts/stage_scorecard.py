"""Score every stage inference method on the grid of generated worlds (README "Stage states").

    .venv/bin/python scripts/stage_scorecard.py              # the whole grid, both seeds
    .venv/bin/python scripts/stage_scorecard.py --points base "hard: all of it" --seeds 101

Prints a Markdown table: per grid point, seed and method the share of accounts whose
inferred path equals the true one, back-steps before the first sale and skips
(inferred vs truth), mean path length and the shared top-10 transitions; then each
method's mean exact-path share over the grid.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from journey_mining import stage_inference
from journey_mining.stage_scorecard import GRID, GRID_SEEDS, score_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(GRID_SEEDS))
    parser.add_argument("--points", nargs="+", default=list(GRID), choices=list(GRID))
    parser.add_argument("--methods", nargs="+", default=list(stage_inference.METHODS))
    parser.add_argument("--accounts", type=int, default=None)
    args = parser.parse_args()
    print("| world | seed | method | path equal | back-step (truth) | skip (truth) "
          "| mean length (truth) | top-10 shared | seconds |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    totals: dict[str, list[float]] = {m: [] for m in args.methods}
    for point in args.points:
        for seed in args.seeds:
            spec = replace(GRID[point], seed=seed)
            if args.accounts:
                spec = replace(spec, n_accounts=args.accounts)
            for method, c in score_world(spec, args.methods).items():
                totals[method].append(c["path_equal"])
                print(f"| {point} | {seed} | {method} | {c['path_equal']:.1%} "
                      f"| {c['back_step']:.1%} ({c['back_step_truth']:.1%}) "
                      f"| {c['skip']:.1%} ({c['skip_truth']:.1%}) "
                      f"| {c['mean_length']:.2f} ({c['mean_length_truth']:.2f}) "
                      f"| {c['top_transitions_shared']} | {c['seconds']:.1f} |", flush=True)
    print()
    for method, shares in totals.items():
        print(f"{method}: mean exact path {sum(shares) / len(shares):.1%} over {len(shares)} "
              f"worlds, worst {min(shares):.1%}")


if __name__ == "__main__":
    main()
