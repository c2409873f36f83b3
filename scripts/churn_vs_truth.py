"""The churn model against the generator's hidden driver of cancellation.

    python scripts/churn_vs_truth.py --seeds 3 4 --accounts 1500

The generator decides each client's weekly cancellation hazard from a latent
*health* (truth/accounts.csv). Ranking the backtest's client snapshots by -health
is the best any model could do without seeing the future; the script prints the
ROC AUC of that ranking next to the model's and recency's, on the same rows.

With `--reference-accounts N`, it also generates an independent history of N
accounts (seed 99), trains the same features on all of it and scores the same
rows ("features, big data"): how far more history would take these features.
And it regresses the hidden health on the features of the test rows, with the
truth in hand ("health R2"): the share of the driver the exports reveal at all.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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


def snapshots_of(seed: int, accounts: int, work: Path) -> tuple[pd.DataFrame, Path]:
    """Every labelled-or-not client snapshot of one generated set, and its folder."""
    folder = work / f"seed{seed}"
    generate_exports(folder / "in", GeneratorSpec(n_accounts=accounts, seed=seed))
    steps.run_all(folder / "w.duckdb", folder / "in", Config(), steps=["load", "build"])
    con = warehouse.connect(folder / "w.duckdb", read_only=True)
    _, snapshots = churn.history_snapshots(con, 180, 30)
    con.close()
    return snapshots, folder


def compare(seed: int, accounts: int, work: Path, reference=None) -> dict:
    """Backtest ROC AUC of the model, recency and the hidden driver on one generated set."""
    snapshots, folder = snapshots_of(seed, accounts, work)
    result = churn.backtest(snapshots, 180)
    truth = pd.read_csv(folder / "in" / "truth" / "accounts.csv")
    rows = result.predictions.merge(truth[["account_id", "health"]], on="account_id")
    test = snapshots.merge(rows[["account_id", "as_of", "health"]], on=["account_id", "as_of"])
    features = churn.NUMERIC
    health = make_pipeline(SimpleImputer(strategy="median"), LinearRegression()).fit(
        test[features], test.health)
    out = {"seed": seed, "test rows": len(rows), "cancellations": int(rows.label.sum()),
           "model": roc_auc_score(rows.label, rows.model),
           "recency": roc_auc_score(rows.label, rows.recency),
           "hidden driver (-health)": roc_auc_score(rows.label, -rows.health),
           "health R2": health.score(test[features], test.health)}
    if reference is not None:
        out["features, big data"] = roc_auc_score(
            test.label.astype(int), reference.predict_proba(test)[:, 1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--accounts", type=int, default=1500)
    parser.add_argument("--reference-accounts", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        reference = None
        if args.reference_accounts:
            big, _ = snapshots_of(99, args.reference_accounts, Path(work))
            big = big[big.label.notna()]
            reference = churn.ChurnModel(C=0.01).fit(big, big.label.astype(int))
        table = pd.DataFrame([compare(s, args.accounts, Path(work), reference)
                              for s in args.seeds])
    table["gap"] = table["hidden driver (-health)"] - table["model"]
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
