"""Config files are validated once, with messages that name the setting at fault."""

from __future__ import annotations

import pytest

from journey_mining.config import Config, load_config
from journey_mining.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "journey.yml"
    path.write_text(text)
    return path


def test_defaults_when_no_config_is_given():
    config = load_config(None)
    assert config.ingest.timezone == "UTC"
    assert config.analysis.dormancy_days == 90
    assert config.analysis.churn_horizon_days == 180
    assert "gmail.com" in config.analysis.free_mail_domains


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ingest:\n  sources:\n    hubspot: {}\n", "unknown source 'hubspot'"),
        ("ingest:\n  timezone: Mars/Base\n", "unknown time zone 'Mars/Base'"),
        ("ingest:\n  sources:\n    web_events:\n      columns: {Id: visitor}\n",
         "maps to 'visitor', which is not a column of web_events"),
        ("ingest:\n  sources:\n    web_events:\n      columns: {A: event_id, B: event_id}\n",
         "maps several columns to ['event_id']"),
        ("analysis:\n  dormancy_days: 0\n", "analysis.dormancy_days"),
        ("analysis:\n  dormacy_days: 30\n",
         "analysis.dormacy_days: unknown setting; did you mean analysis.dormancy_days?"),
        ("ingest: [\n", "not valid YAML"),
        ("engine:\n  kind: Spark\n",
         "engine.kind: 'Spark' is not one of the choices; input should be 'duckdb' or 'spark'"),
        # values that cannot work pass no more (issue 27: each failed later, in a traceback)
        ("analysis:\n  dormancy_days: 100000000000000000000000\n",
         "analysis.dormancy_days: Input should be less than or equal to 36500"),
        ("ingest:\n  future_tolerance_hours: .inf\n",
         "ingest.future_tolerance_hours: Input should be a finite number"),
        ("resources:\n  memory_limit: 1KB\n", "'1KB' is less than the 128MB a build needs"),
        ("ingest:\n  timezone: posix/Europe/Berlin\n",
         "time zone 'posix/Europe/Berlin' is not one DuckDB reads"),
        ("ingest:\n  sources:\n    crm_activities:\n      timestamp_format: '%m/%d'\n",
         "timestamp_format '%m/%d' names no full date"),
        # marketing channel rules are checked when read, not when the build runs them
        ("analysis:\n  marketing_channels:\n    rules:\n      - channel: paid\n"
         "        when: {utm_mediun: cpc}\n",
         "rules.0.when.utm_mediun: a rule cannot read 'utm_mediun'; did you mean utm_medium?"),
        ("analysis:\n  marketing_channels:\n    rules:\n      - channel: paid\n"
         "        when: {referrer: '(?=x).*'}\n",
         "'(?=x).*' is not a regular expression DuckDB reads"),
        ("analysis:\n  marketing_channels:\n    rules:\n      - channel: paid\n"
         "        when: {referrer: '(unclosed'}\n",
         "'(unclosed' is not a regular expression DuckDB reads"),
        ("analysis:\n  marketing_channels:\n    rules:\n      - channel: paid\n"
         "        when: {}\n", "rules.0.when: a rule needs at least one condition"),
        ("analysis:\n  marketing_channels:\n    rules: []\n",
         "rules: an empty list would make every touchpoint 'other'"),
        ("analysis:\n  marketing_channels:\n    rules:\n      - channel: paid\n"
         "        when: {utm_medium: 123}\n",
         "when.utm_medium: a condition is a regular expression, a list of values or null"),
    ],
)
def test_invalid_config_is_a_clear_error(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yml")


def test_stage_map_path_is_relative_to_the_config_file(tmp_path):
    path = write(tmp_path, "analysis:\n  stage_map: maps/stages.yml\n")
    assert load_config(path).analysis.stage_map == str(tmp_path / "maps" / "stages.yml")


def test_free_mail_domains_are_normalised(tmp_path):
    path = write(tmp_path, "analysis:\n  free_mail_domains: [' GMail.com', web.de]\n")
    assert load_config(path).analysis.free_mail_domains == ["gmail.com", "web.de"]


def test_resource_limits_reach_every_warehouse_connection(tmp_path):
    """memory_limit and temp_directory from the config: DuckDB spills beside the warehouse
    instead of the process being killed."""
    from journey_mining import warehouse

    limits = Config.model_validate(
        {"resources": {"memory_limit": "1GB", "threads": 1}}).resources
    warehouse.use_resources(limits)
    try:
        con = warehouse.connect(tmp_path / "w.duckdb")
        memory, spill, threads = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory'), "
            "current_setting('threads')").fetchall()[0]
        con.close()
    finally:
        warehouse.use_resources(None)
    assert memory.startswith("953") and threads == 1
    assert spill == f"{(tmp_path / 'w.duckdb').resolve()}.tmp"
    share = Config().resources.duckdb_memory_limit()
    assert share.endswith("MB") and int(share[:-2]) > 0
    with pytest.raises(ValueError, match="not a size"):
        Config.model_validate({"resources": {"memory_limit": "lots"}})


@pytest.mark.parametrize(("text", "expected"), [
    ("ingest:\n  timezone: [\n", "not valid YAML"),
    ("- a\n- b\n", "a config file is a mapping of sections"),
])
def test_a_config_that_is_not_a_mapping_is_one_line(tmp_path, text, expected):
    path = tmp_path / "journey.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(path)
    assert "\n" not in str(caught.value)


def test_engine_spark_alone_is_the_spark_engine_with_its_defaults():
    """`engine: spark` is what most users write; it reads as `engine: {kind: spark}`."""
    assert Config.model_validate({"engine": "spark"}).engine == \
        Config.model_validate({"engine": {"kind": "spark"}}).engine
    with pytest.raises(ValueError, match="Input should be 'duckdb' or 'spark'"):
        Config.model_validate({"engine": "sparkk"})


@pytest.mark.parametrize("master", ["local", "local[2]", "local[*]", "local[4,2]",
                                    "spark://h1:7077,h2:7077", "k8s://https://k:443", "yarn"])
def test_every_master_spark_accepts_is_accepted(master):
    from journey_mining.config import EngineConfig

    assert EngineConfig(kind="spark", master=master).master == master
