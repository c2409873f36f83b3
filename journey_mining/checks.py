"""Data tests declared beside each model (`sql/<layer>/<model>.yml`), run on a warehouse.

A spec names the model's grain and what must hold for every row:

    grain: one row per canonical touchpoint
    unique: [touchpoint_id]            # a column or a list of columns
    not_null: [touchpoint_id, source]
    accepted_values: {channel: [web, email, crm]}
    relationships: {account_id: account_journeys.account_id}
    expect: ["last_touch_at >= first_touch_at"]   # SQL predicates over the model's rows

Each check counts the rows that break it; zero is a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import yaml

from journey_mining.sql_models import LAYERS, SQL_DIR

__all__ = [
    "SPEC_DIRS",
    "CheckResult",
    "failed_test_breaches",
    "load_gate_breaches",
    "model_specs",
    "run_checks",
    "store_results",
]

# Specs of the SQL models, and of the tables the mining and analysis steps store.
SPEC_DIRS = (*LAYERS, "mining", "analysis")


@dataclass(frozen=True)
class CheckResult:
    """One declared data test of one model: how many rows break it."""
    model: str
    check: str
    failing_rows: int  # -1 when the test itself could not run (see `error`)
    error: str | None = None

    @property
    def passed(self) -> bool:
        """True when no row breaks the test."""
        return self.failing_rows == 0


def _queries(model: str, spec: dict) -> list[tuple[str, str]]:
    queries = []
    for key in spec.get("unique", []):
        cols = key if isinstance(key, list) else [key]
        col_list = ", ".join(cols)
        queries.append((f"unique({col_list})",
                        f"SELECT count(*) FROM (SELECT {col_list} FROM {model} "
                        f"GROUP BY ALL HAVING count(*) > 1)"))
    for col in spec.get("not_null", []):
        queries.append((f"not_null({col})", f"SELECT count(*) FROM {model} WHERE {col} IS NULL"))
    for col, values in spec.get("accepted_values", {}).items():
        literals = ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
        queries.append((f"accepted_values({col})",
                        f"SELECT count(*) FROM {model} WHERE {col} NOT IN ({literals})"))
    for col, target in spec.get("relationships", {}).items():
        table, target_col = target.split(".")
        # A join on the target's distinct keys, not a correlated NOT EXISTS: DuckDB read
        # every column of the model for that (59 s on the touchpoints of 100 M events).
        queries.append((f"relationships({col} -> {target})",
                        f"SELECT count(*) FROM {model} m LEFT JOIN (SELECT DISTINCT "
                        f"{target_col} AS _key FROM {table}) t ON t._key = m.{col} "
                        f"WHERE m.{col} IS NOT NULL AND t._key IS NULL"))
    for predicate in spec.get("expect", []):
        queries.append((f"expect({predicate})",
                        f"SELECT count(*) FROM {model} WHERE NOT coalesce(({predicate}), false)"))
    return queries


def model_specs(sql_dir: Path = SQL_DIR) -> dict[str, dict]:
    """The declared tests of every model (or mined table) that has a .yml in sql/."""
    specs = {}
    for layer in SPEC_DIRS:
        for path in sorted((sql_dir / layer).glob("*.yml")):
            specs[path.stem] = yaml.safe_load(path.read_text()) or {}
    return specs


def run_checks(con: duckdb.DuckDBPyConnection, sql_dir: Path = SQL_DIR) -> list[CheckResult]:
    """Run every declared test of the tables that exist; one result per check.

    The specs are trusted SQL from the repository. A table not built yet (the
    mining tables before the mining step) is skipped.
    """
    existing = {row[0] for row in con.execute(
        "SELECT table_name FROM duckdb_tables() "
        "UNION SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    results = []
    for model, spec in model_specs(sql_dir).items():
        if model not in existing:
            continue
        for name, query in _queries(model, spec):
            # A test that cannot even run (a subquery meets duplicated rows) is a failed
            # test with its reason, not a crash that hides every other result.
            try:
                results.append(CheckResult(model, name, con.execute(query).fetchall()[0][0]))
            except duckdb.Error as exc:
                results.append(CheckResult(model, name, -1, str(exc).splitlines()[0][:300]))
    return results


def load_gate_breaches(con: duckdb.DuckDBPyConnection, gates) -> list[str]:
    """Sources whose share of rejected rows in the last recorded load is above the gate
    (`QualityGates.max_rejected_share`), as sentences naming the setting."""
    rows = con.execute("""
        SELECT source, sum(rows_read), sum(rows_rejected) FROM load_files
        WHERE load_id = (SELECT max(load_id) FROM loads) GROUP BY source ORDER BY source
    """).fetchall()
    breaches = []
    for source, read, rejected in rows:
        limit = gates.rejected_share_of(source)
        if read and rejected / read > limit:
            breaches.append(f"{source}: {rejected:,} of {read:,} rows rejected "
                            f"({rejected / read:.1%}) in the last load, above "
                            f"quality.max_rejected_share {limit:.0%}")
    return breaches


def failed_test_breaches(results: list[CheckResult], gates) -> list[str]:
    """Failed data tests whose model's severity is error."""
    return [f"data test {r.model} {r.check} "
            + (f"could not run: {r.error}" if r.error else f"failed on {r.failing_rows:,} rows")
            for r in results if not r.passed and gates.severity_of(r.model) == "error"]


def store_results(con: duckdb.DuckDBPyConnection, results: list[CheckResult], gates) -> None:
    """`data_test_results`: one row per declared test of this build, with its severity."""
    import pandas as pd

    from journey_mining.warehouse import store_frame

    store_frame(con, "data_test_results", pd.DataFrame(
        [(r.model, r.check, r.failing_rows, r.passed, gates.severity_of(r.model))
         for r in results],
        columns=["model", "check", "failing_rows", "passed", "severity"]))
