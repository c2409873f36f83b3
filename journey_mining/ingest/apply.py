"""Apply: the second phase of a load, one transaction from the staged rows to the warehouse.

Every file has been read and judged into staging; here each source's rows are
reconciled against what is loaded (new rows appended, duplicates counted, conflicts
rejected) and the `loads` / `load_files` bookkeeping is written, all in one
transaction: any error rolls the whole load back and the warehouse is as it was. A
load that read nothing new leaves no trace, not even in `loads`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from journey_mining.ingest.discovery import SourceFile
from journey_mining.ingest.pseudonymise import _store_visitor_digests
from journey_mining.ingest.reconcile import _reconcile
from journey_mining.ingest.report import FileCounts, LoadReport
from journey_mining.pseudonyms import Pseudonymiser
from journey_mining.sources import SourceSpec
from journey_mining.warehouse import transaction

# The package's own modules share private helpers; the names for users are these.
__all__: list[str] = []

_NOTHING_READ = {"read": 0, "loaded": 0, "duplicate": 0, "rejected": 0}


def _apply(con, input_dir, staged, started: dt.datetime,
           pseudonyms: Pseudonymiser | None = None,
           reconcile: Callable[..., dict[str, dict[str, int]]] = _reconcile) -> LoadReport:
    """The second phase of a load: one transaction from the staged rows to the warehouse.

    `staged` holds per source (spec, its files, the files read, its staging table).
    `reconcile` classifies and applies one source's rows (the load passes the package's
    `_reconcile`, so that a test can replace it there to fail a load half-way).
    """
    with transaction(con):
        load_id = con.execute("SELECT coalesce(max(load_id), 0) + 1 FROM loads").fetchall()[0][0]
        report = LoadReport(load_id, str(input_dir))
        for spec, source_files, read_files, stage in staged:
            per_file = reconcile(con, spec, load_id, stage, [f.name for f in source_files])
            for f in source_files:
                fc = _counts_of(spec, f, f in read_files, per_file)
                if fc.status == "empty":
                    report.warnings.append(f"{f.name}: no data rows (header only or empty)")
                report.files.append(fc)
                con.execute(
                    "INSERT INTO load_files VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    [load_id, spec.name, f.name, f.sha256, f.bytes, fc.status, fc.rows_read,
                     fc.rows_loaded, fc.rows_duplicate, fc.rows_rejected],
                )
        if not report.recorded:
            # Every file was loaded before or holds no row: a no-op leaves no trace,
            # not even in loads.
            con.execute("DELETE FROM load_files WHERE load_id = $1", [load_id])
            return report
        if pseudonyms is not None:
            _store_visitor_digests(con, pseudonyms, load_id)
        con.execute(
            "INSERT INTO loads VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            [load_id, started, dt.datetime.now(dt.UTC).replace(tzinfo=None), str(input_dir),
             len(report.files), len(report.files) - report.files_skipped, report.files_skipped,
             report.rows_read, report.rows_loaded, report.rows_duplicate, report.rows_rejected],
        )
    return report


def _counts_of(spec: SourceSpec, f: SourceFile, was_read: bool,
               per_file: dict[str, dict[str, int]]) -> FileCounts:
    """What the load did with one file: skipped (loaded before), empty (no data row) or
    read, with the counts `reconcile` found for it."""
    if not was_read:
        return FileCounts(spec.name, f.name, "skipped")
    c = per_file.get(f.name, _NOTHING_READ)
    return FileCounts(spec.name, f.name, "read" if c["read"] else "empty",
                      c["read"], c["loaded"], c["duplicate"], c["rejected"])
