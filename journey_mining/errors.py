"""Errors a user can act on. Each names the file, column or setting at fault."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataQualityError",
    "IngestError",
    "JourneyError",
    "MissingColumnError",
    "ModelError",
    "NoDataError",
    "UnknownFileError",
    "UnreadableFileError",
    "WarehouseError",
    "WarehouseLockedError",
]


class JourneyError(Exception):
    """Base of every error journey-mining raises on purpose."""


class ConfigError(JourneyError):
    """A config file or parameter is invalid."""


class IngestError(JourneyError):
    """A load cannot go ahead; nothing of it was applied."""


class UnknownFileError(IngestError):
    """A file in the input folder that matches no source."""
    def __init__(self, file: str, reason: str):
        self.file = file
        super().__init__(f"{file}: {reason}")


class MissingColumnError(IngestError):
    """An export without a column its source requires."""
    def __init__(self, file: str, source: str, column: str, available: list[str],
                 mapped_from: str | None = None):
        self.file, self.source, self.column = file, source, column
        hint = (f"the config maps '{mapped_from}' to it, but the file has no column "
                f"'{mapped_from}'" if mapped_from else
                f"map it with ingest.sources.{source}.columns in the config")
        super().__init__(
            f"{file}: required column '{column}' of source {source} is missing "
            f"(file has: {', '.join(available) or 'no columns'}); {hint}"
        )


class TimestampFormatError(IngestError):
    """Files whose timestamps mostly do not read: a date-format setting is missing. All
    such files of a load are named at once, so one fix of the config serves them all."""


class UnreadableFileError(IngestError):
    """A file that cannot be read or decoded at all."""
    def __init__(self, file: str, reason: str):
        self.file = file
        super().__init__(f"{file}: cannot be read: {reason}")


class DataQualityError(JourneyError):
    """A data-quality gate (config `quality`) stopped the run; `breaches` lists why."""

    def __init__(self, message: str, breaches: list[str] | None = None):
        super().__init__(message)
        self.breaches = breaches or [message]


class ModelError(JourneyError):
    """A SQL (or Python) model cannot be built: its file, and why. The build is rolled
    back: the warehouse keeps the previous build's tables."""


class NoDataError(JourneyError):
    """Nothing to analyse: no touchpoints, or none up to the as-of date."""


class WarehouseError(JourneyError):
    """The warehouse cannot be opened or written."""


class WarehouseLockedError(WarehouseError):
    """Another run holds the warehouse."""
