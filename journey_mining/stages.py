"""The stage ladder and the stage map: which activity signals which stage.

The ladder is the contract's and fixed (its names carry meaning elsewhere:
engagements start at `client`, end in `between_engagements` or
`former_client`). The map from activities to stages is configuration: a YAML
file validated on load, so an unknown stage or an activity mapped twice is an
error before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb
import yaml

from journey_mining.errors import ConfigError

__all__ = [
    "CHANNELS",
    "LADDER",
    "PROSPECT_STAGES",
    "STAGE_ORDER",
    "ScoreRule",
    "StageMap",
    "activity_name",
    "load_stage_map",
    "parse_stage_map",
    "phase_of",
    "register_engagement_rules",
    "register_free_mail_domains",
    "register_outbound_activities",
    "register_stage_map",
]

LADDER = (
    "awareness", "consideration", "evaluation", "decision",
    "client", "between_engagements", "advocacy", "former_client",
)
STAGE_ORDER = {stage: i + 1 for i, stage in enumerate(LADDER)}
# The funnel's steps: stages before client (conversion_to_next is defined for these).
PROSPECT_STAGES = LADDER[:LADDER.index("client")]


def phase_of(stage: str) -> str:
    """'prospect' before client, 'client' from client on (former_client counts as having
    reached client). Models join `stage_ladder.phase` instead of comparing stage numbers."""
    return "prospect" if stage in PROSPECT_STAGES else "client"
CHANNELS = ("web", "email", "crm")


@dataclass(frozen=True)
class ScoreRule:
    """A scored response (e.g. NPS) that is negative at or below a value."""
    channel: str
    activity: str
    property: str
    negative_max: float


@dataclass(frozen=True)
class StageMap:
    """Which activity signals which stage, and which are negative signals."""
    signals: tuple[tuple[str, str, str], ...]  # (channel, activity, stage)
    negative: tuple[tuple[str, str], ...]  # (channel, activity)
    score_rules: tuple[ScoreRule, ...]
    # Recorded stage changes (a CRM lifecycle or opportunity stage history): the account
    # is in the activity's stage from that moment; inference goes around them.
    observed: tuple[tuple[str, str], ...] = ()  # (channel, activity)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML loader that refuses a key given twice in one mapping (YAML keeps the last)."""


def _mapping(loader, node, deep=False):
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    seen = {k for k in keys if keys.count(k) > 1}
    if seen:
        raise ConfigError(f"line {node.start_mark.line + 1}: {sorted(seen)} given twice")
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def activity_name(activity: str) -> str:
    """How staging names an activity: lower case, spaces and hyphens as _ ("Deal Won" is
    deal_won). Config and stage map compare names through this one function."""
    return "_".join(str(activity).strip().lower().replace("-", " ").split())


def parse_stage_map(data: dict, origin: str = "stage map") -> StageMap:
    """Validate a stage map given as a dict (the YAML's content)."""
    def fail(message: str):
        raise ConfigError(f"{origin}: {message}")

    if not isinstance(data, dict) or not isinstance(data.get("signals"), dict):
        fail("needs a 'signals' mapping of channel -> activity -> stage")
    unknown_keys = set(data) - {"signals", "negative", "score_responses", "observed"}
    if unknown_keys:
        fail(f"unknown keys {sorted(unknown_keys)}")
    signals, seen = [], {}
    for channel, activities in data["signals"].items():
        if channel not in CHANNELS:
            fail(f"unknown channel '{channel}' (channels: {', '.join(CHANNELS)})")
        for activity, stage in (activities or {}).items():
            if stage not in STAGE_ORDER:
                fail(f"{channel}.{activity}: unknown stage '{stage}' (stages: {', '.join(LADDER)})")
            key = (channel, activity_name(activity))
            if key in seen:
                fail(f"{channel}.{activity} is mapped twice ('{seen[key]}' and '{stage}')")
            seen[key] = stage
            signals.append((channel, key[1], stage))
    negative = []
    for channel, activities in (data.get("negative") or {}).items():
        if channel not in CHANNELS:
            fail(f"negative: unknown channel '{channel}'")
        negative.extend((channel, activity_name(a)) for a in activities or [])
    rules = []
    for rule in data.get("score_responses") or []:
        try:
            rules.append(ScoreRule(rule["channel"], activity_name(rule["activity"]),
                                   rule["property"], float(rule["negative_max"])))
        except (KeyError, TypeError, ValueError):
            fail(f"score_responses: {rule} needs channel, activity, property, negative_max")
    observed = []
    for channel, activities in (data.get("observed") or {}).items():
        if channel not in CHANNELS:
            fail(f"observed: unknown channel '{channel}' (channels: {', '.join(CHANNELS)})")
        for activity in activities or []:
            key = (channel, activity_name(activity))
            if key not in seen:
                fail(f"observed: {channel}.{activity} must also be under signals (with the "
                     f"stage it records)")
            observed.append(key)
    return StageMap(tuple(signals), tuple(negative), tuple(rules), tuple(observed))


def load_stage_map(path: str | Path | None = None) -> StageMap:
    """The stage map at `path`, or the contract's default when None."""
    if path is None:
        text = resources.files("journey_mining").joinpath("config/stage_map.yml").read_text()
        origin = "default stage map"
    else:
        from journey_mining.settings_files import read_settings_file

        text = read_settings_file(path, "stage map")
        origin = str(path)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from exc
    return parse_stage_map(data, origin)


def register_stage_map(con: duckdb.DuckDBPyConnection, stage_map: StageMap) -> None:
    """Write the ladder and the map as tables the SQL models join (values bound, not formatted)."""
    con.execute("CREATE OR REPLACE TABLE stage_ladder (stage VARCHAR PRIMARY KEY, "
                "stage_order INTEGER NOT NULL, phase VARCHAR NOT NULL)")
    con.executemany("INSERT INTO stage_ladder VALUES (?, ?, ?)",
                    [(s, order, phase_of(s)) for s, order in STAGE_ORDER.items()])
    con.execute("CREATE OR REPLACE TABLE stage_map (channel VARCHAR, activity VARCHAR, "
                "stage VARCHAR, PRIMARY KEY (channel, activity))")
    if stage_map.signals:
        con.executemany("INSERT INTO stage_map VALUES (?, ?, ?)", list(stage_map.signals))
    con.execute("CREATE OR REPLACE TABLE negative_signals (channel VARCHAR, activity VARCHAR)")
    if stage_map.negative:
        con.executemany("INSERT INTO negative_signals VALUES (?, ?)", list(stage_map.negative))
    con.execute("CREATE OR REPLACE TABLE observed_stage_changes (channel VARCHAR, "
                "activity VARCHAR)")
    if stage_map.observed:
        con.executemany("INSERT INTO observed_stage_changes VALUES (?, ?)",
                        list(stage_map.observed))
    con.execute("CREATE OR REPLACE TABLE score_rules (channel VARCHAR, activity VARCHAR, "
                "property VARCHAR, negative_max DOUBLE)")
    if stage_map.score_rules:
        con.executemany("INSERT INTO score_rules VALUES (?, ?, ?, ?)",
                        [(r.channel, r.activity, r.property, r.negative_max)
                         for r in stage_map.score_rules])


def register_free_mail_domains(con: duckdb.DuckDBPyConnection, domains: list[str]) -> None:
    """free_mail_domains: domains never matched to an account by domain."""
    con.execute("CREATE OR REPLACE TABLE free_mail_domains (domain VARCHAR PRIMARY KEY)")
    if domains:
        con.executemany("INSERT INTO free_mail_domains VALUES (?)", [(d,) for d in domains])


def register_engagement_rules(con: duckdb.DuckDBPyConnection, rules) -> None:
    """Write the engagement rules (`EngagementRules`) as the table engagements.sql joins:
    engagement_rules(activity, role) with role start, end, cancel or lost."""
    con.execute("CREATE OR REPLACE TABLE engagement_rules (activity VARCHAR PRIMARY KEY, "
                "role VARCHAR NOT NULL)")
    rows = [(a, role) for role in ("start", "end", "cancel", "lost") for a in getattr(rules, role)]
    con.executemany("INSERT INTO engagement_rules VALUES (?, ?)", rows)


def register_outbound_activities(con: duckdb.DuckDBPyConnection,
                                 outbound: dict[str, list[str]]) -> None:
    """outbound_activities(channel, activity): what the company does, not the account."""
    con.execute("CREATE OR REPLACE TABLE outbound_activities (channel VARCHAR, "
                "activity VARCHAR)")
    rows = [(channel, a) for channel, names in outbound.items() for a in names]
    if rows:
        con.executemany("INSERT INTO outbound_activities VALUES (?, ?)", rows)
