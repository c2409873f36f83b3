"""The churn model against the generator's hidden driver of cancellation.

    python scripts/churn_vs_truth.py --seeds 3 4 --accounts 1500
    python scripts/churn_vs_truth.py --grid --seeds 201    # the README's scorecard

The generator decides each client's weekly cancellation hazard from a latent
*health* (truth/accounts.csv). Ranking the backtest's client snapshots by -health
is the best any model could do without seeing the future; the script prints the
ROC AUC of that ranking next to the model's and recency's, on the same rows.

With `--reference-accounts N`, it also generates an independent history of N
accounts (seed 99), trains the same features on all of it and scores the same
rows ("features, big data"): how far more history would take these features.
With `--grid`, every point of the stage-inference grid (journey_mining.stage_scorecard
.GRID: regressions, stay lengths, touchpoint counts, off-stage and missing signals,
automatic renewals) at `--accounts` accounts, one row per point and seed.
And it regresses the hidden health on the features of the test rows, with the
truth in hand ("health R2"): the share of the driver the exports reveal at all.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from journey_mining import churn, steps, warehouse  # noqa: E402
from journey_mining.config import Config  # noqa: E402
from journey_mining.generator import GeneratorSpec, generate_exports  # noqa: E402
from journey_mining.stage_scorecard import GRID  # noqa: E402


def snapshots_of(spec: GeneratorSpec, work: Path) -> tuple[pd.DataFrame, Path]:
    """Every labelled-or-not client snapshot of one generated set, and its folder."""
    folder = Path(tempfile.mkdtemp(dir=work))
    generate_exports(folder / "in", spec)
    steps.run_all(folder / "w.duckdb", folder / "in", Config(), steps=["load", "build"])
    con = warehouse.connect(folder / "w.duckdb", read_only=True)
    _, snapshots = churn.history_snapshots(con, 180, 30)
    con.close()
    return snapshots, folder


def compare(spec: GeneratorSpec, work: Path, reference=None) -> dict:
    """Backtest ROC AUC of the model, recency and the hidden driver on one generated set."""
    snapshots, folder = snapshots_of(spec, work)
    result = churn.backtest(snapshots, 180)
    truth = pd.read_csv(folder / "in" / "truth" / "accounts.csv")
    rows = result.predictions.merge(truth[["account_id", "health"]], on="account_id")
    test = snapshots.merge(rows[["account_id", "as_of", "health"]], on=["account_id", "as_of"])
    features = churn.NUMERIC
    health = make_pipeline(SimpleImputer(strategy="median"), LinearRegression()).fit(
        test[features], test.health)
    out_auc = roc_auc_score(rows.label, rows.model)
    low, high = churn.auc_gain_interval(rows.label, rows.model, rows.recency)
    out = {"seed": spec.seed, "test rows": len(rows), "cancellations": int(rows.label.sum()),
           "model": roc_auc_score(rows.label, rows.model),
           "recency": roc_auc_score(rows.label, rows.recency),
           "hidden driver (-health)": roc_auc_score(rows.label, -rows.health),
           "health R2": health.score(test[features], test.health),
           "reliable": bool(out_auc >= churn.RELIABLE_ROC_AUC and low > 0)}
    if reference is not None:
        out["features, big data"] = roc_auc_score(
            test.label.astype(int), reference.predict_proba(test)[:, 1])
    return out


def _markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.to_numpy()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--accounts", type=int, default=1500)
    parser.add_argument("--reference-accounts", type=int, default=0)
    parser.add_argument("--grid", action="store_true")
    args = parser.parse_args()
    points = ({name: replace(spec, n_accounts=args.accounts) for name, spec in GRID.items()}
              if args.grid else {"base": GeneratorSpec(n_accounts=args.accounts)})
    with tempfile.TemporaryDirectory() as work:
        reference = None
        if args.reference_accounts:
            big, _ = snapshots_of(GeneratorSpec(n_accounts=args.reference_accounts, seed=99),
                                  Path(work))
            big = big[big.label.notna()]
            reference = churn.ChurnModel(C=0.01).fit(big, big.label.astype(int))
        table = pd.DataFrame([{"world": name, **compare(replace(spec, seed=s), Path(work),
                                                        reference)}
                              for name, spec in points.items() for s in args.seeds])
    table["gap"] = table["hidden driver (-health)"] - table["model"]
    print(_markdown(table.round(3)) if args.grid else table.round(3).to_string(index=False))
    if args.grid:
        print(f"\nmean model {table.model.mean():.3f}, recency {table.recency.mean():.3f}, "
              f"hidden driver {table['hidden driver (-health)'].mean():.3f}; "
              f"reliable {int(table.reliable.sum())} of {len(table)}")


if __name__ == "__main__":
    main()
