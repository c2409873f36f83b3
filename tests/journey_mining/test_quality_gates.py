"""Data-quality gates (config `quality`): a load that is mostly rejected stops the run;
a failed data test stops it only where its severity says error."""

from __future__ import annotations

import pytest

from journey_mining import checks, ingest, warehouse
from journey_mining.config import QualityGates
from journey_mining.errors import ConfigError
from tests.conftest import WEB_HEADER, write_csv


def load(tmp_path, *rows):
    write_csv(tmp_path, "web_events.csv", WEB_HEADER, *rows)
    con = warehouse.connect()
    ingest.load_exports(con, tmp_path)
    return con


def test_a_mostly_rejected_source_breaches_the_default_gate(tmp_path):
    # (rows, not a setting: a file whose timestamps mostly fail stops the load instead)
    con = load(tmp_path, "w1,2025-01-01T00:00:00Z,,page_view,", "w2,never,a,page_view,",
               "w3,2025-01-01T00:00:00Z,a,page_view,")
    assert checks.load_gate_breaches(con, QualityGates()) == [
        "web_events: 2 of 3 rows rejected (66.7%) in the last load, above "
        "quality.max_rejected_share 50%"]


def test_the_gate_is_set_per_source(tmp_path):
    con = load(tmp_path, "w1,not a time,a,page_view,", "w3,2025-01-01T00:00:00Z,a,page_view,")
    assert checks.load_gate_breaches(con, QualityGates(max_rejected_share={"web_events": 0.6})) \
        == []
    assert len(checks.load_gate_breaches(
        con, QualityGates(max_rejected_share={"default": 0.9, "web_events": 0.1}))) == 1


def test_only_error_severity_tests_breach():
    failed = [checks.CheckResult("engagements", "unique(x)", 3),
              checks.CheckResult("touchpoints", "not_null(y)", 1),
              checks.CheckResult("touchpoints", "unique(z)", 0)]
    gates = QualityGates(test_severity={"default": "warn", "engagements": "error"})
    assert checks.failed_test_breaches(failed, gates) == [
        "data test engagements unique(x) failed on 3 rows"]


def test_a_gate_for_an_unknown_source_is_a_config_error(tmp_path):
    import yaml

    from journey_mining.config import load_config

    path = tmp_path / "journey.yml"
    path.write_text(yaml.safe_dump({"quality": {"max_rejected_share": {"web_event": 0.1}}}))
    with pytest.raises(ConfigError, match="unknown source 'web_event'"):
        load_config(path)
