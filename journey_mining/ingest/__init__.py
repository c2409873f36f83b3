"""Ingest: load a folder of source exports into the warehouse, all or nothing.

Intuition
---------
Exports are messy and overlap, so a load is a reconciliation, not an append:

1. **Discover.** Every file in the folder is matched to a source by its name
   (config patterns, default `<source>*`). A file that matches no source, or
   matches with an unsupported format, stops the load before anything is read.
   Files whose checksum was loaded before are skipped (unless `full_reload`).
2. **Read.** DuckDB's own readers, every value as text, each row with its
   position in the file: the line number for CSV (the header is line 1) and
   JSONL, the 1-based row index for Parquet. Rows the reader cannot split
   (too many fields, malformed JSON) are kept as rejects, not dropped.
3. **Normalise and validate** in one SQL pass: column renames from the config,
   blanks to NULL, emails lower-cased and trimmed, timestamps to UTC (an offset
   wins; without one the source's configured zone applies). A row with a
   missing required value or an unparseable timestamp is rejected with every
   reason that applies.
   Steps 2 and 3 run one file at a time into a staging table (in memory, or on
   disk beside the warehouse for a load larger than half the memory limit), so
   memory is bounded by a file, not by the load.
4. **Reconcile identity.** A row is identified by (source, id). Against what is
   already loaded and within the load (first file in name order, first row
   wins): same content is a duplicate (counted, not added), different content
   is a conflicting duplicate (rejected, the first version stays).
5. **Apply** in one transaction with the `loads` / `load_files` bookkeeping.
   Any error rolls the whole load back: the warehouse is as it was.

The package has one module per job, in the order the data flows (a module imports
only from those above it):

- `scratch`: the scratch tables of one file's read, and SQL quoting;
- `discovery`: the folder's files, each matched to a source (`SourceFile`);
- `lines`: a CSV record's physical line number;
- `readers`: the CSV, Parquet and JSONL readers, into `_scan` and `_broken`;
- `timestamps`: the zones a timestamp may name, and the SQL that reads it as UTC;
- `staging`: where the read rows wait, in memory or on disk;
- `pseudonymise`: emails and visitor ids hashed on the way in;
- `normalise`: the SQL pass that normalises and judges a file's rows into staging;
- `reconcile`: new, duplicate or conflicting, against the warehouse and the load;
- `report`: what a load did (`LoadReport`, `FileCounts`);
- `apply`: the one transaction from staging to the warehouse.

`load_exports` here runs them. It looks `_reconcile` and `_memory_limit_bytes` up on
this package when it runs, so that replacing either on `journey_mining.ingest` (as the
tests do, to fail a load half-way or to fake a memory limit) changes the next load.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from journey_mining.config import IngestConfig, missing_pseudonym_key
from journey_mining.errors import TimestampFormatError
from journey_mining.ingest.apply import _apply
from journey_mining.ingest.discovery import SourceFile, discover_files
from journey_mining.ingest.normalise import _normalise
from journey_mining.ingest.pseudonymise import _load_pseudonymiser
from journey_mining.ingest.readers import MAX_COLUMNS, _read, check_headers
from journey_mining.ingest.reconcile import _reconcile
from journey_mining.ingest.report import FileCounts, LoadReport
from journey_mining.ingest.scratch import _drop_scan
from journey_mining.ingest.staging import _memory_limit_bytes, _stage_table, _staging
from journey_mining.ingest.timestamps import ZONE_ABBREVIATIONS
from journey_mining.pseudonyms import PSEUDONYMISED, pseudonymise_value
from journey_mining.sources import SOURCES, SourceSpec
from journey_mining.warehouse import ensure_schema

__all__ = [
    "MAX_COLUMNS",
    "PSEUDONYMISED",
    "ZONE_ABBREVIATIONS",
    "FileCounts",
    "LoadReport",
    "SourceFile",
    "check_headers",
    "discover_files",
    "load_exports",
    "pseudonymise_value",
]


def load_exports(
    con: duckdb.DuckDBPyConnection,
    input_dir: str | Path,
    config: IngestConfig | None = None,
    full_reload: bool = False,
    on_file=None,
    pseudonym_key: str | None = None,
) -> LoadReport:
    """Load every export in `input_dir` into the warehouse, all or nothing.

    `full_reload` re-reads files whose checksum was loaded before (their rows are
    then duplicates). `on_file(source_file)` is called before each file is read,
    for progress display. Raises an `IngestError` naming the file at fault; the
    warehouse is then unchanged.

    Two phases: every file is read, normalised and judged into a staging table, one
    file at a time and outside any warehouse transaction (memory is bounded by one
    file, and the staging table spills compressed); then one transaction checks
    duplicates, appends the new rows and writes the bookkeeping. Nothing reaches the
    warehouse's tables before that commit.
    """
    config = config or IngestConfig()
    if config.pseudonymise and not pseudonym_key:
        raise missing_pseudonym_key()
    warnings: list[str] = []
    files = discover_files(input_dir, config, skipped=warnings)
    ensure_schema(con)
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    # A far-future timestamp would become the as-of date and age every journey.
    not_after = started + dt.timedelta(hours=config.future_tolerance_hours)
    seen = _loaded_checksums(con)
    staged: list[tuple[SourceSpec, list[SourceFile], list[SourceFile], str]] = []
    undated: list[str] = []  # files whose timestamps need a format setting
    to_read = [f for f in files if full_reload or f.sha256 not in seen]
    pseudonyms = (_load_pseudonymiser(con, pseudonym_key, to_read, config)
                  if config.pseudonymise else None)
    with _staging(con, to_read, config.staging, _memory_limit_bytes) as schema:
        for spec in SOURCES.values():
            source_files = [f for f in files if f.source == spec.name]
            if not source_files:
                continue
            stage = _stage_table(con, spec, schema)
            read_files = []
            for order, f in enumerate(source_files):
                if f not in to_read:
                    continue
                if on_file:
                    on_file(f)
                try:
                    columns = _read(con, f, config, warnings)
                    warnings += _normalise(con, f, spec, columns, config, order, not_after,
                                           pseudonyms, stage)
                except TimestampFormatError as exc:
                    undated.append(str(exc))  # the other files are still looked at
                finally:
                    _drop_scan(con)
                read_files.append(f)
            staged.append((spec, source_files, read_files, stage))
        if undated:
            raise TimestampFormatError(" | ".join(undated))
        report = _apply(con, input_dir, staged, started, pseudonyms, _reconcile)
    report.warnings = warnings + report.warnings
    return report


def _loaded_checksums(con) -> set[str]:
    """The checksums of the files loaded before: a file with one of them is skipped
    unless the load is a full reload."""
    return {
        row[0]
        # a file read before, with rows or without (a header-only file is no news either)
        for row in con.execute(
            "SELECT DISTINCT sha256 FROM load_files WHERE status IN ('read', 'empty')")
        .fetchall()
    }
