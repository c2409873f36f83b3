"""The load report: what one load did, per file and in total.

The same figures land in the warehouse's `loads` and `load_files` tables; the report
is what the caller gets back (the command prints its summary, the pipeline logs it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FileCounts", "LoadReport"]


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
        """One count added up over the load's files."""
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
