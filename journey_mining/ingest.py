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
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from journey_mining.config import IngestConfig
from journey_mining.errors import (
    ConfigError,
    IngestError,
    MissingColumnError,
    UnknownFileError,
    UnreadableFileError,
)
from journey_mining.sources import SOURCES, SourceSpec, file_format
from journey_mining.warehouse import ensure_schema, transaction

# A timestamp carries its own offset when a time of day is followed by Z or +hh[:mm].
_OFFSET_PATTERN = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)$"
_NESTED_TYPES = ("STRUCT", "MAP", "LIST", "JSON", "UNION")


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

    def _sum(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.files)

    @property
    def rows_read(self) -> int:
        return self._sum("rows_read")

    @property
    def rows_loaded(self) -> int:
        return self._sum("rows_loaded")

    @property
    def rows_duplicate(self) -> int:
        return self._sum("rows_duplicate")

    @property
    def rows_rejected(self) -> int:
        return self._sum("rows_rejected")

    @property
    def files_skipped(self) -> int:
        return sum(f.status == "skipped" for f in self.files)

    def summary(self) -> str:
        read = len(self.files) - self.files_skipped
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


def discover_files(input_dir: str | Path, config: IngestConfig) -> list[SourceFile]:
    """Match every file of `input_dir` (not sub-folders, not dot-files) to one source."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise IngestError(f"{input_dir}: input folder not found")
    found = []
    for path in sorted(input_dir.iterdir()):
        if path.is_dir() or path.name.startswith("."):
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
            SourceFile(sources[0], path, path.name, fmt, _sha256(path), path.stat().st_size)
        )
    return found


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _drop(con: duckdb.DuckDBPyConnection, *tables: str) -> None:
    for table in tables:
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _position(table: str) -> str:
    """1-based insertion position of a row of a temp table filled in file order.

    Rows written inside a transaction get row ids from a large offset, so the
    position is the row id minus the table's first row id.
    """
    return f"rowid - (SELECT min(rowid) FROM {table}) + 1"


def _read_csv(con, f: SourceFile, delimiter: str | None) -> list[str]:
    """Read a CSV into temp table _scan(_row_number, <columns as text>); rejects into _broken."""
    _drop(con, "_csv_rejects", "_csv_scans", "_scan_raw")
    options = {"path": str(f.path)}
    delim = ""
    if delimiter:
        delim, options["delim"] = ", delim = $delim", delimiter
    con.execute(
        f"""CREATE TEMP TABLE _scan_raw AS SELECT * FROM read_csv($path, all_varchar = true,
            header = true, store_rejects = true, rejects_table = '_csv_rejects',
            rejects_scan = '_csv_scans'{delim})""",
        options,
    )
    n_good = con.execute("SELECT count(*) FROM _scan_raw").fetchall()[0][0]
    # Good rows keep their order; their line numbers are the data lines the reader
    # did not reject (one record per line assumed, as in every export we know).
    con.execute(
        """CREATE TEMP TABLE _broken AS
           SELECT DISTINCT line AS _row_number,
                  'unreadable row: ' || error_type || ': ' || error_message AS reason,
                  csv_line AS raw
           FROM _csv_rejects"""
    )
    n_broken = con.execute("SELECT count(*) FROM _broken").fetchall()[0][0]
    con.execute(
        f"""CREATE TEMP TABLE _scan AS
           WITH lines AS (
               SELECT l AS line, row_number() OVER (ORDER BY l) AS k
               FROM range(2, $n + 2) r(l)
               WHERE l NOT IN (SELECT _row_number FROM _broken)
           )
           SELECT lines.line AS _row_number, s.* EXCLUDE (k)
           FROM (SELECT {_position('_scan_raw')} AS k, * FROM _scan_raw) s
           JOIN lines USING (k)""",
        {"n": n_good + n_broken},
    )
    _drop(con, "_csv_rejects", "_csv_scans", "_scan_raw")
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


def _read_jsonl(con, f: SourceFile) -> list[str]:
    # Read lines as text with the CSV reader (no quoting, a separator that never
    # occurs), so a malformed line becomes a reject with its line number.
    con.execute(
        r"""CREATE TEMP TABLE _text_lines AS
            SELECT line FROM read_csv($path, columns = {'line': 'VARCHAR'}, header = false,
                          delim = e'\x1e', quote = '', escape = '', auto_detect = false)""",
        {"path": str(f.path)},
    )
    con.execute(
        f"""CREATE TEMP TABLE _lines AS
           SELECT {_position('_text_lines')} AS _row_number, line, try(line::JSON) AS j
           FROM _text_lines"""
    )
    _drop(con, "_text_lines")
    con.execute(
        """CREATE TEMP TABLE _broken AS
           SELECT _row_number,
                  CASE WHEN j IS NULL THEN 'unreadable row: malformed JSON'
                       ELSE 'unreadable row: not a JSON object' END AS reason,
                  line AS raw
           FROM _lines
           WHERE trim(coalesce(line, '')) <> '' AND (j IS NULL OR json_type(j) <> 'OBJECT')"""
    )
    keys = [
        row[0]
        for row in con.execute(
            """WITH keyed AS (
                   SELECT _row_number, unnest(json_keys(j)) AS key
                   FROM _lines WHERE json_type(j) = 'OBJECT')
               SELECT key FROM keyed GROUP BY key ORDER BY min(_row_number), key"""
        ).fetchall()
    ]
    # Keys come from the file, so they are bound as parameters, not formatted in.
    selects = ", ".join(f"j ->> $k{i} AS {_quote(key)}" for i, key in enumerate(keys))
    con.execute(
        f"""CREATE TEMP TABLE _scan AS SELECT _row_number{', ' + selects if selects else ''}
            FROM _lines WHERE json_type(j) = 'OBJECT' ORDER BY _row_number""",
        {f"k{i}": key for i, key in enumerate(keys)},
    )
    _drop(con, "_lines")
    return keys


PSEUDONYMISED = ("anonymous_id",)  # besides every email column


def _pseudonym(text: str, is_email: bool) -> str:
    """SQL for a keyed hash of a value; an email keeps its domain, which stitching needs."""
    if is_email:
        return (f"CASE WHEN {text} IS NULL THEN NULL ELSE 'p_' || left(sha256($key || "
                f"lower({text})), 16) || '@' || regexp_extract(lower({text}), '@([^@]+)$', 1) END")
    return f"CASE WHEN {text} IS NULL THEN NULL ELSE 'p_' || left(sha256($key || {text}), 16) END"


def _normalise(con, f: SourceFile, spec: SourceSpec, columns: list[str], config: IngestConfig,
               file_order: int, key: str | None = None) -> None:
    """Append the file's rows, renamed, normalised and validated, to _incoming.

    With `key`, emails and anonymous ids are pseudonymised here, before anything is
    stored, in the loaded row and in the raw row kept for rejects alike.
    """
    renames = config.source(spec.name).columns
    mapped: dict[str, str] = {}
    for column in columns:
        target = renames.get(column, column)
        if target in spec.columns and target not in mapped:
            mapped[target] = column
    for required in spec.required:
        if required not in mapped:
            raise MissingColumnError(str(f.path), spec.name, required, columns)

    private = {c for c in spec.columns if c in spec.emails or c in PSEUDONYMISED}
    selects, reasons = [], []
    for column in spec.columns:
        text = f"nullif(trim({_quote(mapped[column])}), '')" if column in mapped else "NULL"
        if key is not None and column in private and column in mapped:
            text = _pseudonym(text, column in spec.emails)
        if column in spec.timestamps:
            selects.append(
                f"""CASE WHEN {text} IS NULL THEN NULL
                    WHEN regexp_matches({text}, '{_OFFSET_PATTERN}')
                        THEN timezone('UTC', try_cast({text} AS TIMESTAMPTZ))
                    ELSE timezone('UTC', timezone($tz, try_cast({text} AS TIMESTAMP)))
                    END AS {column}"""
            )
            selects.append(f"{text} AS _text_{column}")
            reasons.append(
                f"""CASE WHEN _text_{column} IS NOT NULL AND {column} IS NULL
                    THEN 'unparseable timestamp in {column}: ' || _text_{column} END"""
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
    hidden = {mapped[c]: c for c in private if c in mapped} if key is not None else {}
    raw_struct = ", ".join(
        f"{_quote(c)} := "
        + (_pseudonym(_quote(c), hidden[c] in spec.emails) if c in hidden else _quote(c))
        for c in columns) or "empty := NULL"
    statement = (
        f"""INSERT INTO _incoming
            WITH typed AS (
                SELECT _row_number, {', '.join(selects)},
                       to_json(struct_pack({raw_struct})) AS raw
                FROM _scan
            )
            SELECT $file AS _file, $file_order AS _file_order, _row_number,
                   {', '.join(spec.columns)},
                   nullif(concat_ws('; ', {', '.join(reasons)}), '') AS _reason,
                   raw::VARCHAR AS raw
            FROM typed
            UNION ALL
            SELECT $file, $file_order, _row_number, {', '.join('NULL' for _ in spec.columns)},
                   reason, raw
            FROM _broken"""
    )
    parameters = {"tz": config.timezone_of(spec.name), "file": f.name, "file_order": file_order}
    if "$key" in statement:
        parameters["key"] = key
    con.execute(statement, parameters)


def _read(con, f: SourceFile, config: IngestConfig) -> list[str]:
    try:
        if f.format in (".csv", ".csv.gz"):
            return _read_csv(con, f, config.source(f.source).delimiter)
        if f.format == ".parquet":
            return _read_parquet(con, f)
        return _read_jsonl(con, f)
    except duckdb.Error as exc:
        raise UnreadableFileError(str(f.path), str(exc).splitlines()[0]) from exc


def _reconcile(con, spec: SourceSpec, load_id: int) -> dict[str, dict[str, int]]:
    """Classify _incoming rows of one source (new, duplicate, conflict, invalid) and apply.

    Returns per file: {'loaded': n, 'duplicate': n, 'rejected': n, 'read': n}.
    """
    cols = ", ".join(spec.columns)
    key = spec.id_column
    content = ", ".join(f"{c} := {c}" for c in spec.columns)
    con.execute(
        f"""CREATE TEMP TABLE _classified AS
            WITH valid AS (
                SELECT *, hash(struct_pack({content}))::VARCHAR AS _row_hash
                FROM _incoming WHERE _reason IS NULL
            ),
            ranked AS (
                SELECT *,
                       row_number() OVER w AS _rank,
                       first_value(_row_hash) OVER w AS _first_hash,
                       first_value(_file) OVER w AS _first_file,
                       first_value(_row_number) OVER w AS _first_row
                FROM valid
                WINDOW w AS (PARTITION BY {key} ORDER BY _file_order, _row_number
                             ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
            )
            SELECT r.*,
                   CASE
                       WHEN e.{key} IS NOT NULL AND e._row_hash = r._row_hash THEN 'duplicate'
                       WHEN e.{key} IS NOT NULL THEN 'conflict'
                       WHEN r._rank = 1 THEN 'new'
                       WHEN r._row_hash = r._first_hash THEN 'duplicate'
                       ELSE 'conflict'
                   END AS _status,
                   CASE
                       WHEN e.{key} IS NOT NULL
                           THEN format('conflicting duplicate: {key} {{}} was loaded before from '
                                       || '{{}} row {{}} with different content',
                                       r.{key}, e._file, e._row_number)
                       ELSE format('conflicting duplicate: {key} {{}} first seen in {{}} row {{}} '
                                   || 'with different content',
                                   r.{key}, r._first_file, r._first_row)
                   END AS _conflict_reason
            FROM ranked r LEFT JOIN {spec.raw_table} e ON e.{key} = r.{key}"""
    )
    con.execute(
        f"""INSERT INTO {spec.raw_table}
            SELECT {cols}, $load_id, _file, _row_number, _row_hash
            FROM _classified WHERE _status = 'new' ORDER BY _file_order, _row_number""",
        {"load_id": load_id},
    )
    # Rejects: invalid rows and conflicting duplicates. A reject already recorded
    # (same file, row and raw row) is not recorded twice on a reload.
    con.execute(
        """INSERT INTO rejected_rows
           WITH rejects AS (
               SELECT _file AS file, _row_number AS row_number, _reason AS reason, raw
               FROM _incoming WHERE _reason IS NOT NULL
               UNION ALL
               SELECT _file, _row_number, _conflict_reason, raw
               FROM _classified WHERE _status = 'conflict'
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
    rows = con.execute(
        """SELECT _file,
                  count(*) AS read,
                  count(*) FILTER (WHERE _status = 'new') AS loaded,
                  count(*) FILTER (WHERE _status = 'duplicate') AS duplicate,
                  count(*) FILTER (WHERE _status IS NULL OR _status = 'conflict') AS rejected
           FROM (SELECT i._file, c._status FROM _incoming i
                 LEFT JOIN _classified c USING (_file, _row_number))
           GROUP BY _file"""
    ).fetchall()
    _drop(con, "_classified")
    return {
        file: {"read": read, "loaded": loaded, "duplicate": dup, "rejected": rej}
        for file, read, loaded, dup, rej in rows
    }


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
    """
    config = config or IngestConfig()
    if config.pseudonymise and not pseudonym_key:
        raise ConfigError("ingest.pseudonymise is on but no key was given: set the environment "
                          "variable JOURNEY_PSEUDONYM_KEY (keep it secret, keep it stable)")
    key = pseudonym_key if config.pseudonymise else None
    files = discover_files(input_dir, config)
    ensure_schema(con)
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with transaction(con):
        load_id = con.execute("SELECT coalesce(max(load_id), 0) + 1 FROM loads").fetchall()[0][0]
        seen = {
            row[0]
            for row in con.execute("SELECT DISTINCT sha256 FROM load_files WHERE status = 'read'")
            .fetchall()
        }
        report = LoadReport(load_id, str(input_dir))
        for spec in SOURCES.values():
            source_files = [f for f in files if f.source == spec.name]
            counts = {}
            if not source_files:
                continue
            columns_sql = ", ".join(
                f"{c} {'TIMESTAMP' if c in spec.timestamps else 'VARCHAR'}" for c in spec.columns
            )
            con.execute(
                f"""CREATE TEMP TABLE _incoming (_file VARCHAR, _file_order INTEGER,
                    _row_number BIGINT, {columns_sql}, _reason VARCHAR, raw VARCHAR)"""
            )
            read_files = []
            for order, f in enumerate(source_files):
                if f.sha256 in seen and not full_reload:
                    counts[f.name] = FileCounts(spec.name, f.name, "skipped")
                    continue
                if on_file:
                    on_file(f)
                columns = _read(con, f, config)
                _normalise(con, f, spec, columns, config, order, key)
                _drop(con, "_scan", "_broken")
                read_files.append(f)
            per_file = _reconcile(con, spec, load_id)
            for f in read_files:
                c = per_file.get(f.name, {"read": 0, "loaded": 0, "duplicate": 0, "rejected": 0})
                counts[f.name] = FileCounts(
                    spec.name, f.name, "read", c["read"], c["loaded"], c["duplicate"], c["rejected"]
                )
            _drop(con, "_incoming")
            for f in source_files:
                fc = counts[f.name]
                report.files.append(fc)
                con.execute(
                    "INSERT INTO load_files VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    [load_id, spec.name, f.name, f.sha256, f.bytes, fc.status, fc.rows_read,
                     fc.rows_loaded, fc.rows_duplicate, fc.rows_rejected],
                )
                seen.add(f.sha256)
        if report.files_skipped == len(report.files):
            # Every file was loaded before: a no-op leaves no trace, not even in loads.
            con.execute("DELETE FROM load_files WHERE load_id = $1", [load_id])
            return report
        con.execute(
            "INSERT INTO loads VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            [load_id, started, dt.datetime.now(dt.UTC).replace(tzinfo=None), str(input_dir),
             len(report.files), len(report.files) - report.files_skipped, report.files_skipped,
             report.rows_read, report.rows_loaded, report.rows_duplicate, report.rows_rejected],
        )
    return report
