"""Validate before anything runs (issue 12): a bad config, stage map, engagement rule or
input path is one line and exit 1, before any file is read or Prefect starts; nothing
is written."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import SAMPLE

JOURNEY = str(Path(sys.executable).parent / "journey")


def journey_run(tmp_path, config: dict | None, stage_map: str | None = None,
                input_dir: Path = SAMPLE):
    args = [JOURNEY, "run", "--input", str(input_dir), "--warehouse", str(tmp_path / "w.duckdb")]
    if stage_map is not None:
        (tmp_path / "map.yml").write_text(stage_map)
    if config is not None:
        (tmp_path / "journey.yml").write_text(yaml.safe_dump(config))
        args += ["--config", str(tmp_path / "journey.yml")]
    started = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    return result, time.monotonic() - started


@pytest.mark.parametrize(("config", "stage_map", "message"), [
    ({"analysis": {"stage_map": "map.yml"}}, "signals: {crm: {deal_won: customer}}",
     "unknown stage 'customer'"),
    ({"analysis": {"stage_map": "missing.yml"}}, None, "stage map not found"),
    ({"analysis": {"engagements": {"start": []}}}, None, "needs at least one activity"),
    ({"analysis": {"churn_kind": "sometimes"}}, None, "churn_kind"),
    ({"ingest": {"sources": {"crm_activities": {"encoding": "cp1252"}}}}, None, "encoding"),
    # Spark would refuse it only after the load, in a Java stack trace.
    ({"engine": {"kind": "spark", "master": "banana"}}, None,
     "engine.master: 'banana' is not a Spark master"),
])
def test_a_bad_setting_is_one_line_before_anything_runs(tmp_path, config, stage_map, message):
    result, elapsed = journey_run(tmp_path, config, stage_map)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert elapsed < 30  # no Prefect start, no file read (about a second in practice)
    assert not (tmp_path / "w.duckdb").exists()
    assert not (tmp_path / "w.duckdb.lock").exists()


def test_a_missing_input_folder_is_one_line(tmp_path):
    result, _ = journey_run(tmp_path, None, input_dir=tmp_path / "nowhere")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nowhere'}: input folder not found"]
    assert not (tmp_path / "w.duckdb").exists()


def test_a_config_typo_gets_a_suggestion_with_the_full_key(tmp_path):
    result, _ = journey_run(tmp_path, {"analysis": {"dormancy_dayz": 30},
                                       "ingest": {"sources": {"web_events": {"delimter": ";"}}}})
    assert result.returncode == 1
    assert "analysis.dormancy_dayz: unknown setting; did you mean analysis.dormancy_days?" \
        in result.stderr
    assert "did you mean ingest.sources.web_events.delimiter?" in result.stderr


def test_version_and_a_generate_that_never_overwrites_the_sample(tmp_path):
    version = subprocess.run([JOURNEY, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("journey-mining ")
    before = {p.name: p.stat().st_mtime for p in SAMPLE.iterdir()}
    refused = subprocess.run([JOURNEY, "generate", "--out", str(SAMPLE), "--accounts", "5"],
                             capture_output=True, text=True)
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert {p.name: p.stat().st_mtime for p in SAMPLE.iterdir()} == before
    missing = subprocess.run([JOURNEY, "generate"], capture_output=True, text=True)
    assert missing.returncode != 0 and "--out" in missing.stderr


def _engine_command(tmp_path, *args: str, config: str | None, env: dict | None = None):
    import os

    if config is not None:
        (tmp_path / "engine.yml").write_text(config)
        args = (*args, "--config", "engine.yml")
    return subprocess.run([JOURNEY, *args], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120, env={**os.environ, **(env or {})})


SPARK = "engine:\n  kind: spark\n"


@pytest.mark.parametrize(("uri", "config", "said"), [
    ("s3a://bucket/journeys", SPARK, "is a URI: set engine.catalog in the config"),
    ("hdfs://nn:8020/wh", SPARK, "is a URI: set engine.catalog in the config"),
    ("s3a://bucket/journeys", None, "is a URI, which only the Spark engine writes to"),
    ("wh", SPARK + "  catalog: local.duckdb\n", "engine.catalog (")])
@pytest.mark.parametrize("command", ["run", "export-marts"])
def test_a_uri_warehouse_without_what_it_needs_is_one_sentence_and_creates_nothing(
        tmp_path, uri, config, said, command):
    args = (["run", "--input", str(SAMPLE)] if command == "run" else
            ["export-marts", "--to", "marts"])
    result = _engine_command(tmp_path, *args, "--warehouse", uri, config=config)
    assert result.returncode == 1
    assert said in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == (["engine.yml"] if config else [])


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_a_uri_spark_cannot_write_to_is_one_sentence_before_anything_runs(tmp_path):
    """s3a:// without the hadoop-aws connector (not shipped with pyspark): said once
    Spark has started, before a row is loaded (no network is needed to find it out)."""
    from tests.sql.test_spark_portability import _spark_missing

    if _spark_missing():
        pytest.skip(_spark_missing())
    result = _engine_command(tmp_path, "run", "--input", str(SAMPLE), "--warehouse",
                             "s3a://bucket/journeys",
                             config=SPARK + "  catalog: cat/journeys.duckdb\n")
    assert result.returncode == 1
    assert ("Spark has no file system for s3a:// here; add its connector to Spark's class "
            "path") in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engine.yml"]


@pytest.mark.parametrize(("args", "config", "said"), [
    (["run", "--input", str(SAMPLE), "--warehouse", ""], SPARK, "--warehouse is empty"),
    (["run", "--input", str(SAMPLE), "--warehouse", ""], None, "--warehouse is empty"),
    (["export-marts", "--to", "marts", "--warehouse", "ghost/wh"], SPARK,
     "ghost/wh/journeys.duckdb: no warehouse there yet")])
def test_a_warehouse_that_is_not_there_is_one_sentence_and_creates_nothing(
        tmp_path, args, config, said):
    """An empty --warehouse would be the current folder; a read of a Spark warehouse
    that is not there must not leave its folder behind."""
    result = _engine_command(tmp_path, *args, config=config)
    assert result.returncode == 1
    assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == (["engine.yml"] if config else [])


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_a_spark_that_cannot_start_is_one_sentence_before_anything_is_loaded(tmp_path):
    """A setting the JVM refuses stands for a master that is down (which Spark gives up
    on after a minute): one sentence naming engine.master, no stack trace, no load."""
    from tests.sql.test_spark_portability import _spark_missing

    if _spark_missing():
        pytest.skip(_spark_missing())
    result = _engine_command(tmp_path, "run", "--input", str(SAMPLE), "--warehouse", "wh",
                             config=SPARK + "  conf:\n    spark.driver.memory: banana\n")
    assert result.returncode == 1
    assert "error: engine.master local[2]: Spark could not run a job there" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engine.yml"]


def test_a_spark_warehouse_folder_without_its_config_says_what_to_pass(tmp_path):
    (tmp_path / "wh").mkdir()
    (tmp_path / "wh" / "journeys.duckdb").write_bytes(b"")
    result = _engine_command(tmp_path, "export-marts", "--to", "marts", "--warehouse", "wh",
                             config=None)
    assert result.returncode == 1
    assert "pass --config with engine.kind: spark" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_java_home_without_java_is_named_before_anything_runs(tmp_path):
    result = _engine_command(tmp_path, "run", "--input", str(SAMPLE), "--warehouse", "wh",
                             config=SPARK, env={"JAVA_HOME": str(tmp_path / "no-jdk")})
    assert result.returncode == 1
    assert "holds no bin/java" in result.stdout + result.stderr
    assert not (tmp_path / "wh" / "journeys.duckdb").exists()
