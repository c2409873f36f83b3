"""`journey serve`: the deployment it serves runs the pipeline on the configured cron."""

from __future__ import annotations

import pytest

from journey_mining.config import load_config
from journey_mining.errors import ConfigError
from journey_mining.pipelines.journey_pipeline import deployment


def test_deployment_uses_the_config_schedule_and_absolute_paths(tmp_path):
    config = tmp_path / "journey.yml"
    config.write_text("schedule:\n  cron: '30 5 * * 1-5'\n  timezone: Europe/Berlin\n")
    definition = deployment("exports", "w.duckdb", str(config))
    schedule = definition.schedules[0].schedule
    assert (schedule.cron, schedule.timezone) == ("30 5 * * 1-5", "Europe/Berlin")
    assert definition.parameters["input_dir"] == str((tmp_path.cwd() / "exports").resolve())
    assert definition.parameters["config_path"] == str(config.resolve())


def test_cron_option_overrides_the_config(tmp_path):
    definition = deployment("exports", "w.duckdb", cron="0 7 * * *")
    assert definition.schedules[0].schedule.cron == "0 7 * * *"


def test_an_invalid_cron_is_a_clear_error(tmp_path):
    config = tmp_path / "journey.yml"
    config.write_text("schedule:\n  cron: 'every morning'\n")
    with pytest.raises(ConfigError, match="not a valid cron line"):
        load_config(config)


def test_an_invalid_cron_option_is_a_clear_error():
    with pytest.raises(ConfigError, match="--cron: .*not a valid cron line"):
        deployment("exports", "w.duckdb", cron="61 * * * *")


def test_scheduled_runs_go_one_at_a_time_and_wait_for_a_manual_run():
    definition = deployment("exports", "w.duckdb")
    assert definition.concurrency_limit == 1
    assert definition.concurrency_options.collision_strategy == "ENQUEUE"
    assert definition.parameters["wait_for_lock_seconds"] == 3600
