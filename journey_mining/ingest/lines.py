"""Line mapping: the physical line each CSV record starts on.

DuckDB's CSV reader numbers its good records 1..n and its rejects by logical line
(records and blank lines); a person looking for a row in the file needs the physical
line. When a file has quoted line breaks or blank lines the two differ, and the file
is walked once here with the reader's own quoting rules to map one to the other. The
mapping is kept as runs of consecutive lines, so its memory grows with the breaks,
not with the file.
"""

from __future__ import annotations

import gzip
import io
from array import array

import pyarrow as pa

from journey_mining.ingest.discovery import SourceFile
from journey_mining.ingest.scratch import _position

# The package's own modules share private helpers; the names for users are these.
__all__: list[str] = []


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
