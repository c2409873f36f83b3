"""The stage map: the contract's default, user overrides, and validation errors."""

from __future__ import annotations

import pytest

from journey_mining import build, ingest, stages
from journey_mining.config import AnalysisParams
from journey_mining.errors import ConfigError
from tests.conftest import WEB_HEADER, write_csv


def test_default_map_is_the_contracts():
    stage_map = stages.load_stage_map()
    signals = {(c, a): s for c, a, s in stage_map.signals}
    assert signals[("web", "page_view")] == "awareness"
    assert signals[("email", "reply")] == "consideration"
    assert signals[("crm", "deal_lost")] == "decision"
    assert signals[("crm", "project_completed")] == "between_engagements"
    assert signals[("crm", "cancellation")] == "former_client"
    assert len(signals) == 27
    assert ("email", "sent") not in signals and ("email", "bounce") not in signals
    assert set(stage_map.negative) == {
        ("email", "unsubscribe"), ("email", "spam_complaint"), ("email", "bounce"),
        ("crm", "deal_lost"), ("crm", "cancellation"), ("crm", "support_ticket")}


@pytest.mark.parametrize(("text", "message"), [
    ("signals:\n  web:\n    page_view: interest\n", "unknown stage 'interest'"),
    ("signals:\n  web:\n    page_view: awareness\n    page_view: consideration\n",
     "['page_view'] given twice"),
    ("signals:\n  web:\n    Page View: awareness\n    page_view: consideration\n",
     "page_view is mapped twice"),
    ("signals:\n  sms:\n    sent: awareness\n", "unknown channel 'sms'"),
    ("stages: [a]\nsignals: {}\n", "unknown keys ['stages']"),
])
def test_invalid_stage_map_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "stages.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        stages.load_stage_map(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_a_custom_map_changes_the_stages_after_a_rebuild(con, tmp_path):
    write_csv(tmp_path / "in", "web_events.csv", WEB_HEADER,
              "w1,2025-01-01T00:00:00Z,v1,page_view,",
              "w2,2025-01-02T00:00:00Z,v1,case_study_read,")
    ingest.load_exports(con, tmp_path / "in")
    custom = tmp_path / "stages.yml"
    custom.write_text(
        "signals:\n  web:\n    page_view: awareness\n    case_study_read: evaluation\n")
    build.build(con, AnalysisParams(stage_map=str(custom)))
    assert con.execute("SELECT source_id, stage FROM touchpoints ORDER BY 1").fetchall() == [
        ("w1", "awareness"), ("w2", "evaluation")]
    build.build(con, AnalysisParams())
    assert con.execute("SELECT source_id, stage FROM touchpoints ORDER BY 1").fetchall() == [
        ("w1", "awareness"), ("w2", None)]  # unknown activities keep an empty stage


@pytest.mark.parametrize(("score", "negative"), [(0, True), (6, True), (7, False), (10, False)])
def test_nps_of_six_or_less_is_a_negative_signal(con, tmp_path, score, negative):
    write_csv(tmp_path / "in", "crm_activities.csv",
              "activity_id,occurred_at,account_id,activity_type,properties",
              f'x1,2025-01-01,A1,nps_response,"{{""score"": {score}}}"')
    ingest.load_exports(con, tmp_path / "in")
    build.build(con, AnalysisParams())
    assert con.execute("SELECT is_negative FROM touchpoints").fetchall() == [(negative,)]
