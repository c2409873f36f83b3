"""The sample generator is seeded, writes the contract's formats, and only adds dirt."""

from __future__ import annotations

import hashlib

import duckdb
import pyarrow.parquet as pq

from journey_mining import ingest, warehouse
from journey_mining.generator import GeneratorSpec, generate_exports
from tests.conftest import SAMPLE


def _content(path) -> bytes:
    """A text file's bytes; a Parquet file's schema and rows. Parquet bytes also carry the
    writer's version (pyarrow 26 writes other bytes than the version that wrote the
    sample), which is not what the sample promises."""
    if path.suffix != ".parquet":
        return path.read_bytes()
    table = pq.read_table(path)
    return repr((table.schema.remove_metadata().to_string(), table.to_pydict())).encode()


def digest(folder):
    return {p.name: hashlib.sha256(_content(p)).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_writes_the_same_files(tmp_path):
    spec = GeneratorSpec(n_accounts=30, seed=3)
    generate_exports(tmp_path / "a", spec)
    generate_exports(tmp_path / "b", spec)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")


def test_committed_sample_is_what_the_documented_command_writes(tmp_path):
    # `make sample` = journey generate --accounts 400 --seed 7
    generate_exports(tmp_path, GeneratorSpec(n_accounts=400, seed=7))
    assert digest(tmp_path) == digest(SAMPLE)


def test_clean_rows_all_load_and_every_kind_of_dirt_is_rejected(tmp_path):
    counts = generate_exports(tmp_path, GeneratorSpec(n_accounts=60, seed=11))
    con = warehouse.connect()
    report = ingest.load_exports(con, tmp_path)
    for source, n in counts.items():
        loaded = con.execute(f"SELECT count(*) FROM raw_{source}").fetchall()[0][0]
        assert loaded == n, source
    reasons = {r[0].split(":")[0] for r in con.execute(
        "SELECT DISTINCT reason FROM rejected_rows").fetchall()}
    assert reasons == {"missing required value", "unparseable timestamp in occurred_at",
                       "conflicting duplicate"}
    assert report.rows_duplicate > 0  # the monthly web files overlap


def test_exports_carry_the_dirt_of_real_ones(tmp_path):
    generate_exports(tmp_path, GeneratorSpec(n_accounts=60, seed=11))
    names = [p.name for p in tmp_path.iterdir() if p.is_file()]
    assert {n.split(".", 1)[1] for n in names} == {"csv", "csv.gz", "parquet", "jsonl.gz"}
    con = duckdb.connect()
    emails = con.execute(
        f"SELECT email FROM read_csv('{tmp_path}/crm_contacts.csv', all_varchar=true)"
    ).fetchall()
    assert any(e[0] != e[0].strip().lower() for e in emails)  # mixed case, stray spaces
    offsets = con.execute(
        f"SELECT count(*) FROM read_json('{tmp_path}/email_events_*.jsonl.gz', "
        "format='newline_delimited', columns={occurred_at: 'VARCHAR'}) "
        "WHERE occurred_at LIKE '%+02:00'").fetchall()[0][0]
    assert offsets > 0


def test_truth_is_written_beside_not_among_the_exports(tmp_path):
    generate_exports(tmp_path, GeneratorSpec(n_accounts=20, seed=1))
    assert {p.name for p in (tmp_path / "truth").iterdir()} == {
        "identities.csv", "touchpoints.parquet", "accounts.csv", "engagements.csv",
        "stage_paths.csv", "drivers.json"}
    ingest.discover_files(tmp_path, ingest.IngestConfig())  # no error: truth/ is not read


def test_loading_the_sample_twice_adds_nothing(tmp_path):
    con = warehouse.connect()
    first = ingest.load_exports(con, SAMPLE)
    rejected = con.execute("SELECT count(*) FROM rejected_rows").fetchall()
    again = ingest.load_exports(con, SAMPLE, full_reload=True)
    assert again.rows_loaded == 0
    assert again.rows_duplicate == first.rows_loaded + first.rows_duplicate
    assert con.execute("SELECT count(*) FROM rejected_rows").fetchall() == rejected
