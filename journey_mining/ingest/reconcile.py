"""Reconcile identity: which staged rows are new, duplicates or conflicts, and apply them.

Exports overlap, so a row is identified by (source, id), not by its file. Against
what is already loaded and within the load (first file in name order, first row
wins), the same content is a duplicate (counted, not added) and different content a
conflicting duplicate (rejected: the first version stays). Runs inside the load's
transaction, one source at a time, from that source's staging table.
"""

from __future__ import annotations

from journey_mining.ingest.scratch import _drop
from journey_mining.ingest.staging import _FILE_STRIDE
from journey_mining.sources import SourceSpec

# The package's own modules share private helpers; the names for users are these.
__all__: list[str] = []


def _reconcile(con, spec: SourceSpec, load_id: int, stage: str,
               file_names: list[str]) -> dict[str, dict[str, int]]:
    """Classify the staged rows of one source (new, duplicate, conflict, invalid) and apply.

    Most rows are new, so only the others are written down (`_settled`): rows whose id
    is already loaded, and rows whose id came earlier in this load. The new rows then
    go straight from staging to the raw table by an anti-join on that short list, and
    nothing the size of the load is copied twice. `file_names[i]` is the file of order i.
    Returns per file: {'loaded': n, 'duplicate': n, 'rejected': n, 'read': n}.
    """
    _settle(con, spec, stage, file_names)
    _append_new_rows(con, spec, load_id, stage)
    _record_rejects(con, spec, load_id, stage)
    counts = _file_counts(con, stage, file_names)
    _drop(con, "_settled")
    return counts


def _settle(con, spec: SourceSpec, stage: str, file_names: list[str]) -> None:
    """`_settled`: the valid staged rows that are not simply new (their id is already
    loaded, or came earlier in this load), each a duplicate or a conflict, a conflict
    with its reason naming where the first version is."""
    key = spec.id_column
    first_file = f"$files[(f._first_position // {_FILE_STRIDE})::INTEGER + 1]"
    con.execute(
        f"""CREATE TEMP TABLE _settled AS
            WITH repeated AS (   -- ids met more than once in this load, and their first row
                SELECT {key}, min(_position) AS _first_position,
                       arg_min(_row_hash, _position) AS _first_hash
                FROM {stage} WHERE _reason IS NULL
                GROUP BY {key} HAVING count(*) > 1
            )
            SELECT r._position,
                   CASE
                       WHEN e.{key} IS NOT NULL AND e._row_hash = r._row_hash THEN 'duplicate'
                       WHEN e.{key} IS NOT NULL THEN 'conflict'
                       WHEN r._row_hash = f._first_hash THEN 'duplicate'
                       ELSE 'conflict'
                   END AS _status,
                   -- the reason's text only for conflicts (a string per row adds up at 100 M)
                   CASE
                       WHEN e.{key} IS NOT NULL AND e._row_hash <> r._row_hash
                           THEN format('conflicting duplicate: {key} {{}} was loaded before from '
                                       || '{{}} row {{}} with different content',
                                       r.{key}, e._file, e._row_number)
                       WHEN e.{key} IS NULL AND r._row_hash <> f._first_hash
                           THEN format('conflicting duplicate: {key} {{}} first seen in {{}} '
                                       || 'row {{}} with different content', r.{key},
                                       {first_file},
                                       f._first_position % {_FILE_STRIDE})
                   END AS _conflict_reason
            FROM {stage} r
            LEFT JOIN repeated f ON f.{key} = r.{key}
            LEFT JOIN {spec.raw_table} e ON e.{key} = r.{key}
            WHERE r._reason IS NULL
              AND (e.{key} IS NOT NULL OR r._position <> f._first_position)""",
        {"files": file_names},
    )


def _append_new_rows(con, spec: SourceSpec, load_id: int, stage: str) -> None:
    """Append the new rows (valid and not settled) from staging to the raw table."""
    cols = ", ".join(spec.columns)
    con.execute(
        f"""INSERT INTO {spec.raw_table}
            SELECT {cols}, $load_id, _file, _row_number, _row_hash
            FROM {stage} r
            WHERE _reason IS NULL
              AND NOT EXISTS (SELECT 1 FROM _settled s WHERE s._position = r._position)""",
        {"load_id": load_id},
    )


def _record_rejects(con, spec: SourceSpec, load_id: int, stage: str) -> None:
    """Append the rejects to `rejected_rows`: invalid rows and conflicting duplicates.

    A reject already recorded (same file, row and raw row) is not recorded twice on a
    reload. A conflicting duplicate was valid, so its raw text is the row as read
    (after renaming).
    """
    content = ", ".join(f"{c} := {c}" for c in spec.columns)
    con.execute(
        f"""INSERT INTO rejected_rows
           WITH rejects AS (
               SELECT _file AS file, _row_number AS row_number, _reason AS reason, raw
               FROM {stage} WHERE _reason IS NOT NULL
               UNION ALL
               SELECT r._file, r._row_number, s._conflict_reason,
                      to_json(struct_pack({content}))::VARCHAR
               FROM _settled s JOIN {stage} r USING (_position)
               WHERE s._status = 'conflict'
           )
           SELECT $source, file, row_number, reason, raw, $load_id
           FROM rejects r
           WHERE NOT EXISTS (
               SELECT 1 FROM rejected_rows x
               WHERE x.source = $source AND x.file = r.file AND x.row_number = r.row_number
                 AND x.raw IS NOT DISTINCT FROM r.raw)
           ORDER BY file, row_number""",
        {"source": spec.name, "load_id": load_id},
    )


def _file_counts(con, stage: str, file_names: list[str]) -> dict[str, dict[str, int]]:
    """Rows read, loaded, duplicate and rejected per file: every valid row counts as
    loaded until `_settled` says it was a duplicate or a conflict."""
    counts = {
        file: {"read": read, "loaded": valid, "duplicate": 0, "rejected": read - valid}
        for file, read, valid in con.execute(
            f"""SELECT _file, count(*), count(*) FILTER (WHERE _reason IS NULL)
                FROM {stage} GROUP BY _file""").fetchall()
    }
    for order, status, n in con.execute(
            f"""SELECT (_position // {_FILE_STRIDE})::INTEGER, _status, count(*)
                FROM _settled GROUP BY ALL""").fetchall():
        c = counts[file_names[order]]
        c["loaded"] -= n
        c["duplicate" if status == "duplicate" else "rejected"] += n
    return counts
