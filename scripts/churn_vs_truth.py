"""The churn model against the generator's hidden driver of cancellation.

    python scripts/churn_vs_truth.py --seeds 3 4 --accounts 1500

The generator decides each client's weekly cancellation hazard from a latent
*health* (truth/accounts.csv). Ranking the backtest's client snapshots by -health
is the best any model could do without seeing the future; the script prints the
ROC AUC of that ranking next to the model's and recency's, on the same rows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from journey_mining import churn, steps, warehouse  # noqa: E402
from journey_mining.config import Config  # noqa: E402
from journey_mining.generator import GeneratorSpec, generate_exports  # noqa: E402


def compare(seed: int, accounts: int, work: Path) -> dict:
    """Backtest ROC AUC of the model, recency and the hidden driver on one generated set."""
    folder = work / f"seed{seed}"
    generate_exports(folder / "in", GeneratorSpec(n_accounts=accounts, seed=seed))
    steps.run_all(folder / "w.duckdb", folder / "in", Config(), steps=["load", "build"])
    con = warehouse.connect(folder / "w.duckdb", read_only=True)
    as_of, kind = con.execute("SELECT as_of, churn_kind FROM run_parameters").fetchall()[0]
    first = con.execute(
        "SELECT min(occurred_at) FROM int_touchpoints_staged WHERE activity IN "
        "(SELECT activity FROM engagement_rules WHERE role = 'start')").fetchall()[0][0]
    snapshots = churn.features_at(con, churn.snapshot_dates(as_of, 180, 30, first), 180, kind)
    con.close()
    result = churn.backtest(snapshots, 180)
    truth = pd.read_csv(folder / "in" / "truth" / "accounts.csv")
    rows = result.predictions.merge(truth[["account_id", "health"]], on="account_id")
    return {"seed": seed, "test rows": len(rows), "cancellations": int(rows.label.sum()),
            "model": roc_auc_score(rows.label, rows.model),
            "recency": roc_auc_score(rows.label, rows.recency),
            "hidden driver (-health)": roc_auc_score(rows.label, -rows.health)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--accounts", type=int, default=1500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        table = pd.DataFrame([compare(s, args.accounts, Path(work)) for s in args.seeds])
    table["gap"] = table["hidden driver (-health)"] - table["model"]
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
