"""Normalise and validate: one SQL pass from a file's rows as read to its staged rows.

The rows of `_scan` are renamed to the source's contract (config renames), blanks
become NULL, emails are lower-cased and trimmed, integral numbers written as floats
lose their `.0`, timestamps go to UTC, and a row with a missing required value or an
unreadable timestamp gets every reason that applies. With pseudonymisation on, the
emails and visitor ids are hashed in the same pass, before anything is stored. The
statement is built here from small pieces, one per column, and run once per file;
every value it needs is bound as a `$name` parameter.
"""

from __future__ import annotations

import datetime as dt

from journey_mining.config import IngestConfig
from journey_mining.errors import MissingColumnError
from journey_mining.ingest.discovery import SourceFile
from journey_mining.ingest.pseudonymise import _pseudonym, _pseudonymise_broken
from journey_mining.ingest.readers import _jsonl_keys, _mapped_columns
from journey_mining.ingest.scratch import _quote, _sql_text
from journey_mining.ingest.staging import _FILE_STRIDE
from journey_mining.ingest.timestamps import (
    _create_timestamp_macros,
    _split_formats,
    _timestamp_reasons,
    _timestamp_selects,
    _zone_parameters,
    check_file_timestamps,
)
from journey_mining.pseudonyms import PSEUDONYMISED, Pseudonymiser
from journey_mining.sources import SourceSpec

# The package's own modules share private helpers; the names for users are these.
__all__: list[str] = []


def _normalise(con, f: SourceFile, spec: SourceSpec, columns: list[str], config: IngestConfig,
               file_order: int, not_after: dt.datetime, pseudonyms: Pseudonymiser | None,
               stage: str) -> list[str]:
    """Append the file's rows, renamed, normalised and validated, to the `stage` table.

    With `pseudonyms`, emails and anonymous ids are pseudonymised here, before anything is
    stored: in their own columns, wherever they appear inside other text (a link
    with `?email=`), in the raw row kept for rejects and in rows the reader could
    not split. Returns warnings for the run log (a configured column the file lacks).
    """
    renames = config.source(spec.name).columns
    warnings = _rename_warnings(f, spec, renames, columns)
    if not columns and not _broken_count(con):
        return warnings  # an empty JSONL file: no rows, so no columns to check
    mapped = _mapped_columns(spec, columns, renames)
    _check_required(con, f, spec, columns, renames, mapped)

    private = _private_columns(spec)
    pseudonymised = pseudonyms is not None
    if pseudonymised:
        pseudonyms.register(con)
        if _broken_count(con):
            _pseudonymise_broken(con, pseudonyms, f.format)
    _create_timestamp_macros(con)
    texts, selects, reasons = _column_sql(spec, mapped, private, pseudonymised,
                                          config.timestamp_formats_of(spec.name))
    hidden = {mapped[c]: c for c in private if c in mapped} if pseudonymised else {}
    raw_struct, raw_json = _raw_row_sql(f, spec, columns, hidden, pseudonymised)
    statement = _stage_insert(stage, spec, texts, selects, reasons, raw_struct, raw_json)
    con.execute(statement, _bound_values(statement, f, spec, config, file_order, not_after,
                                         pseudonyms))
    check_file_timestamps(con, stage, f.name, spec.name,
                          [c for c in spec.timestamps if c in mapped])
    return warnings


def _broken_count(con) -> int:
    """How many rows of the file the reader could not split (`_broken`)."""
    return con.execute("SELECT count(*) FROM _broken").fetchall()[0][0]


def _rename_warnings(f: SourceFile, spec: SourceSpec, renames: dict[str, str],
                     columns: list[str]) -> list[str]:
    """One warning per configured rename whose column the file does not have (a typo in
    the config, or an export that changed): the load goes on, the run log says so."""
    return [
        f"{f.name}: ingest.sources.{spec.name}.columns maps '{column}' to '{target}', but the "
        f"file has no column '{column}'"
        for column, target in renames.items() if column not in columns
    ]


def _check_required(con, f: SourceFile, spec: SourceSpec, columns: list[str],
                    renames: dict[str, str], mapped: dict[str, str]) -> None:
    """Refuse a file that lacks a required column, naming the columns it has (for JSONL,
    every key in the file) and the rename that would have supplied it."""
    for required in spec.required:
        if required not in mapped:
            available = _jsonl_keys(con) if f.format.startswith(".jsonl") else columns
            raise MissingColumnError(str(f.path), spec.name, required, available,
                                     next((c for c, t in renames.items() if t == required), None))


def _private_columns(spec: SourceSpec) -> set[str]:
    """The source's columns that are pseudonymised as a whole: emails and visitor ids."""
    return {c for c in spec.columns if c in spec.emails or c in PSEUDONYMISED}


def _integral(text: str) -> str:
    """SQL: an integral number written as a float (Parquet, spreadsheets: employees 10.0,
    an id 42.0) as the integer, so a re-export in another format is a duplicate, not a
    conflicting one; every other text as it is."""
    return (f"CASE WHEN NOT ends_with({text}, '0') THEN {text} "
            f"ELSE regexp_replace({text}, '^(-?[0-9]+)\\.0+$', '\\1') END")


def _clean_text(spec: SourceSpec, column: str, source_column: str, private: set[str],
                pseudonymised: bool) -> str:
    """SQL for the cleaned text of a contract column read from `source_column`: trimmed,
    blank as NULL, an integral float as the integer (not for times and emails), and
    pseudonymised (hashed when private, emails and ids inside it replaced otherwise)."""
    clean = f"nullif(trim({_quote(source_column)}), '')"
    if column not in spec.timestamps and column not in spec.emails:
        clean = _integral(clean)
    if pseudonymised:
        clean = (_pseudonym(clean, column in spec.emails) if column in private
                 else f"_scrub({clean})")
    return clean


def _typed_selects(spec: SourceSpec, column: str, text: str, formats: list[str]
                   ) -> list[str]:
    """SQL select items that type a contract column from its cleaned `text`: timestamps
    to UTC (the source's formats first), emails lower-cased, the rest as text."""
    if column in spec.timestamps:
        return _timestamp_selects(column, text, formats)
    if column in spec.emails:
        return [f"lower({text}) AS {column}"]
    return [f"{text} AS {column}"]


def _column_reasons(spec: SourceSpec, column: str) -> list[str]:
    """SQL reasons to reject a row for one contract column: its timestamp's (unreadable,
    in the future) and, for a required column, a missing value."""
    reasons = _timestamp_reasons(column, spec.name) if column in spec.timestamps else []
    if column in spec.required:
        present = f"_text_{column}" if column in spec.timestamps else column
        reasons.append(
            f"CASE WHEN {present} IS NULL THEN 'missing required value: {column}' END"
        )
    return reasons


def _column_sql(spec: SourceSpec, mapped: dict[str, str], private: set[str],
                pseudonymised: bool, formats: list[str] = ()
                ) -> tuple[list[str], list[str], list[str]]:
    """The SQL of every contract column, in the statement's three steps: cleaned texts
    (each column's text is cleaned once), typed select items, and reasons to reject.
    A column the file lacks reads as NULL."""
    texts: list[str] = []
    selects: list[str] = []
    reasons: list[str] = []
    for column in spec.columns:
        text = f"_t_{column}" if column in mapped else "NULL"
        if column in mapped:
            clean = _clean_text(spec, column, mapped[column], private, pseudonymised)
            texts.append(f"{clean} AS {text}")
        selects += _typed_selects(spec, column, text, list(formats))
        reasons += _column_reasons(spec, column)
    return texts, selects, reasons


def _raw_value(spec: SourceSpec, column: str, hidden: dict[str, str],
               pseudonymised: bool) -> str:
    """SQL for one file column in the raw row kept for a reject: as read, or pseudonymised
    (hashed when it holds a private contract column, its text scrubbed otherwise)."""
    if not pseudonymised:
        return _quote(column)
    if column in hidden:
        return _pseudonym(_quote(column), hidden[column] in spec.emails)
    return f"_scrub({_quote(column)}::VARCHAR)"


def _raw_row_sql(f: SourceFile, spec: SourceSpec, columns: list[str], hidden: dict[str, str],
                 pseudonymised: bool) -> tuple[str, str]:
    """SQL for the raw row kept with a reject: the fields packed per row, and the text
    made of them.

    The raw row is kept as text for rejected rows only: packed as a struct here, turned
    into JSON only where a reason was found (most rows are never serialised). `hidden`
    maps the file columns that hold private contract columns to those columns.
    """
    if f.format.startswith(".jsonl"):
        return _jsonl_raw_row_sql(spec, hidden, pseudonymised)
    raw_struct = ", ".join(
        f"{_quote(c)} := {_raw_value(spec, c, hidden, pseudonymised)}" for c in columns
    ) or "empty := NULL"
    return raw_struct, "to_json(raw)::VARCHAR"


def _jsonl_raw_row_sql(spec: SourceSpec, hidden: dict[str, str], pseudonymised: bool
                       ) -> tuple[str, str]:
    """The raw row of a JSONL file: its line (every key, as written). Pseudonymised, the
    emails and visitor ids inside it are replaced, then its private keys are hashed."""
    raw_struct, raw_json = "line := _raw_line", "raw.line"
    if pseudonymised:
        raw_struct += "".join(f", p{i} := {_quote(c)}" for i, c in enumerate(hidden))
        raw_json = "_scrub(raw.line)"
        if hidden:
            patch = ", ".join(
                f"{_sql_text(c)}, {_pseudonym(f'raw.p{i}', hidden[c] in spec.emails)}"
                for i, c in enumerate(hidden))
            raw_json = f"json_merge_patch({raw_json}, json_object({patch}))::VARCHAR"
    return raw_struct, raw_json


def _stage_insert(stage: str, spec: SourceSpec, texts: list[str], selects: list[str],
                  reasons: list[str], raw_struct: str, raw_json: str) -> str:
    """The statement that appends a file's rows to `stage`: cleaned, typed, judged (a
    reason, the raw row and no hash for a reject; a content hash for a valid row), and
    the rows the reader could not split, as rejects."""
    content = ", ".join(f"{c} := {c}" for c in spec.columns)
    return (
        f"""INSERT INTO {stage}
            WITH texts AS (
                SELECT *{''.join(', ' + t for t in texts)} FROM _scan
            ),
            typed AS (
                SELECT _row_number, {', '.join(selects)},
                       struct_pack({raw_struct}) AS raw
                FROM texts
            ),
            judged AS (
                SELECT *, nullif(concat_ws('; ', {', '.join(reasons)}), '') AS _reason
                FROM typed
            )
            SELECT $file AS _file, $file_order::BIGINT * {_FILE_STRIDE} + _row_number,
                   _row_number, {', '.join(spec.columns)}, _reason,
                   CASE WHEN _reason IS NOT NULL THEN {raw_json} END AS raw,
                   CASE WHEN _reason IS NULL THEN hash(struct_pack({content}))::VARCHAR END
            FROM judged
            UNION ALL
            SELECT $file, $file_order::BIGINT * {_FILE_STRIDE} + _row_number, _row_number,
                   {', '.join('NULL' for _ in spec.columns)}, reason, raw, NULL
            FROM _broken"""
    )


def _bound_values(statement: str, f: SourceFile, spec: SourceSpec, config: IngestConfig,
                  file_order: int, not_after: dt.datetime, pseudonyms: Pseudonymiser | None
                  ) -> dict:
    """The values bound to the statement's `$name` parameters (only those it uses)."""
    now = not_after - dt.timedelta(hours=config.future_tolerance_hours)
    parameters = {"tz": config.timezone_of(spec.name), "file": f.name, "file_order": file_order,
                  **_zone_parameters(),
                  "not_after": not_after, "now": now,
                  "tolerance": str(config.future_tolerance_hours)}
    naive, aware = _split_formats(config.timestamp_formats_of(spec.name))
    parameters.update(ts_naive=naive, ts_aware=aware)
    parameters = {k: v for k, v in parameters.items() if f"${k}" in statement}
    if "$key" in statement:
        parameters["key"] = pseudonyms.key
    return parameters
