"""Readers: one file's rows into the scratch table `_scan`, every value as text.

DuckDB's own readers do the reading (CSV, Parquet, JSONL, gzip-compressed or not);
every value comes back as text, so that normalising and judging it is one set of
rules for every format. Each row carries its position in the file (the line number
for CSV, whose header is line 1, and JSONL; the 1-based row index for Parquet), and
rows the reader cannot split (too many fields, malformed JSON) go to `_broken` with
their reason: they are rejects, not dropped. A reader returns the columns the file
has, which `_mapped_columns` maps to the source's contract.
"""

from __future__ import annotations

import json
import re

import duckdb

from journey_mining.config import IngestConfig
from journey_mining.errors import MissingColumnError, UnreadableFileError
from journey_mining.ingest.discovery import SourceFile
from journey_mining.ingest.lines import _map_logical_lines, _open_bytes, _physical_lines
from journey_mining.ingest.scratch import _drop, _position, _quote
from journey_mining.sources import SOURCES, SourceSpec

__all__ = ["MAX_COLUMNS", "check_headers"]

_NESTED_TYPES = ("STRUCT", "MAP", "LIST", "JSON", "UNION")

# A header wider than this is not an export of any source (the widest source has 11
# columns; CRM exports with every custom property run to a few hundred).
MAX_COLUMNS = 2000
_MAX_HEADER_BYTES = 1 << 20


def _csv_options(f: SourceFile, delimiter: str | None, encoding: str | None
                 ) -> tuple[str, dict]:
    """The reader's options for a CSV (path, and the configured delimiter and encoding):
    the SQL to append to its call, and the values bound to it."""
    options, extra = {"path": str(f.path)}, ""
    if delimiter:
        extra, options["delim"] = ", delim = $delim", delimiter
    if encoding:
        extra, options["encoding"] = extra + ", encoding = $encoding", encoding
    return extra, options


def _csv_dialect(con, f: SourceFile, delimiter: str | None, encoding: str | None
                 ) -> tuple[str, str, str]:
    """(delimiter, quote, escape) the reader uses for this file (sniffed unless set; with
    rejects stored the reader sniffs as with `ignore_errors`, so this does too)."""
    extra, options = _csv_options(f, delimiter, encoding)
    sniffed = con.execute(
        f"SELECT Delimiter, Quote, Escape FROM sniff_csv($path{extra}, ignore_errors = true)",
        options).fetchall()[0]
    delim, quote, escape = ("" if value in (None, "(empty)") else value for value in sniffed)
    return delim, quote, escape or quote


def _check_header(f: SourceFile, delimiter: str | None) -> None:
    """Refuse a CSV whose header is absurdly wide before the reader sniffs it (a header of
    100,000 columns took the reader minutes and gigabytes for one row)."""
    try:
        with _open_bytes(f) as handle:
            header = handle.readline(_MAX_HEADER_BYTES + 1)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile: a plain file named .gz
        hint = " (the name ends .gz: is it compressed?)" if f.format.endswith(".gz") else ""
        raise UnreadableFileError(str(f.path), f"{exc}{hint}") from None
    if len(header) > _MAX_HEADER_BYTES:
        raise UnreadableFileError(str(f.path), "its first line is longer than 1 MiB: not a "
                                               "CSV header")
    candidates = [delimiter] if delimiter else [",", ";", "\t", "|"]
    columns = 1 + max(header.count(c.encode()) for c in candidates)
    if columns > MAX_COLUMNS:
        raise UnreadableFileError(
            str(f.path), f"its header has {columns:,} columns, more than the {MAX_COLUMNS:,} "
                         f"an export of {f.source} can have: is it the right file?")


def _header_columns(con, f: SourceFile, config: IngestConfig) -> list[str] | None:
    """The columns a CSV or Parquet file's header names, as its reader will see them
    (None for JSONL, whose keys can change from line to line)."""
    source = config.source(f.source)
    if f.format in (".csv", ".csv.gz"):
        _check_header(f, source.delimiter)
        extra, options = _csv_options(f, source.delimiter, source.encoding)
        query = (f"SELECT * FROM read_csv($path, all_varchar = true, header = true, "
                 f"ignore_errors = true{extra}) LIMIT 0")
    elif f.format == ".parquet":
        query, options = "SELECT * FROM read_parquet($path) LIMIT 0", {"path": str(f.path)}
    else:
        return None
    try:
        return [c for c in con.execute(query, options).df().columns]
    except duckdb.Error as exc:
        raise UnreadableFileError(str(f.path), _reader_reason(f, str(exc))) from None


def check_headers(files: list[SourceFile], config: IngestConfig) -> None:
    """The command's pre-check, before anything starts: only each file's header is read.
    An absurdly wide CSV header and a missing required column (config renames applied)
    are refused here, in a second, not after the scheduler has started."""
    con = duckdb.connect()
    try:
        for f in files:
            if f.bytes == 0:
                continue
            columns = _header_columns(con, f, config)
            if columns is None:
                continue
            spec, renames = SOURCES[f.source], config.source(f.source).columns
            mapped = _mapped_columns(spec, columns, renames)
            for required in spec.required:
                if required not in mapped:
                    raise MissingColumnError(
                        str(f.path), spec.name, required, columns,
                        next((c for c, t in renames.items() if t == required), None))
    finally:
        con.close()


def _read_csv(con, f: SourceFile, delimiter: str | None, encoding: str | None,
              warnings: list[str]) -> list[str]:
    """Read a CSV into _scan(_row_number, <columns as text>); rejects into _broken.

    One rejected record is one row of _broken, with every reason the reader gave.
    `_row_number` is the physical line a record starts on (the header is line 1),
    also after quoted fields with embedded newlines and blank lines. Every record
    the reader sees is in one of the two: none is dropped on the way.
    """
    _check_header(f, delimiter)
    _drop(con, "_csv_rejects", "_csv_scans", "_scan_raw")
    extra, options = _csv_options(f, delimiter, encoding)
    con.execute(
        f"""CREATE TEMP TABLE _scan_raw AS SELECT * FROM read_csv($path, all_varchar = true,
            header = true, store_rejects = true, rejects_table = '_csv_rejects',
            rejects_scan = '_csv_scans'{extra})""",
        options,
    )
    n_good = con.execute("SELECT count(*) FROM _scan_raw").fetchall()[0][0]
    n_broken, n_encoding = _group_rejects(con, f, encoding, n_good)
    if n_encoding:  # said in the run log too: 3 of 12 accounts went quietly before
        warnings.append(f"{f.path}: {n_encoding:,} rows are not valid {encoding or 'UTF-8'} "
                        f"and were rejected; {_encoding_setting(f, encoding)}")
    _number_csv_rows(con, f, delimiter, encoding, n_good, n_broken, warnings)
    _drop(con, "_csv_rejects", "_csv_scans", "_record_rejects")
    return [c for c in con.table("_scan").columns if c != "_row_number"]


def _encoding_setting(f: SourceFile, encoding: str | None) -> str:
    """The setting that would read text that is not in `encoding`."""
    other = "latin-1" if encoding in (None, "utf-8") else "utf-8"
    return (f"set ingest.sources.{f.source}.encoding: {other} in the config if the file "
            f"is {other.upper()}")


def _encoding_hint(f: SourceFile, encoding: str | None) -> str:
    """What a row rejected for its encoding says: the setting that would read it."""
    return f" (the text is not {encoding or 'UTF-8'}: {_encoding_setting(f, encoding)})"


def _group_rejects(con, f: SourceFile, encoding: str | None, n_good: int
                   ) -> tuple[int, int]:
    """Group the reader's errors into one reject per record (`_record_rejects`: logical
    line, reason, raw text) and return how many records were rejected, and how many of
    them for their encoding.

    A file most of whose rows are not in the expected encoding is refused as a whole
    (with the setting to change): rejecting nearly every row would hide the real fault.
    """
    # The reader reports one error per column at fault; a record is one reject.
    con.execute(
        """CREATE TEMP TABLE _record_rejects AS
           WITH errors AS (
               SELECT line, error_type, min(column_idx) AS column_idx,
                      arg_min(error_message, column_idx) AS message,
                      arg_min(csv_line, column_idx) AS csv_line
               FROM _csv_rejects GROUP BY line, error_type
           )
           SELECT line,
                  'unreadable row: ' || string_agg(lower(error_type) || ' (' || message || ')',
                                                   '; ' ORDER BY column_idx)
                  || CASE WHEN bool_or(error_type = 'INVALID ENCODING')
                          THEN $encoding_hint ELSE '' END AS reason,
                  trim(any_value(csv_line), e'\r\n') AS raw,
                  bool_or(error_type = 'INVALID ENCODING') AS bad_encoding
           FROM errors GROUP BY line""",
        {"encoding_hint": _encoding_hint(f, encoding)},
    )
    n_broken, n_encoding = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE bad_encoding) FROM _record_rejects"
    ).fetchall()[0]
    if n_encoding and n_encoding * 2 >= n_good + n_broken:
        raise UnreadableFileError(
            str(f.path),
            f"{n_encoding} of {n_good + n_broken} rows are not valid "
            f"{encoding or 'UTF-8'}; set ingest.sources.{f.source}.encoding in the config "
            "(latin-1 or utf-16)",
        )
    return n_broken, n_encoding


def _number_csv_rows(con, f: SourceFile, delimiter: str | None, encoding: str | None,
                     n_good: int, n_broken: int, warnings: list[str]) -> None:
    """`_scan` (the good records) and `_broken` (the rejects), each row numbered by the
    physical line it starts on."""
    # Logical line L (the reader's numbering: records and blank lines, header = 1) to
    # physical line. With one record per line and no blank line (the usual export) they
    # are the same, and the mapping is done in SQL; otherwise the file's lines are
    # scanned for quoted line breaks and blank lines (Python, only for such files).
    con.execute("CREATE TEMP TABLE _broken (_row_number BIGINT, reason VARCHAR, raw VARCHAR)")
    one_record_per_line = _physical_lines(f) == 1 + n_good + n_broken
    if one_record_per_line and not n_broken:
        # Row k of the reader is line k + 1: no copy of the rows, a view numbers them.
        con.execute(f"CREATE TEMP VIEW _scan AS SELECT {_position('_scan_raw')} + 1 "
                    "AS _row_number, * FROM _scan_raw")
    elif one_record_per_line:
        con.execute("INSERT INTO _broken SELECT line, reason, raw FROM _record_rejects")
        con.execute(
            f"""CREATE TEMP TABLE _scan AS
               WITH lines AS (
                   SELECT l AS line, row_number() OVER (ORDER BY l) AS k
                   FROM range(2, $n + 2) r(l)
                   WHERE l NOT IN (SELECT line FROM _record_rejects)
               )
               SELECT lines.line AS _row_number, s.* EXCLUDE (k)
               FROM (SELECT {_position('_scan_raw')} AS k, * FROM _scan_raw) s
               JOIN lines USING (k) ORDER BY lines.line""",
            {"n": n_good + n_broken})
    else:
        _map_logical_lines(con, f, _csv_dialect(con, f, delimiter, encoding), encoding,
                           n_good, warnings)


def _read_parquet(con, f: SourceFile) -> list[str]:
    """Read a Parquet file into `_scan` (_row_number, every column as text; nested values
    as their JSON text) and an empty `_broken`: a Parquet row always splits."""
    con.execute("CREATE TEMP TABLE _broken (_row_number BIGINT, reason VARCHAR, raw VARCHAR)")
    described = con.execute(
        "DESCRIBE SELECT * FROM read_parquet($path)", {"path": str(f.path)}
    ).fetchall()
    casts = ", ".join(
        (
            f"to_json({_quote(name)})::VARCHAR AS {_quote(name)}"
            if str(kind).upper().startswith(_NESTED_TYPES) or "[]" in str(kind)
            else f"{_quote(name)}::VARCHAR AS {_quote(name)}"
        )
        for name, kind, *_ in described
    )
    con.execute(
        f"""CREATE TEMP TABLE _scan AS SELECT file_row_number + 1 AS _row_number, {casts}
            FROM read_parquet($path, file_row_number = true) ORDER BY file_row_number""",
        {"path": str(f.path)},
    )
    return [name for name, *_ in described]


def _read_jsonl(con, f: SourceFile, candidates: list[str], encoding: str | None = None
                ) -> list[str]:
    """Read a JSONL file into `_scan` (a view: _row_number, one text column per key,
    `_raw_line`); malformed lines and lines that are not objects into `_broken`.

    Only `candidates` (the source's columns and the config's renames) are extracted,
    in one parse of each line; other keys are kept in the line's own text, which is
    the raw row of a reject. Returns the candidates the file has, in order of first
    appearance.
    """
    # Lines as text with the CSV reader (no quoting, a separator that never occurs), so
    # a malformed line becomes a reject with its line number, and each line parsed once:
    # a malformed line makes the extraction fail (NULL under try); a valid JSON text is
    # an object exactly when it starts with "{".
    paths = ["$." + json.dumps(k) for k in candidates]
    con.execute(
        r"""CREATE TEMP TABLE _scan_raw AS
            SELECT line, _v,
                   coalesce(_v IS NOT NULL AND starts_with(ltrim(line, e' 	
'), '{'), false)
                       AS _is_object
            FROM (SELECT line, try(json_extract_string(line, $paths::VARCHAR[])) AS _v
                  FROM read_csv($path, columns = {'line': 'VARCHAR'}, header = false,
                                delim = e'', quote = '', escape = '', auto_detect = false,
                                encoding = $encoding))""",
        {"path": str(f.path), "encoding": encoding or "utf-8", "paths": paths},
    )
    con.execute(
        f"""CREATE TEMP TABLE _broken AS
           SELECT _row_number,
                  CASE WHEN _v IS NULL THEN 'unreadable row: malformed JSON'
                       ELSE 'unreadable row: not a JSON object' END AS reason,
                  line AS raw
           FROM (SELECT {_position('_scan_raw')} AS _row_number, * FROM _scan_raw
                 WHERE NOT _is_object)
           WHERE trim(coalesce(line, '')) <> ''"""
    )
    order = _keys_in_file(con, candidates, paths)
    selects = "".join(f", _v[{i + 1}] AS {_quote(candidates[i])}" for i in order)
    con.execute(
        f"""CREATE TEMP VIEW _scan AS
            SELECT {_position('_scan_raw')} AS _row_number{selects}, line AS _raw_line
            FROM _scan_raw WHERE _is_object""")
    return [candidates[i] for i in order]


def _keys_in_file(con, candidates: list[str], paths: list[str]) -> list[int]:
    """The indexes of the `candidates` a JSONL file has (in `_scan_raw`), in order of
    first appearance (a key only ever null comes first): the columns `_scan` gets."""
    # A key is in the file when some line has a value for it. A key without any value is
    # absent unless its quoted name occurs in the text (a cheap search), and then it is
    # looked up by a second parse (rare: a column that is always null).
    firsts = list(con.execute(
        f"""SELECT {', '.join(f'min(rowid) FILTER (WHERE _v[{i + 1}] IS NOT NULL)'
                              for i in range(len(candidates)))}
            FROM _scan_raw WHERE _is_object""").fetchall()[0])
    empty = [i for i, first in enumerate(firsts) if first is None]
    if empty:
        named = con.execute(
            f"""SELECT {', '.join(f'bool_or(contains(line, ${n + 1}))' for n in range(len(empty)))}
                FROM _scan_raw WHERE _is_object""",
            [json.dumps(candidates[i]) for i in empty]).fetchall()[0]
        empty = [i for i, found in zip(empty, named, strict=True) if found]
    if empty:
        present = con.execute(
            f"""SELECT {', '.join(f'bool_or(json_exists(line, ${n + 1}))'
                                  for n in range(len(empty)))}
                FROM _scan_raw WHERE _is_object""", [paths[i] for i in empty]).fetchall()[0]
        for i, found in zip(empty, present, strict=True):
            firsts[i] = 0 if found else None
    found = sorted((first, i) for i, first in enumerate(firsts) if first is not None)
    return [i for _, i in found]


def _jsonl_keys(con) -> list[str]:
    """Every key of a JSONL file read by `_read_jsonl`, in order of first appearance (for
    an error message: a full second parse)."""
    return [row[0] for row in con.execute(
        """SELECT key FROM (SELECT rowid AS n, unnest(json_keys(line)) AS key
                            FROM _scan_raw WHERE _is_object)
           GROUP BY key ORDER BY min(n), key""").fetchall()]


def _mapped_columns(spec: SourceSpec, columns: list[str], renames: dict[str, str]
                    ) -> dict[str, str]:
    """Contract column -> the file's column it is read from (config renames applied;
    the first file column that maps to a contract column wins)."""
    mapped: dict[str, str] = {}
    for column in columns:
        target = renames.get(column, column)
        if target in spec.columns and target not in mapped:
            mapped[target] = column
    return mapped


def _first_long_line(f: SourceFile, limit: int) -> tuple[int, int] | None:
    """(line number, bytes) of the first physical line longer than `limit`."""
    with _open_bytes(f) as handle:
        for number, line in enumerate(handle, 1):
            if len(line) > limit:
                return number, len(line)
    return None


def _mixed_line_endings(f: SourceFile, sample: int = 1 << 20) -> str | None:
    """The line endings of the file's first MiB in words when there are several kinds."""
    with _open_bytes(f) as handle:
        head = handle.read(sample)
    crlf = head.count(b"\r\n")
    kinds = {"\\r\\n": crlf, "\\n": head.count(b"\n") - crlf,
             "\\r alone": head.count(b"\r") - crlf}
    found = {k: n for k, n in kinds.items() if n}
    return (", ".join(f"{n:,} {k}" for k, n in found.items()) if len(found) > 1 else None)


def _reader_reason(f: SourceFile, message: str) -> str:
    """The reader's error in one line with its cause. DuckDB numbers the line of a
    too-long record within its buffer (a 50 MB line 3 was "Line: 1") and puts the cause
    lines below the row it quotes: the true line and size are found here."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if "sniffing file" in message:
        mixed = _mixed_line_endings(f)
        if mixed:
            return (f"its lines end in different ways ({mixed}), so no CSV dialect can be "
                    "detected: save it again with one kind of line ending")
    limit = re.search(r"Maximum line size of (\d+) bytes exceeded", message)
    if limit:
        found = _first_long_line(f, int(limit.group(1)))
        where = (f"line {found[0]} is {found[1] / 1e6:,.1f} MB long" if found
                 else "a record is longer than the reader's limit")
        return (f"{where}, more than the {int(limit.group(1)) / 1e6:.0f} MB a CSV record "
                "may have: is it the right file?")
    cause = next((line for line in lines[1:] if not line.startswith(
        ("Original Line", "Possible Solution", "file =", "LINE "))
        and "(Auto-Detected)" not in line), None)
    return lines[0] + (f" ({cause})" if cause and len(cause) < 300 else "")


def _read(con, f: SourceFile, config: IngestConfig, warnings: list[str]) -> list[str]:
    """Read one file with the reader of its format into `_scan` and `_broken`; returns the
    file's columns. A reader's failure is an UnreadableFileError naming the file (with
    the encoding setting to try when the text is not UTF-8)."""
    encoding = config.source(f.source).encoding
    try:
        if f.format in (".csv", ".csv.gz"):
            return _read_csv(con, f, config.source(f.source).delimiter, encoding, warnings)
        if f.format == ".parquet":
            return _read_parquet(con, f)
        spec, renames = SOURCES[f.source], config.source(f.source).columns
        candidates = list(dict.fromkeys(
            [c for c, target in renames.items() if target in spec.columns] + list(spec.columns)))
        return _read_jsonl(con, f, candidates, encoding)
    except duckdb.Error as exc:
        reason = _reader_reason(f, str(exc))
        if any(w in str(exc).lower() for w in ("invalid unicode", "byte sequence",
                                                "not valid utf-8")):
            reason += (f"; set ingest.sources.{f.source}.encoding in the config "
                       "(latin-1 or utf-16)")
        raise UnreadableFileError(str(f.path), reason) from exc
