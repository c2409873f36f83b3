"""Discovery: which export files a folder holds, and the source each one is of.

Every regular file of the input folder is matched to one source by its name (the
config's patterns, by default `<source>*`) and to a format by its ending. A file that
matches no source, several sources or no supported format stops the load here,
before anything is read: a load is all or nothing, so a stray file must not be half
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

