"""Settings and analysis parameters, validated once at the edge.

A config file (YAML) has two parts, kept apart on purpose:

* `ingest`: how to read the exports (file patterns, column renames, source
  time zones). Changing it changes what is loaded.
* `analysis`: how to interpret what is loaded (stage map, dormancy window,
  churn horizon, free-mail domains). Changing it only rebuilds the marts.

Every default lives here, in one place.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from journey_mining.errors import ConfigError
from journey_mining.settings_files import read_settings_file
from journey_mining.sources import SOURCES
from journey_mining.stages import activity_name

__all__ = [
    "DEFAULT_FREE_MAIL_DOMAINS",
    "AnalysisParams",
    "Config",
    "EngagementRules",
    "IngestConfig",
    "QualityGates",
    "ScheduleConfig",
    "SourceConfig",
    "StageInferenceConfig",
    "load_config",
    "missing_pseudonym_key",
    "pseudonym_key",
]

DEFAULT_FREE_MAIL_DOMAINS = (
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk", "live.com",
    "msn.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "ymail.com", "icloud.com", "me.com",
    "mac.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "gmx.de", "gmx.net",
    "web.de", "mail.com", "zoho.com", "yandex.com", "yandex.ru", "mail.ru", "qq.com",
    "163.com", "126.com", "free.fr", "orange.fr", "laposte.net", "libero.it", "t-online.de",
    "fastmail.com", "hey.com", "tutanota.com", "pm.me",
)


# Upper bounds of settings that count days or hours: beyond them a value is a typo
# (dormancy_days: 1e23 overflowed the build, .inf hours every timestamp check).
_MAX_DAYS = 36_500
_MAX_HOURS = 24 * 366
_MIN_MEMORY = 128 * 2**20


@functools.cache
def _duckdb_zones() -> frozenset[str]:
    """The time zone names DuckDB (ICU) reads: a zone Python knows and DuckDB does not
    (posix/Europe/Berlin) would pass here and fail in the middle of a load."""
    import duckdb

    con = duckdb.connect()
    try:
        return frozenset(r[0] for r in con.execute("SELECT name FROM pg_timezone_names()")
                         .fetchall())
    finally:
        con.close()


def _check_timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone '{value}' (use an IANA name like 'Europe/Berlin')"
        ) from exc
    if value not in _duckdb_zones():
        raise ValueError(f"time zone '{value}' is not one DuckDB reads (use an IANA name "
                         "like 'Europe/Berlin')")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """How one source's exports are found and read."""

    files: list[str] | None = Field(
        default=None, description="glob patterns of file names; default '<source>*'"
    )
    columns: dict[str, str] = Field(
        default_factory=dict, description="export column name -> contract column name"
    )
    timezone: str | None = Field(default=None, description="zone of timestamps without offset")
    delimiter: str | None = Field(default=None, min_length=1, max_length=1,
                                  description="CSV delimiter, one character; sniffed if unset")
    encoding: Literal["utf-8", "latin-1", "utf-16"] | None = Field(
        default=None, description="text encoding of CSV and JSONL files; UTF-8 if unset")
    timestamp_format: list[str] = Field(
        default_factory=list,
        description="strptime formats of this source's timestamps, tried in order before "
                    "ISO 8601 (e.g. '%m/%d/%Y %I:%M %p'); a format with %z reads the "
                    "offset written in the value, one without reads it in `timezone`")
    dayfirst: bool | None = Field(
        default=None,
        description="read dates written with / . or - between day, month and year "
                    "(18/04/2024, 04/18/2024 3:00 PM): true day first, false month first; "
                    "unset: such dates are rejected (they are ambiguous)")

    _tz = field_validator("timezone")(lambda cls, v: _check_timezone(v))

    @field_validator("timestamp_format", mode="before")
    @classmethod
    def _formats(cls, value):
        formats = [value] if isinstance(value, str) else value
        for fmt in formats or []:
            check_timestamp_format(fmt)
        return formats

    def timestamp_formats(self) -> list[str]:
        """The formats tried before ISO 8601: the configured ones, then those `dayfirst`
        stands for."""
        return [*self.timestamp_format, *(() if self.dayfirst is None
                                          else numeric_date_formats(self.dayfirst))]


def numeric_date_formats(dayfirst: bool) -> list[str]:
    """Dates written as numbers with / . or - (18/04/2024 15:00, 4/18/2024 3:00 PM), day
    or month first, with or without seconds, 24-hour or AM/PM, or a date alone."""
    order = "%d{s}%m{s}%Y" if dayfirst else "%m{s}%d{s}%Y"
    times = (" %H:%M:%S", " %H:%M", " %I:%M:%S %p", " %I:%M %p", "T%H:%M:%S", "")
    plain = [order.format(s=sep) + t for sep in "/.-" for t in times]
    # ... and with an offset after the time (08/01/2024 09:00 +0200), read as written
    return plain + [f + " %z" for f in plain if f[-2:] in ("%M", "%S")]


def check_timestamp_format(fmt: str) -> str:
    """A strptime format that can read a date: it must name a year, a month and a day
    (or a day of the year) and round-trip a known time."""
    if not isinstance(fmt, str) or "%" not in fmt:
        raise ValueError(f"timestamp_format '{fmt}' is not a strptime format "
                         "(e.g. '%m/%d/%Y %I:%M %p')")
    if "%Y" not in fmt and "%y" not in fmt or not (
            ("%m" in fmt or "%b" in fmt or "%B" in fmt) and "%d" in fmt or "%j" in fmt):
        raise ValueError(f"timestamp_format '{fmt}' names no full date (it needs a year, "
                         "%Y or %y, a month, %m %b or %B, and a day, %d)")
    probe = dt.datetime(2024, 4, 18, 15, 7, 9, tzinfo=dt.UTC)
    try:
        dt.datetime.strptime(probe.strftime(fmt), fmt)
    except ValueError as exc:
        raise ValueError(f"timestamp_format '{fmt}' does not read what it writes "
                         f"({exc})") from exc
    return fmt


class IngestConfig(_Strict):
    """How to read each source's exports: file patterns, column maps, timezones."""
    timezone: str = "UTC"
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    future_tolerance_hours: float = Field(
        default=24, ge=0, le=_MAX_HOURS, allow_inf_nan=False,
        description="rows timestamped later than the load time plus this are rejected")
    staging: Literal["auto", "memory", "disk"] = Field(
        default="auto",
        description="where a load's rows wait for the duplicate check before the commit: "
                    "memory (temporary tables), disk (a file beside the warehouse, deleted "
                    "after the load) or auto (disk when the files would take more than "
                    "half of DuckDB's memory limit)")
    strict: bool = Field(
        default=False,
        description="a file in the input folder that matches no source stops the load "
                    "(default: it is skipped with a warning)")
    pseudonymise: bool = Field(
        default=False,
        description="replace emails' local parts and anonymous ids by keyed hashes at ingest "
                    "(key: environment variable JOURNEY_PSEUDONYM_KEY)")

    _tz = field_validator("timezone")(lambda cls, v: _check_timezone(v))

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, sources: dict[str, SourceConfig]) -> dict[str, SourceConfig]:
        for name, source in sources.items():
            if name not in SOURCES:
                raise ValueError(f"unknown source '{name}' (known: {', '.join(SOURCES)})")
            targets = list(source.columns.values())
            for target in targets:
                if target not in SOURCES[name].columns:
                    raise ValueError(
                        f"ingest.sources.{name}.columns maps to '{target}', which is not a column "
                        f"of {name} (columns: {', '.join(SOURCES[name].columns)})"
                    )
            dup = {t for t in targets if targets.count(t) > 1}
            if dup:
                raise ValueError(
                    f"ingest.sources.{name}.columns maps several columns to {sorted(dup)}")
        return sources

    def source(self, name: str) -> SourceConfig:
        """The settings of one source (defaults when not configured)."""
        return self.sources.get(name, SourceConfig())

    def timestamp_formats_of(self, name: str) -> list[str]:
        """The strptime formats `name`'s timestamps are tried with before ISO 8601."""
        return self.source(name).timestamp_formats()

    def timezone_of(self, name: str) -> str:
        """The timezone naive timestamps of `source` are read in."""
        return self.source(name).timezone or self.timezone

    def patterns_of(self, name: str) -> list[str]:
        """File name patterns that belong to `source`."""
        return self.source(name).files or [f"{name}*"]


class StageInferenceConfig(_Strict):
    """How the stage an account is in is inferred from its signals (README: stage states)."""

    method: str = Field(
        default="evidence",
        description="evidence: the ladder read from evidence, what counts as evidence "
                    "measured on the data (the best over the scorecard grid); window: "
                    "highest stage signalled within window_days, reset by a lost deal; "
                    "hmm: hidden Markov model over weekly periods")
    renewal_cycles: bool = Field(
        default=True, description="between engagements, evaluation and decision signals "
                                  "start a renewal cycle before the next engagement; "
                                  "false where renewals are automatic")
    window_days: int = Field(default=240, ge=1, le=_MAX_DAYS, description="window: its length")
    period_days: int = Field(default=7, ge=1, le=366,
                             description="hmm: length of one observation")
    fit_accounts: int = Field(default=2000, ge=10, le=10_000_000,
                              description="hmm: EM sample size")

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        # The methods are registered once, in stage_inference.METHODS.
        from journey_mining.stage_inference import METHODS

        if value not in METHODS:
            raise ValueError(f"unknown method '{value}'; methods: {', '.join(METHODS)}")
        return value


class EngagementRules(_Strict):
    """What starts and ends an engagement (contract v2: configurable engagements)."""

    start: list[str] = Field(default_factory=lambda: ["deal_won"],
                             description="activities that start an engagement (a sale)")
    end: list[str] = Field(default_factory=lambda: ["project_completed"],
                           description="activities that end one: between engagements follows")
    cancel: list[str] = Field(default_factory=lambda: ["cancellation"],
                              description="activities that end one and the relationship")
    lost: list[str] = Field(default_factory=lambda: ["deal_lost"],
                            description="activities that close a deal without a sale: the "
                                        "prospect is back to consideration")
    inactivity_days: int | None = Field(
        default=None, ge=1, le=_MAX_DAYS,
        description="an engagement also ends after this many days without a touchpoint of "
                    "the account")
    instant: bool = Field(default=False, description="each start is a whole engagement (one "
                                                     "per account and day): purchase logs")

    @field_validator("start", "end", "cancel", "lost")
    @classmethod
    def _names(cls, values: list[str]) -> list[str]:
        return [activity_name(v) for v in values]

    @model_validator(mode="after")
    def _consistent(self) -> EngagementRules:
        if not self.start:
            raise ValueError("engagements.start needs at least one activity")
        roles = {"start": self.start, "end": self.end, "cancel": self.cancel,
                 "lost": self.lost}
        for a, first in roles.items():
            for b, second in roles.items():
                both = sorted(set(first) & set(second))
                if a < b and both:
                    raise ValueError(f"{both} is both an engagement {a} and {b} activity")
        return self


# What a marketing channel rule can read of a touchpoint (channels.py, int_marketing_channels).
CHANNEL_RULE_FIELDS = ("system", "activity", "utm_source", "utm_medium", "utm_campaign",
                       "referrer", "campaign")
_REGEX_META = re.compile(r"([\\.^$|?*+()\[\]{}])")


def _check_channel_pattern(pattern: str) -> str:
    """A rule's pattern, refused when Python or DuckDB (RE2) cannot compile it: RE2 has no
    look-arounds or back-references, and the rules run in DuckDB."""
    import duckdb

    try:
        re.compile(pattern)
        duckdb.execute("SELECT regexp_full_match('', ?)", [pattern]).fetchall()
    except (re.error, duckdb.Error) as exc:
        why = str(exc).splitlines()[0].removeprefix("Invalid Input Error: ")
        raise ValueError(f"'{pattern}' is not a regular expression DuckDB reads: "
                         f"{why}") from None
    return pattern


class ChannelRule(_Strict):
    """One marketing channel rule: `channel` when every condition of `when` holds.

    A condition is a regular expression the whole value must match (case-insensitive),
    a list of values to equal (case-insensitive), or null: the field is empty."""

    channel: str = Field(min_length=1)
    when: dict[Literal[CHANNEL_RULE_FIELDS], str | list[str] | None]

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        value = " ".join(value.split()).lower()
        if not value:
            raise ValueError("a channel needs a name")
        return value

    @field_validator("when")
    @classmethod
    def _conditions(cls, when: dict) -> dict:
        if not when:
            raise ValueError("a rule needs at least one condition (a rule that always "
                             "holds is written {system: '.*'})")
        checked = {}
        for name, condition in when.items():
            if isinstance(condition, list):
                if not condition or not all(isinstance(v, str) and v.strip() for v in condition):
                    raise ValueError(f"{name}: a list of values needs at least one, none empty")
                condition = "(" + "|".join(_REGEX_META.sub(r"\\\1", v.strip().lower())
                                           for v in condition) + ")"
            elif isinstance(condition, str) and not condition.strip():
                condition = None
            if condition is not None:
                _check_channel_pattern(condition)
            checked[name] = condition
        return checked


class MarketingChannels(_Strict):
    """How touchpoints are grouped into marketing channels (docs/CONTRACT.md section 5)."""

    rules: list[ChannelRule] | None = Field(
        default=None, min_length=1,
        description="ordered rules, first match wins; the default rules "
                    "(journey_mining/config/marketing_channels.yml) if unset")
    own_domains: list[str] = Field(
        default_factory=list,
        description="your sites' domains: a visit referred by one of them (or a subdomain) "
                    "is no referral; the page's own host always counts")

    @field_validator("own_domains")
    @classmethod
    def _domains(cls, domains: list[str]) -> list[str]:
        cleaned = [re.sub(r"^(?:[a-z][a-z0-9+.-]*://)?(?:www\.)?", "", d.strip().lower())
                   .split("/")[0] for d in domains]
        empty = [d for d, c in zip(domains, cleaned, strict=True) if not c]
        if empty:
            raise ValueError(f"{empty[0]!r} is no domain")
        return cleaned
    keep_default_rules: bool = Field(
        default=False, description="try `rules` first, then the default rules")


class AnalysisParams(_Strict):
    """How loaded touchpoints are interpreted. Changing these only rebuilds marts."""

    stage_map: str | None = Field(
        default=None, description="path of a stage map YAML; the contract's default if unset"
    )
    dormancy_days: int = Field(default=90, ge=1, le=_MAX_DAYS)
    churn_horizon_days: int = Field(default=180, ge=1, le=_MAX_DAYS)
    churn_max_snapshots: int = Field(
        default=36, ge=2, le=1200,
        description="the churn model learns from at most this many monthly snapshots (the "
                    "newest)")
    as_of: dt.datetime | None = Field(
        default=None, description="analysis date; the latest occurred_at if unset"
    )
    free_mail_domains: list[str] = Field(default_factory=lambda: list(DEFAULT_FREE_MAIL_DOMAINS))
    stage_inference: StageInferenceConfig = Field(default_factory=StageInferenceConfig)
    engagements: EngagementRules = Field(default_factory=EngagementRules)
    churn_kind: Literal["contractual", "non_contractual"] = Field(
        default="contractual",
        description="contractual: churn is a cancel activity within the horizon; "
                    "non_contractual: no new engagement within the horizon")
    marketing_channels: MarketingChannels = Field(default_factory=MarketingChannels)
    collapse_repeats: bool = Field(
        default=True, description="merge consecutive repeats of one activity in mining logs")
    outbound_activities: dict[str, list[str]] = Field(
        default_factory=lambda: {"email": ["sent", "delivered"]},
        description="channel -> activities the company does to the account (not the "
                    "account's own); left out of journeys and mining logs")

    @field_validator("outbound_activities")
    @classmethod
    def _outbound(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = set(value) - {"web", "email", "crm"}
        if unknown:
            raise ValueError(f"unknown channel {sorted(unknown)} (channels: web, email, crm)")
        return {channel: [activity_name(a) for a in names] for channel, names in value.items()}

    @field_validator("free_mail_domains")
    @classmethod
    def _lower(cls, domains: list[str]) -> list[str]:
        return sorted({d.strip().lower() for d in domains if d.strip()})


class ScheduleConfig(_Strict):
    """When `journey serve` runs the pipeline: a cron line in a time zone."""

    cron: str = "0 6 * * *"
    timezone: str = "UTC"

    _tz = field_validator("timezone")(lambda cls, v: _check_timezone(v))

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from cronsim import CronSim, CronSimError

        try:
            CronSim(value, dt.datetime(2025, 1, 1))
        except CronSimError as exc:
            raise ValueError(f"'{value}' is not a valid cron line ({exc})") from exc
        return value

    def with_cron(self, cron: str) -> ScheduleConfig:
        """This schedule on another cron line (`--cron`), checked like the config's."""
        try:
            return self.model_validate({**self.model_dump(), "cron": cron})
        except ValidationError as exc:
            raise ConfigError(f"--cron: {exc.errors()[0]['msg'].removeprefix('Value error, ')}"
                              ) from None


class QualityGates(_Strict):
    """When bad data stops a run instead of flowing into the numbers."""

    max_rejected_share: dict[str, float] = Field(
        default_factory=lambda: {"default": 0.5},
        description="source (or 'default') -> largest share of a load's rows that may be "
                    "rejected; above it the run fails before the build")
    test_severity: dict[str, Literal["error", "warn"]] = Field(
        default_factory=lambda: {"default": "warn"},
        description="model (or 'default') -> what a failed data test does: error fails the "
                    "run (after the report is written), warn only reports it")

    @field_validator("max_rejected_share")
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        for key, share in value.items():
            if key != "default" and key not in SOURCES:
                raise ValueError(f"unknown source '{key}' (sources: {', '.join(SOURCES)})")
            if not 0 <= share <= 1:
                raise ValueError(f"{key}: a share between 0 and 1, not {share}")
        return value

    def rejected_share_of(self, source: str) -> float:
        """The largest share of rejected rows `source` may have."""
        return self.max_rejected_share.get(source, self.max_rejected_share.get("default", 1.0))

    def severity_of(self, model: str) -> str:
        """'warn' or 'error' for the data tests of `model`."""
        return self.test_severity.get(model, self.test_severity.get("default", "warn"))


class ResourceLimits(_Strict):
    """How much of the machine DuckDB may use. Past `memory_limit` it spills to
    `temp_directory` instead of the process being killed (a nightly run on a shared
    machine must finish, slower, rather than take the machine down)."""

    memory_limit: str = Field(
        default="60%", description="a share of the machine's RAM ('60%') or a size ('8GB')")
    temp_directory: str | None = Field(
        default=None, description="spill folder (default: <warehouse>.tmp beside it)")
    threads: int | None = Field(default=None, ge=1, le=1024,
                                description="DuckDB threads (default: all)")

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str) -> str:
        text = value.strip().upper().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?%", text):
            share = float(text[:-1])
            if not 0 < share <= 100:
                raise ValueError("a share of RAM is between 0% and 100%")
            return text
        found = re.fullmatch(r"(\d+(?:\.\d+)?)(KB|MB|GB|TB|KIB|MIB|GIB|TIB)", text)
        if not found:
            raise ValueError(f"'{value}' is not a size ('8GB', '512MB') or a share ('60%')")
        unit = {"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KIB": 2**10, "MIB": 2**20,
                "GIB": 2**30, "TIB": 2**40}[found.group(2)]
        if float(found.group(1)) * unit < _MIN_MEMORY:
            raise ValueError(f"'{value}' is less than the 128MB a build needs at the least")
        return text

    def duckdb_memory_limit(self) -> str:
        """The limit as DuckDB takes it: a share of RAM becomes a size in MB."""
        if self.memory_limit.endswith("%"):
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            return f"{int(total * float(self.memory_limit[:-1]) / 100 / 2**20)}MB"
        return self.memory_limit


class OutputFiles(_Strict):
    """Which files `journey run` writes to its outputs folder (`--outputs`) beside the
    warehouse tables, which are always built: a user who never opens the logs in another
    process-mining tool turns the exports off and saves their time and disk."""

    process_models: bool = Field(
        default=True, description="pm4py's process models of both levels (PNML, BPMN, SVG)")
    xes: bool = Field(default=True, description="account_log.xes, the activity-level log")
    ocel: bool = Field(default=True, description="journeys.jsonocel, the OCEL 2.0 log")


class FitCadence(_Strict):
    """How often the heavy fits run: the churn model, the conversion drivers, the
    attribution bootstraps and the representative journeys (journey_mining.fits). In
    between, runs score and report with the last fit and say its date."""

    every_days: int = Field(
        default=7, ge=0, le=_MAX_DAYS,
        description="fit again once the data or the clock moved on this many days since "
                    "the last fit (0: every build); a changed setting or code, an earlier "
                    "as-of date, a full reload and --refit fit at once")
    max_late_share: float = Field(
        default=0.01, ge=0, le=1,
        description="fit at once when touchpoints dated by the last fit's data end that "
                    "arrived late, or were tied to accounts late, exceed this share of the "
                    "history it learnt from (0: any)")


# The masters Spark's SparkContext accepts (local, local[N], local[N,F], local[*],
# local-cluster[...], spark://, k8s://, yarn).
_SPARK_MASTER = re.compile(r"^(local(\[[0-9*]+(,\s*[0-9]+)?\])?|local-cluster\[[0-9,\s]+\]"
                           r"|spark://\S+|k8s://\S+|yarn)$")


class EngineConfig(_Strict):
    """Where the SQL models run (contract v3, section 5). DuckDB by default, in the
    warehouse file; Spark when one machine is not enough (journey_mining/spark_engine.py:
    ingest and the steps after the build stay on DuckDB, the models run on Spark and are
    stored as Parquet under the warehouse folder)."""

    kind: Literal["duckdb", "spark"] = "duckdb"
    master: str = Field(default="local[2]",
                        description="Spark master: local[N], spark://host:7077, k8s://...")
    conf: dict[str, str] = Field(default_factory=dict,
                                 description="Spark settings, e.g. spark.driver.memory: 4g")
    catalog: str | None = Field(
        default=None,
        description="with a URI --warehouse (s3a://, hdfs://, ...): the local DuckDB file "
                    "that holds the loads and the tables the steps after the build read, "
                    "relative to this config file")

    @model_validator(mode="before")
    @classmethod
    def _kind_alone(cls, value):
        """`engine: spark` is read as `engine: {kind: spark}`: the kind is the setting
        most users write, the others have defaults."""
        return {"kind": value} if isinstance(value, str) else value

    @field_validator("master")
    @classmethod
    def _spark_master(cls, value: str) -> str:
        """Spark accepts local, local[N], spark://, k8s:// and yarn (anything else ends in
        a Java stack trace after the load); checked here, before anything runs."""
        if not _SPARK_MASTER.match(value):
            raise ValueError(f"{value!r} is not a Spark master: local[N], local[*], "
                             "spark://host:7077, k8s://https://host:443 or yarn")
        return value

    @field_validator("conf", mode="before")
    @classmethod
    def _as_text(cls, value):
        """YAML reads `4` and `true` as numbers and booleans; Spark settings are text."""
        if isinstance(value, dict):
            return {str(k): str(v).lower() if isinstance(v, bool) else str(v)
                    for k, v in value.items()}
        return value


class Config(_Strict):
    """The whole YAML config: ingest, analysis, outputs, quality gates and schedule."""
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    analysis: AnalysisParams = Field(default_factory=AnalysisParams)
    outputs: OutputFiles = Field(default_factory=OutputFiles)
    fits: FitCadence = Field(default_factory=FitCadence)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    quality: QualityGates = Field(default_factory=QualityGates)
    resources: ResourceLimits = Field(default_factory=ResourceLimits)
    engine: EngineConfig = Field(default_factory=EngineConfig)


PSEUDONYM_KEY_VARIABLE = "JOURNEY_PSEUDONYM_KEY"


def pseudonym_key(config: Config, environ=os.environ) -> str | None:
    """The pseudonymisation key of a run: a secret kept out of config files, flow
    parameters and logs, read from the environment at the edge (the command, the flow).
    None when `ingest.pseudonymise` is off; a ConfigError when it is on without a key."""
    if not config.ingest.pseudonymise:
        return None
    key = environ.get(PSEUDONYM_KEY_VARIABLE, "")
    if not key.strip():
        raise missing_pseudonym_key()
    return key


def missing_pseudonym_key() -> ConfigError:
    """The error of a pseudonymising run without its key (the command's and the library's)."""
    return ConfigError(f"ingest.pseudonymise is on but no key was given: set the environment "
                       f"variable {PSEUDONYM_KEY_VARIABLE} (keep it secret, keep it stable)")


def _fields_at(loc: tuple) -> list[str]:
    """The setting names allowed where `loc` points (for "did you mean")."""
    model: type[BaseModel] | None = Config
    for part in loc[:-1]:
        if model is None:
            return []
        field = model.model_fields.get(str(part))
        if field is None:
            continue  # a free key, e.g. a source name under ingest.sources
        annotation = field.annotation
        inner = [a for a in getattr(annotation, "__args__", ()) if isinstance(a, type)]
        candidates = [annotation, *inner]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)),
                     None)
    return list(model.model_fields) if model is not None else []


def _problem(err: dict) -> str:
    loc = err["loc"]
    if "when" in loc and err["type"] == "literal_error" and loc[-1] == "[key]":
        # A marketing channel rule's condition on a field rules cannot read.
        import difflib

        where = ".".join(str(p) for p in loc[:-1])
        close = difflib.get_close_matches(str(err.get("input")), CHANNEL_RULE_FIELDS, n=1)
        return (f"{where}: a rule cannot read {str(err.get('input'))!r}"
                + (f"; did you mean {close[0]}?" if close else "")
                + f" (fields: {', '.join(CHANNEL_RULE_FIELDS)})")
    typed = [i for i, part in enumerate(loc) if part in ("str", "list[str]")]
    if "when" in loc and typed:
        loc = loc[:typed[0]]  # one line for a condition of the wrong type, not one per type
        err = {**err, "msg": "a condition is a regular expression, a list of values or "
                             "null"}
    if loc[-1:] == ("rules",) and err["type"] == "too_short":
        err = {**err, "msg": "an empty list would make every touchpoint 'other'; leave "
                             "rules out to use the default rules"}
    where = ".".join(str(p) for p in loc)
    message = f"{where}: {err['msg'].removeprefix('Value error, ')}"
    if err["type"] == "literal_error":  # one of a few words: say what was given instead
        message = f"{where}: {err.get('input')!r} is not one of the choices; " + (
            err["msg"][0].lower() + err["msg"][1:])
    if err["type"] == "extra_forbidden":
        import difflib

        close = difflib.get_close_matches(str(err["loc"][-1]), _fields_at(err["loc"]), n=1)
        if close:
            message = (f"{where}: unknown setting; did you mean "
                       f"{'.'.join(str(p) for p in err['loc'][:-1] + (close[0],))}?")
        else:
            message = f"{where}: unknown setting"
    return message


def load_config(path: str | Path | None) -> Config:
    """Read and validate a config file; the defaults when `path` is None."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        data = yaml.safe_load(read_settings_file(path, "config file")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file is a mapping of sections (ingest, analysis, "
                          f"schedule, quality, resources), not a {type(data).__name__}")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(dict.fromkeys(_problem(err) for err in exc.errors()))
        raise ConfigError(f"{path}: {problems}") from exc
    stage_map = config.analysis.stage_map
    if stage_map and not Path(stage_map).is_absolute():
        # A stage map path is relative to the config file that names it.
        resolved = str((path.parent / stage_map).resolve())
        config = config.model_copy(
            update={"analysis": config.analysis.model_copy(update={"stage_map": resolved})}
        )
    catalog = config.engine.catalog
    if catalog and not Path(catalog).is_absolute():
        # So is the catalog of a URI warehouse: the config and its catalog go together.
        resolved = str((path.parent / catalog).resolve())
        config = config.model_copy(
            update={"engine": config.engine.model_copy(update={"catalog": resolved})})
    return config
