"""Marketing channels: the channel group a marketer reads (paid search, organic social,
email, referral, events/offline, sales outreach, ...), for every touchpoint.

`channel` says which system recorded a touchpoint (web, email, crm); a marketer asks
where the account came from. The grouping is a list of ordered rules over the UTM
parameters, the referring site, the campaign and the CRM activity type (the default
list follows the default channel groups of web analytics; `analysis.marketing_channels`
of a config replaces or extends it). The rules are configuration, so they are a table
(`marketing_channel_rules`, one row per condition) that the SQL model
`int_marketing_channels` joins: the rules run where the data is, once per distinct
combination of the fields they read, not once per touchpoint.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import duckdb
import yaml

from journey_mining.config import ChannelRule, MarketingChannels
from journey_mining.errors import ConfigError

__all__ = ["OTHER", "default_rules", "effective_rules", "register_channel_rules"]

OTHER = "other"  # what a touchpoint no rule matches is


@cache
def default_rules() -> tuple[ChannelRule, ...]:
    """The default rules (journey_mining/config/marketing_channels.yml), validated as a
    user's are."""
    text = resources.files("journey_mining").joinpath("config/marketing_channels.yml")
    data = yaml.safe_load(text.read_text())
    try:
        return tuple(ChannelRule.model_validate(r) for r in data["rules"])
    except ValueError as exc:  # a broken default is a bug of ours: say which file
        raise ConfigError(f"marketing_channels.yml: {exc}") from exc


def effective_rules(settings: MarketingChannels) -> tuple[ChannelRule, ...]:
    """The rules in the order they are tried: the user's (if any), then the defaults when
    there are none or `keep_default_rules` says so."""
    if settings.rules is None:
        return default_rules()
    return (*settings.rules, *(default_rules() if settings.keep_default_rules else ()))


def register_channel_rules(con: duckdb.DuckDBPyConnection, settings: MarketingChannels) -> None:
    """marketing_channel_rules(rule_set, rule_no, marketing_channel, field, pattern): one
    row per condition of the rules in use and of the default rules; pattern NULL means
    the field must be empty. marketing_own_domains(domain):
    the user's sites, whose referrals are visits within the site. Values bound, not
    formatted."""
    con.execute("CREATE OR REPLACE TABLE marketing_channel_rules (rule_set VARCHAR NOT NULL, "
                "rule_no INTEGER NOT NULL, marketing_channel VARCHAR NOT NULL, "
                "field VARCHAR NOT NULL, pattern VARCHAR)")
    # 'in use' decides marketing_channel; 'default' names an untagged visit's medium in
    # source_medium, which is web analytics' reading and does not follow a user's rules.
    sets = {"in use": effective_rules(settings), "default": default_rules()}
    rows = [(name, no, rule.channel, field, pattern)
            for name, rules in sets.items()
            for no, rule in enumerate(rules, start=1)
            for field, pattern in rule.when.items()]
    if rows:
        con.executemany("INSERT INTO marketing_channel_rules VALUES (?, ?, ?, ?, ?)", rows)
    con.execute("CREATE OR REPLACE TABLE marketing_own_domains (domain VARCHAR PRIMARY KEY)")
    domains = sorted(set(settings.own_domains))
    if domains:
        con.executemany("INSERT INTO marketing_own_domains VALUES (?)", [(d,) for d in domains])
