"""The five source exports of the data contract (docs/CONTRACT.md, section 1).

One `SourceSpec` per source says which column identifies a row, which columns
are required, which are timestamps and which are emails. Ingest, staging and
tests all read these specs, so a column is declared in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FORMATS",
    "SOURCES",
    "SourceSpec",
    "file_format",
]

FORMATS = (".csv.gz", ".csv", ".parquet", ".jsonl.gz", ".jsonl")


@dataclass(frozen=True)
class SourceSpec:
    """What an export of one source must and may contain."""
    name: str
    id_column: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    timestamps: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """Required then optional columns, in the raw table's order."""
        return self.required + self.optional

    @property
    def raw_table(self) -> str:
        """The loaded table of this source (raw_<name>)."""
        return f"raw_{self.name}"


SOURCES: dict[str, SourceSpec] = {
    spec.name: spec
    for spec in (
        SourceSpec(
            "crm_accounts",
            id_column="account_id",
            required=("account_id", "name"),
            optional=("domain", "industry", "employees", "country", "created_at"),
            timestamps=("created_at",),
        ),
        SourceSpec(
            "crm_contacts",
            id_column="contact_id",
            required=("contact_id", "account_id"),
            optional=("email", "role", "title", "created_at"),
            timestamps=("created_at",),
            emails=("email",),
        ),
        SourceSpec(
            "crm_activities",
            id_column="activity_id",
            required=("activity_id", "occurred_at", "account_id", "activity_type"),
            optional=("contact_id", "opportunity_id", "amount", "properties"),
            timestamps=("occurred_at",),
        ),
        SourceSpec(
            "web_events",
            id_column="event_id",
            required=("event_id", "occurred_at", "anonymous_id", "event_name"),
            optional=(
                "email", "page_url", "referrer", "utm_source", "utm_medium", "utm_campaign",
            ),
            timestamps=("occurred_at",),
            emails=("email",),
        ),
        SourceSpec(
            "email_events",
            id_column="event_id",
            required=("event_id", "occurred_at", "email", "event_type"),
            optional=("campaign_id", "campaign_name", "url"),
            timestamps=("occurred_at",),
            emails=("email",),
        ),
    )
}


def file_format(name: str) -> str | None:
    """The format suffix of a file name ('.csv.gz', ...), or None if unsupported."""
    lower = name.lower()
    return next((fmt for fmt in FORMATS if lower.endswith(fmt)), None)
