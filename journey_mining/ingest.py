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
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import gzip
import hashlib
import io
import json
import re
import stat
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from journey_mining.config import IngestConfig, missing_pseudonym_key
from journey_mining.errors import (
    IngestError,
    MissingColumnError,
    UnknownFileError,
    UnreadableFileError,
)
from journey_mining.pseudonyms import PSEUDONYMISED, Pseudonymiser, pseudonymise_value
from journey_mining.sources import SOURCES, SourceSpec, file_format
from journey_mining.warehouse import ensure_schema, transaction

__all__ = [
    "MAX_COLUMNS",
    "PSEUDONYMISED",
    "ZONE_ABBREVIATIONS",
    "FileCounts",
    "LoadReport",
    "SourceFile",
    "check_csv_headers",
    "discover_files",
    "load_exports",
    "pseudonymise_value",
]

# What follows the time of day of a timestamp, when it is a zone (a name, an
# abbreviation, GMT+2, or a bare +2 that is then refused) rather than an offset.
_ZONE_AFTER_TIME = (r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*"
                    r"([A-Za-z][A-Za-z0-9_/+:.-]*|[+-]\d{1,2})$")
# A timestamp carries its own offset when a time of day is followed by Z or +hh[:mm].
_OFFSET_PATTERN = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)$"
_NESTED_TYPES = ("STRUCT", "MAP", "LIST", "JSON", "UNION")
# A row's position in a load: file order times this, plus its row number (one integer).
_FILE_STRIDE = 1 << 40


@dataclass(frozen=True)
class SourceFile:
    """One export file matched to its source."""

    source: str
    path: Path
    name: str
    format: str
    sha256: str
    bytes: int


@dataclass
class FileCounts:
    """What one file's load did: rows read, loaded, duplicate, rejected."""
    source: str
    file: str
    status: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_duplicate: int = 0
    rows_rejected: int = 0


@dataclass
class LoadReport:
    """What one load did; the same figures land in the `loads` table."""

    load_id: int
    input_dir: str
    files: list[FileCounts] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def _sum(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.files)

    @property
    def rows_read(self) -> int:
        """Rows read from every file of the load."""
        return self._sum("rows_read")

    @property
    def rows_loaded(self) -> int:
        """Rows appended to the raw tables."""
        return self._sum("rows_loaded")

    @property
    def rows_duplicate(self) -> int:
        """Rows skipped as already loaded."""
        return self._sum("rows_duplicate")

    @property
    def rows_rejected(self) -> int:
        """Rows kept in rejected_rows with a reason."""
        return self._sum("rows_rejected")

    @property
    def files_skipped(self) -> int:
        """Files skipped because the same checksum was loaded before."""
        return sum(f.status == "skipped" for f in self.files)

    @property
    def files_empty(self) -> int:
        """Files with a header and no rows."""
        return sum(f.status == "empty" for f in self.files)

    @property
    def recorded(self) -> bool:
        """False when nothing was read: every file unchanged or without a data row."""
        return self.files_skipped + self.files_empty < len(self.files)

    def summary(self) -> str:
        """One line for the log: files and rows read, loaded, rejected."""
        read = len(self.files) - self.files_skipped
        if not self.recorded:
            return (f"nothing new to load: {len(self.files)} files ({self.files_skipped} "
                    f"unchanged, {self.files_empty} without rows); no load recorded")
        return (
            f"load {self.load_id}: {len(self.files)} files ({read} read, {self.files_skipped} "
            f"unchanged), {self.rows_read:,} rows read: {self.rows_loaded:,} loaded, "
            f"{self.rows_duplicate:,} duplicate, {self.rows_rejected:,} rejected"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry_kind(path: Path) -> str | None:
    """What a folder entry is when it is not a regular file ('a FIFO', ...), else None.

    Only regular files are read: opening a FIFO blocks until someone writes to it, and
    a device or socket is no export."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return "a broken link"
    if stat.S_ISREG(mode):
        return None
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO (named pipe)",
             stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a device", stat.S_ISBLK: "a device"}
    return next((kind for test, kind in kinds.items() if test(mode)), "not a regular file")


def discover_files(input_dir: str | Path, config: IngestConfig,
                   skipped: list[str] | None = None, checksums: bool = True
                   ) -> list[SourceFile]:
    """Match every regular file of `input_dir` (not sub-folders, not dot-files) to one source.

    Entries that are not regular files (FIFOs, sockets, devices, broken links) are not
    opened; with a `skipped` list, one line per such entry is added to it. Without
    `checksums` the files are not read (sha256 is empty): a pre-check's listing.
    """
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise IngestError(f"{input_dir}: input folder not found")
    found = []
    for path in sorted(input_dir.iterdir()):
        if path.name.startswith("."):
            continue
        kind = _entry_kind(path)
        if kind == "a folder":
            continue
        if kind is not None:
            if skipped is not None:
                skipped.append(f"{path}: skipped, {kind} is not an export file")
            continue
        sources = [
            name
            for name in SOURCES
            if any(fnmatch.fnmatchcase(path.name, p) for p in config.patterns_of(name))
        ]
        if not sources:
            raise UnknownFileError(
                str(path), f"file name matches no source (names start with: {', '.join(SOURCES)})"
            )
        if len(sources) > 1:
            raise UnknownFileError(str(path), f"file name matches several sources: {sources}")
        fmt = file_format(path.name)
        if fmt is None:
            raise UnknownFileError(
                str(path), "unsupported format (use .csv, .csv.gz, .parquet, .jsonl or .jsonl.gz)"
            )
        found.append(
            SourceFile(sources[0], path, path.name, fmt, _sha256(path) if checksums else "",
                       path.stat().st_size)
        )
    return found


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _drop(con: duckdb.DuckDBPyConnection, *tables: str) -> None:
    for table in tables:
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _drop_scan(con) -> None:
    """Drop what reading one file left: `_scan` (a table or a view) and what it reads."""
    kinds = dict(con.execute(
        """SELECT table_name, table_type FROM information_schema.tables
           WHERE table_catalog = 'temp'""").fetchall())
    for name in ("_scan", "_runs", "_scan_raw", "_broken"):
        if name in kinds:
            con.execute(f"DROP {'VIEW' if kinds[name] == 'VIEW' else 'TABLE'} {name}")


def _position(table: str) -> str:
    """1-based insertion position of a row of a temp table filled in file order.

    Rows written inside a transaction get row ids from a large offset, so the
    position is the row id minus the table's first row id.
    """
    return f"rowid - (SELECT min(rowid) FROM {table}) + 1"


def _open_bytes(f: SourceFile):
    """The file's bytes, decompressed when its name ends .gz."""
    return gzip.open(f.path, "rb") if f.format.endswith(".gz") else f.path.open("rb")


def _physical_lines(f: SourceFile) -> int:
    """Number of lines of the file's text (a last line without a newline counts)."""
    count, last = 0, b"\n"
    with _open_bytes(f) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def _open_text_lines(f: SourceFile, encoding: str | None):
    """The file's lines as bytes (UTF-8, Latin-1: the delimiter and quote are one byte
    each) or as text (UTF-16), newlines kept."""
    handle = _open_bytes(f)
    if encoding == "utf-16":
        return io.TextIOWrapper(handle, encoding="utf-16", errors="replace", newline="")
    return handle


def _inside_quotes_after(line, inside: bool, delim, quote, escape) -> bool:
    """Whether a line ends inside a quoted field, by the CSV rules DuckDB reads with.

    A quote opens a quoted field only at the start of a field (line start or after the
    delimiter): `https://a.io/27in-5"-monitor` is a plain value. Inside quotes a doubled
    quote (or the escape character) is literal and a single quote closes the field.
    Only the quotes of a line are visited (`find` does the scanning).
    """
    i = 0
    while True:
        if inside:
            j = line.find(quote, i)
            if escape and escape != quote:
                e = line.find(escape, i)
                if 0 <= e < j or (j < 0 <= e):
                    i = e + 2
                    continue
            if j < 0:
                return True
            if line[j + 1:j + 2] == quote:
                i = j + 2
                continue
            inside, i = False, j + 1
            continue
        j = line.find(quote, i)
        if j < 0:
            return False
        if j == 0 or line[j - 1:j] == delim:
            inside = True
        i = j + 1


def _line_segments(f: SourceFile, dialect: tuple[str, str, str], encoding: str | None,
                   rejected: set[int]) -> tuple[array, array, int, dict[int, int]]:
    """Where each record the reader kept starts, as runs of consecutive lines.

    The reader numbers its good records 1..n in file order, and its rejects by logical
    line (records and blank lines, the header is 1). Walking the physical lines once
    with the same quoting rules gives each logical line its first physical line. Good
    records on consecutive lines form one run, stored as (first record number, first
    line): memory grows with the breaks (blank lines, multi-line records, rejects), not
    with the file. Returns the runs, the number of good records found and the physical
    line of each rejected logical line.
    """
    delim, quote, escape = dialect
    firsts_k, firsts_line = array("q"), array("q")
    rejected_at: dict[int, int] = {}
    logical, good, inside, next_line = 0, 0, False, None
    with _open_text_lines(f, encoding) as lines:
        if not isinstance(lines, io.TextIOWrapper):
            delim, quote, escape = (c.encode("latin-1") for c in dialect)
        for number, text in enumerate(lines, start=1):
            if not inside:
                logical += 1
                if logical in rejected:
                    rejected_at[logical] = number
                elif logical > 1 and text.strip():
                    good += 1
                    if number != next_line:
                        firsts_k.append(good)
                        firsts_line.append(number)
                    next_line = number + 1
            if quote and (inside or quote in text):
                inside = _inside_quotes_after(text, inside, delim, quote, escape)
            if inside and next_line == number + 1:
                next_line = None  # the record goes on over the next line: a break
    return firsts_k, firsts_line, good, rejected_at


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


def _map_logical_lines(con, f: SourceFile, dialect, encoding, n_good: int,
                       warnings: list[str]) -> None:
    """_broken and _scan with physical line numbers, from a walk over the file's lines."""
    rejected = {row[0] for row in con.execute("SELECT line FROM _record_rejects").fetchall()}
    firsts_k, firsts_line, good, rejected_at = _line_segments(f, dialect, encoding, rejected)
    rows = con.execute("SELECT line, reason, raw FROM _record_rejects ORDER BY line").fetchall()
    if rows:
        con.executemany("INSERT INTO _broken VALUES (?, ?, ?)",
                        [(rejected_at.get(line, line), reason, raw) for line, reason, raw in rows])
    if good != n_good:
        # Our walk and the reader disagree on where records start: every record is
        # still kept, numbered by its logical line (exact up to the first break).
        warnings.append(f"{f.path}: the line numbers of its rows are approximate (the "
                        f"reader found {n_good:,} records, a walk over its lines {good:,})")
        firsts_k, firsts_line = array("q", [1]), array("q", [2])
    runs = pa.table({"k": pa.array(firsts_k, pa.int64()),
                     "line": pa.array(firsts_line, pa.int64())})
    con.register("_runs_arrow", runs)
    try:
        con.execute("CREATE TEMP TABLE _runs AS SELECT k, line FROM _runs_arrow")
    finally:
        con.unregister("_runs_arrow")
    con.execute(
        f"""CREATE TEMP VIEW _scan AS
            SELECT r.line + s.k - r.k AS _row_number, s.* EXCLUDE (k)
            FROM (SELECT {_position('_scan_raw')} AS k, * FROM _scan_raw) s
            ASOF JOIN _runs r ON s.k >= r.k""")


# A header wider than this is not an export of any source (the widest source has 11
# columns; CRM exports with every custom property run to a few hundred).
MAX_COLUMNS = 2000
_MAX_HEADER_BYTES = 1 << 20


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


def check_csv_headers(files: list[SourceFile], config: IngestConfig) -> None:
    """Refuse absurd CSV headers before anything starts (the command's pre-check): only
    the first line of each file is read."""
    for f in files:
        if f.format in (".csv", ".csv.gz"):
            _check_header(f, config.source(f.source).delimiter)


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
                                                   '; ' ORDER BY column_idx) AS reason,
                  trim(any_value(csv_line), e'\r\n') AS raw,
                  bool_or(error_type = 'INVALID ENCODING') AS bad_encoding
           FROM errors GROUP BY line"""
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
    _drop(con, "_csv_rejects", "_csv_scans", "_record_rejects")
    return [c for c in con.table("_scan").columns if c != "_row_number"]


def _read_parquet(con, f: SourceFile) -> list[str]:
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
    selects = "".join(f", _v[{i + 1}] AS {_quote(candidates[i])}" for _, i in found)
    con.execute(
        f"""CREATE TEMP VIEW _scan AS
            SELECT {_position('_scan_raw')} AS _row_number{selects}, line AS _raw_line
            FROM _scan_raw WHERE _is_object""")
    return [candidates[i] for _, i in found]


def _jsonl_keys(con) -> list[str]:
    """Every key of a JSONL file read by `_read_jsonl`, in order of first appearance (for
    an error message: a full second parse)."""
    return [row[0] for row in con.execute(
        """SELECT key FROM (SELECT rowid AS n, unnest(json_keys(line)) AS key
                            FROM _scan_raw WHERE _is_object)
           GROUP BY key ORDER BY min(n), key""").fetchall()]


def _pseudonym(text: str, is_email: bool) -> str:
    """SQL for a keyed hash of a value; an email keeps its domain, which stitching needs."""
    return f"_pseudo_email({text}, $key)" if is_email else f"_pseudo_id({text}, $key)"


# Zone abbreviations a timestamp may end with, as the fixed offsets they stand for
# (PostgreSQL's default set). None: the abbreviation names several zones (IST: India,
# Ireland, Israel) and such a row is rejected rather than guessed. A zone name
# (America/New_York) is read by DuckDB's ICU time zones, daylight saving included.
ZONE_ABBREVIATIONS: dict[str, str | None] = {
    "UTC": "+00:00", "UT": "+00:00", "GMT": "+00:00", "WET": "+00:00", "WEST": "+01:00",
    "BST": "+01:00", "CET": "+01:00", "CEST": "+02:00", "MET": "+01:00", "MEST": "+02:00",
    "EET": "+02:00", "EEST": "+03:00", "MSK": "+03:00",
    "NST": "-03:30", "NDT": "-02:30", "AST": "-04:00", "ADT": "-03:00",
    "EST": "-05:00", "EDT": "-04:00", "CST": "-06:00", "CDT": "-05:00", "MST": "-07:00",
    "MDT": "-06:00", "PST": "-08:00", "PDT": "-07:00", "AKST": "-09:00", "AKDT": "-08:00",
    "HST": "-10:00",
    "HKT": "+08:00", "SGT": "+08:00", "AWST": "+08:00", "JST": "+09:00", "KST": "+09:00",
    "ACST": "+09:30", "ACDT": "+10:30", "AEST": "+10:00", "AEDT": "+11:00",
    "NZST": "+12:00", "NZDT": "+13:00",
    "IST": None,
}


def _create_timestamp_macros(con) -> None:
    """SQL macros that turn a timestamp's text into UTC.

    The zone written in the value wins over the configured one: an offset (+02:00, Z),
    an abbreviation (EST, from ZONE_ABBREVIATIONS) or a zone name (Europe/Berlin).
    Only a value with none of these is read in the source's configured zone. A value
    whose zone is unknown or ambiguous becomes NULL (the row is rejected with why).
    """
    # The zone of a value: what follows its time of day (UTC, EST, Europe/Berlin,
    # Etc/GMT+2, GMT+2, UTC-05:00, EST5EDT, +2), unless that is an offset DuckDB reads as
    # such (+02:00, +0200, Z). AM/PM comes back as the zone too and is read as 12-hour.
    con.execute(rf"""CREATE OR REPLACE TEMP MACRO _zone_of(t) AS
        CASE WHEN NOT regexp_matches(t, '{_OFFSET_PATTERN}')
             THEN nullif(regexp_extract(t, '{_ZONE_AFTER_TIME}', 1), '')
        END""")
    con.execute(f"""CREATE OR REPLACE TEMP MACRO _utc_timestamp(t, zone, zones, tz) AS
        CASE WHEN t IS NULL THEN NULL
             WHEN upper(replace(zone, '.', '')) IN ('AM', 'PM') THEN
                 timezone('UTC', timezone(tz, try_strptime(
                     upper(regexp_replace(t, '(?i)\\s*([ap])\\.?m\\.?$', ' \\1M')),
                     ['%Y-%m-%d %I:%M:%S %p', '%Y-%m-%d %I:%M %p', '%Y-%m-%dT%I:%M:%S %p',
                      '%Y-%m-%d %I:%M:%S.%f %p'])))
             WHEN zone IS NOT NULL THEN
                 CASE WHEN zones[upper(zone)] = '?' THEN NULL
                      WHEN zones[upper(zone)] IS NOT NULL
                          THEN timezone('UTC', try_cast(
                              rtrim(left(t, length(t) - length(zone))) || zones[upper(zone)]
                              AS TIMESTAMPTZ))
                      ELSE timezone('UTC', try_cast(t AS TIMESTAMPTZ))
                 END
             WHEN regexp_matches(t, '{_OFFSET_PATTERN}')
                 THEN timezone('UTC', try_cast(
                     regexp_replace(t, '\\s+([+-][0-9:]+|[Zz])$', '\\1') AS TIMESTAMPTZ))
             ELSE timezone('UTC', timezone(tz, try_cast(t AS TIMESTAMP)))
        END""")


def _integral(text: str) -> str:
    """SQL: an integral number written as a float (Parquet, spreadsheets: employees 10.0,
    an id 42.0) as the integer, so a re-export in another format is a duplicate, not a
    conflicting one; every other text as it is."""
    return (f"CASE WHEN NOT ends_with({text}, '0') THEN {text} "
            f"ELSE regexp_replace({text}, '^(-?[0-9]+)\\.0+$', '\\1') END")


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


def _load_pseudonymiser(con, key: str, files: list[SourceFile], config: IngestConfig
                        ) -> Pseudonymiser:
    """The keyed hashes of a load, knowing every visitor id it will read.

    A referrer or a CRM note may carry the id of a visitor whose own rows come in a
    later file, so the web exports' visitor ids are read first (one more read of each
    web file, only when pseudonymising); ids of earlier loads are known by their
    stored pseudonyms.
    """
    spec = SOURCES["web_events"]
    visitors: set[str] = set()
    for f in (f for f in files if f.source == spec.name):
        try:
            columns = _read(con, f, config, [])
            column = _mapped_columns(spec, columns, config.source(spec.name).columns).get(
                "anonymous_id")
            if column:
                visitors.update(v for (v,) in con.execute(
                    f"SELECT DISTINCT trim({_quote(column)}) FROM _scan").fetchall() if v)
        finally:
            _drop_scan(con)
    stored = [v for (v,) in con.execute(
        "SELECT DISTINCT anonymous_id FROM raw_web_events").fetchall()]
    digests = dict(con.execute("SELECT digest, any_value(pseudonym) FROM visitor_digests "
                               "GROUP BY digest").fetchall())
    return Pseudonymiser(key, visitors, stored, digests)


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
    warnings = [
        f"{f.name}: ingest.sources.{spec.name}.columns maps '{column}' to '{target}', but the "
        f"file has no column '{column}'"
        for column, target in renames.items() if column not in columns
    ]
    if not columns and not _broken_count(con):
        return warnings  # an empty JSONL file: no rows, so no columns to check
    mapped = _mapped_columns(spec, columns, renames)
    for required in spec.required:
        if required not in mapped:
            available = _jsonl_keys(con) if f.format.startswith(".jsonl") else columns
            raise MissingColumnError(str(f.path), spec.name, required, available,
                                     next((c for c, t in renames.items() if t == required), None))

    private = {c for c in spec.columns if c in spec.emails or c in PSEUDONYMISED}
    if pseudonyms is not None:
        pseudonyms.register(con)
        if _broken_count(con):
            _pseudonymise_broken(con, pseudonyms, f.format)
    _create_timestamp_macros(con)
    # Each column's text is cleaned once (`texts`), then typed and judged from it.
    selects, reasons, texts = [], [], []
    for column in spec.columns:
        text = f"_t_{column}" if column in mapped else "NULL"
        if column in mapped:
            clean = f"nullif(trim({_quote(mapped[column])}), '')"
            if column not in spec.timestamps and column not in spec.emails:
                clean = _integral(clean)
            if pseudonyms is not None:
                clean = (_pseudonym(clean, column in spec.emails) if column in private
                         else f"_scrub({clean})")
            texts.append(f"{clean} AS {text}")
        if column in spec.timestamps:
            selects.append(f"_zone_of({text}) AS _zone_{column}")
            selects.append(f"_utc_timestamp({text}, _zone_{column}, "
                           f"map($zone_names, $zone_offsets), $tz) AS {column}")
            selects.append(f"{text} AS _text_{column}")
            reasons.append(
                f"""CASE WHEN _text_{column} IS NOT NULL AND {column} IS NULL THEN
                    CASE WHEN _zone_{column} IS NULL
                             THEN 'unparseable timestamp in {column}: ' || _text_{column}
                         WHEN map($zone_names, $zone_offsets)[upper(_zone_{column})] = '?'
                             THEN 'ambiguous time zone ' || _zone_{column} || ' in {column}: '
                                  || _text_{column} || ' (it names several zones: write an '
                                  || 'offset like +05:30 or a zone name like Asia/Kolkata)'
                         ELSE 'unknown time zone ' || _zone_{column} || ' in {column}: '
                              || _text_{column} || ' (write an offset like -05:00 or a zone '
                              || 'name like America/New_York)'
                    END END"""
            )
            reasons.append(
                f"""CASE WHEN {column} > $not_after
                    THEN 'timestamp in the future: {column} ' || strftime({column},
                         '%Y-%m-%d %H:%M:%S') || ' is after the load time '
                         || strftime($now, '%Y-%m-%d %H:%M:%S') || ' UTC plus '
                         || $tolerance || ' hours (ingest.future_tolerance_hours)' END"""
            )
        elif column in spec.emails:
            selects.append(f"lower({text}) AS {column}")
        else:
            selects.append(f"{text} AS {column}")
        if column in spec.required:
            present = f"_text_{column}" if column in spec.timestamps else column
            reasons.append(
                f"CASE WHEN {present} IS NULL THEN 'missing required value: {column}' END"
            )
    hidden = {mapped[c]: c for c in private if c in mapped} if pseudonyms is not None else {}

    def raw_value(c: str) -> str:
        if pseudonyms is None:
            return _quote(c)
        if c in hidden:
            return _pseudonym(_quote(c), hidden[c] in spec.emails)
        return f"_scrub({_quote(c)}::VARCHAR)"

    raw_struct = ", ".join(f"{_quote(c)} := {raw_value(c)}" for c in columns) or "empty := NULL"
    # The raw row is kept as text for rejected rows only: packed as a struct here, turned
    # into JSON below only where a reason was found (most rows are never serialised).
    # A JSONL row's raw text is its line (every key, as written); pseudonymised, the
    # emails and visitor ids inside it are replaced, then its private keys are hashed.
    raw_json = "to_json(raw)::VARCHAR"
    if f.format.startswith(".jsonl"):
        raw_struct, raw_json = "line := _raw_line", "raw.line"
        if pseudonyms is not None:
            raw_struct += "".join(f", p{i} := {_quote(c)}" for i, c in enumerate(hidden))
            raw_json = "_scrub(raw.line)"
            if hidden:
                patch = ", ".join(
                    f"{_sql_text(c)}, {_pseudonym(f'raw.p{i}', hidden[c] in spec.emails)}"
                    for i, c in enumerate(hidden))
                raw_json = f"json_merge_patch({raw_json}, json_object({patch}))::VARCHAR"
    content = ", ".join(f"{c} := {c}" for c in spec.columns)
    statement = (
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
    now = not_after - dt.timedelta(hours=config.future_tolerance_hours)
    parameters = {"tz": config.timezone_of(spec.name), "file": f.name, "file_order": file_order,
                  "zone_names": list(ZONE_ABBREVIATIONS),
                  "zone_offsets": [o or "?" for o in ZONE_ABBREVIATIONS.values()],
                  "not_after": not_after, "now": now,
                  "tolerance": str(config.future_tolerance_hours)}
    parameters = {k: v for k, v in parameters.items() if f"${k}" in statement}
    if "$key" in statement:
        parameters["key"] = pseudonyms.key
    con.execute(statement, parameters)
    return warnings


def _broken_count(con) -> int:
    return con.execute("SELECT count(*) FROM _broken").fetchall()[0][0]


def _pseudonymise_broken(con, pseudonyms: Pseudonymiser, fmt: str) -> None:
    """Replace the raw text of unsplittable rows by its pseudonymised form (few rows)."""
    rows = con.execute("SELECT _row_number, reason, raw FROM _broken").fetchall()
    con.execute("DELETE FROM _broken")
    con.executemany("INSERT INTO _broken VALUES (?, ?, ?)",
                    [(n, reason, pseudonyms.unsplit(raw, fmt)) for n, reason, raw in rows])


def _read(con, f: SourceFile, config: IngestConfig, warnings: list[str]) -> list[str]:
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
        reason = str(exc).splitlines()[0]
        if "utf-8" in str(exc).lower() or "unicode" in str(exc).lower():
            reason += (f"; set ingest.sources.{f.source}.encoding in the config "
                       "(latin-1 or utf-16)")
        raise UnreadableFileError(str(f.path), reason) from exc


def _stage_table(con, spec: SourceSpec, schema: str) -> str:
    """Create the staging table of one source: its rows as read, judged, with position and
    content hash, waiting for the duplicate check."""
    table = f"{schema}._stage_{spec.name}"
    columns = ", ".join(
        f"{c} {'TIMESTAMP' if c in spec.timestamps else 'VARCHAR'}" for c in spec.columns)
    con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute(
        f"""CREATE {'TEMP ' if schema == 'temp' else ''}TABLE {table} (
            _file VARCHAR, _position BIGINT, _row_number BIGINT,
            {columns}, _reason VARCHAR, raw VARCHAR, _row_hash VARCHAR)""")
    return table


def _reconcile(con, spec: SourceSpec, load_id: int, stage: str,
               file_names: list[str]) -> dict[str, dict[str, int]]:
    """Classify the staged rows of one source (new, duplicate, conflict, invalid) and apply.

    Most rows are new, so only the others are written down (`_settled`): rows whose id
    is already loaded, and rows whose id came earlier in this load. The new rows then
    go straight from staging to the raw table by an anti-join on that short list, and
    nothing the size of the load is copied twice. `file_names[i]` is the file of order i.
    Returns per file: {'loaded': n, 'duplicate': n, 'rejected': n, 'read': n}.
    """
    cols = ", ".join(spec.columns)
    key = spec.id_column
    content = ", ".join(f"{c} := {c}" for c in spec.columns)
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
    con.execute(
        f"""INSERT INTO {spec.raw_table}
            SELECT {cols}, $load_id, _file, _row_number, _row_hash
            FROM {stage} r
            WHERE _reason IS NULL
              AND NOT EXISTS (SELECT 1 FROM _settled s WHERE s._position = r._position)""",
        {"load_id": load_id},
    )
    # Rejects: invalid rows and conflicting duplicates. A reject already recorded
    # (same file, row and raw row) is not recorded twice on a reload. A conflicting
    # duplicate was valid, so its raw text is the row as read (after renaming).
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
    _drop(con, "_settled")
    return counts


def _memory_limit_bytes(con) -> int:
    """DuckDB's memory limit of this connection, in bytes."""
    text = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    match = re.fullmatch(r"([\d.]+)\s*([KMGT]?i?B)", str(text).strip())
    if not match:
        return 0
    units = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
             "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
    return int(float(match.group(1)) * units.get(match.group(2), 1))


def _staging_path(con, files: list[SourceFile], setting: str) -> Path | None:
    """The file a load stages its rows in, or None to stage in memory.

    In memory, DuckDB keeps temporary tables uncompressed and spills them as they are:
    a 100 M-event load would spill several times its files' size. On disk the staged
    rows are compressed like any table. `auto` goes to disk when the files, counted
    uncompressed (a gzip file as five times its size), would take more than half the
    memory limit (rows in memory take about twice their text); a warehouse in memory
    always stages in memory.
    """
    rows = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()
    database = rows[0][0] if rows else None
    if setting == "memory" or not database:
        return None
    if setting == "auto":
        size = sum(f.bytes * (5 if f.format.endswith(".gz") else 1) for f in files)
        if size * 2 <= _memory_limit_bytes(con):
            return None
    return Path(f"{database}.staging")


@contextmanager
def _staging(con, files: list[SourceFile], setting: str) -> Iterator[str]:
    """The schema a load stages its rows in (see `_staging_path`), removed afterwards.

    A staging file left by a killed load is deleted before the next load starts: it
    was never part of the warehouse.
    """
    path = _staging_path(con, files, setting)
    if path is None:
        try:
            yield "temp"
        finally:  # also after a failed load: a notebook's connection lives on
            for spec in SOURCES.values():
                con.execute(f"DROP TABLE IF EXISTS temp._stage_{spec.name}")
        return
    for stale in (path, Path(f"{path}.wal")):
        stale.unlink(missing_ok=True)
    con.execute("ATTACH $path AS _staging", {"path": str(path)})
    try:
        yield "_staging"
    finally:
        con.execute("DETACH _staging")
        for stale in (path, Path(f"{path}.wal")):
            stale.unlink(missing_ok=True)


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
    seen = {
        row[0]
        # a file read before, with rows or without (a header-only file is no news either)
        for row in con.execute(
            "SELECT DISTINCT sha256 FROM load_files WHERE status IN ('read', 'empty')")
        .fetchall()
    }
    staged: list[tuple[SourceSpec, list[SourceFile], list[SourceFile], str]] = []
    to_read = [f for f in files if full_reload or f.sha256 not in seen]
    pseudonyms = (_load_pseudonymiser(con, pseudonym_key, to_read, config)
                  if config.pseudonymise else None)
    with _staging(con, to_read, config.staging) as schema:
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
                finally:
                    _drop_scan(con)
                read_files.append(f)
            staged.append((spec, source_files, read_files, stage))
        report = _apply(con, input_dir, staged, started, pseudonyms)
    report.warnings = warnings + report.warnings
    return report


def _store_visitor_digests(con, pseudonyms: Pseudonymiser, load_id: int) -> None:
    """This load's visitor ids as digests the next loads recognise (new ones only)."""
    pairs = pseudonyms.new_digests()
    if not pairs:
        return
    digests, names = zip(*pairs, strict=True)
    con.register("_new_digests", pa.table({"digest": list(digests), "pseudonym": list(names)}))
    try:
        con.execute("""INSERT INTO visitor_digests
                       SELECT digest, pseudonym, $load_id FROM _new_digests n
                       WHERE NOT EXISTS (SELECT 1 FROM visitor_digests v
                                         WHERE v.digest = n.digest)""", {"load_id": load_id})
    finally:
        con.unregister("_new_digests")


def _apply(con, input_dir, staged, started: dt.datetime,
           pseudonyms: Pseudonymiser | None = None) -> LoadReport:
    """The second phase of a load: one transaction from the staged rows to the warehouse."""
    with transaction(con):
        load_id = con.execute("SELECT coalesce(max(load_id), 0) + 1 FROM loads").fetchall()[0][0]
        report = LoadReport(load_id, str(input_dir))
        for spec, source_files, read_files, stage in staged:
            per_file = _reconcile(con, spec, load_id, stage, [f.name for f in source_files])
            for f in source_files:
                if f not in read_files:
                    fc = FileCounts(spec.name, f.name, "skipped")
                else:
                    c = per_file.get(f.name, {"read": 0, "loaded": 0, "duplicate": 0,
                                              "rejected": 0})
                    fc = FileCounts(spec.name, f.name, "read" if c["read"] else "empty",
                                    c["read"], c["loaded"], c["duplicate"], c["rejected"])
                    if not c["read"]:
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
