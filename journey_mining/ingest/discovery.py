"""Discovery: which export files a folder holds, and the source each one is of.

Every regular file of the input folder is matched to one source by its name (the
config's patterns, by default `<source>*`, in any letter case) and to a format by its
ending. A file that matches no source (a README.txt beside the exports) is skipped with a
warning that lists the patterns in force, or stops the load with `ingest.strict: true`.
A file that matches several sources or is of no supported format stops the load here,
before anything is read: a load is all or nothing, so an export must not be half
noticed. Each file's checksum is taken here too, so a file loaded before can be
skipped.
"""

from __future__ import annotations

import fnmatch
import hashlib
import stat
from dataclasses import dataclass
from pathlib import Path

from journey_mining.config import IngestConfig
from journey_mining.errors import IngestError, UnknownFileError
from journey_mining.sources import SOURCES, file_format

__all__ = ["SourceFile", "discover_files"]


@dataclass(frozen=True)
class SourceFile:
    """One export file matched to its source."""

    source: str
    path: Path
    name: str
    format: str
    sha256: str
    bytes: int


def _sha256(path: Path) -> str:
    """The file's SHA-256 (hex), read in 1 MiB blocks: the same bytes are the same file,
    whatever its name or time stamp, and a file loaded before is skipped."""
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


def _matches(name: str, patterns: list[str]) -> bool:
    """A file name against glob patterns, in any letter case (HubSpot_Activities_Oct.csv
    is a `hubspot_activities*` file)."""
    return any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in patterns)


def _patterns(config: IngestConfig) -> str:
    return ", ".join(f"{name}: {' '.join(config.patterns_of(name))}" for name in SOURCES)


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
        sources = [name for name in SOURCES if _matches(path.name, config.patterns_of(name))]
        if not sources:
            why = f"file name matches no source (patterns: {_patterns(config)})"
            if config.strict:
                raise UnknownFileError(str(path), why)
            if skipped is not None:
                skipped.append(f"{path}: skipped, {why}; ingest.strict: true makes this an "
                               "error")
            continue
        if len(sources) > 1:
            raise UnknownFileError(str(path), f"file name matches several sources: {sources}")
        if path.stat().st_size == 0:
            if skipped is not None:
                skipped.append(f"{path}: skipped, the file is empty (0 bytes)")
            continue
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

