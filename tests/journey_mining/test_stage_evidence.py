"""The evidence method on small hand-checked journeys (README "Stage states"): every
move below is what the rules say, checked by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from journey_mining.stage_evidence import evidence_stays, informative_activities
from journey_mining.stage_inference import PRE_SALE

STAGE = {"open": "awareness", "page_view": "awareness", "click": "consideration",
         "content_download": "consideration", "form_submit": "consideration",
         "pricing_view": "evaluation", "meeting": "evaluation", "demo_request": "evaluation",
         "proposal_sent": "decision", "deal_lost": "decision"}


def journey(account: str, *steps: tuple[str, str]) -> pd.DataFrame:
    """(day, activity) pairs; a day like '2025-01-05 10:00' keeps visits apart."""
    return pd.DataFrame({
        "account_id": account,
        "occurred_at": pd.to_datetime([day for day, _ in steps]),
        "activity": [activity for _, activity in steps],
        "stage": [STAGE[activity] for _, activity in steps],
        "is_negative": [activity == "deal_lost" for _, activity in steps],
    })


def typical(n: int = 10) -> list[pd.DataFrame]:
    """Accounts that download white papers while they consider and meet sales while they
    evaluate: the population that tells which activities are evidence."""
    return [journey(f"T{i}", ("2025-01-01", "form_submit"), ("2025-01-20", "content_download"),
                    ("2025-02-01", "form_submit"), ("2025-02-10", "content_download"),
                    ("2025-03-01", "pricing_view"), ("2025-03-10", "meeting"),
                    ("2025-03-15", "pricing_view"), ("2025-03-20", "meeting"),
                    ("2025-04-01", "proposal_sent"), ("2025-04-10", "deal_lost"),
                    ("2025-04-20", "proposal_sent"), ("2025-05-01", "deal_lost"))
            for i in range(n)]


def path(*journeys: pd.DataFrame) -> dict[str, list[str]]:
    events = pd.concat([*journeys, *typical()], ignore_index=True)
    stays, _ = evidence_stays(events, PRE_SALE)
    stays = stays.sort_values(["account_id", "entered_at"])
    return {a: list(g.stage) for a, g in stays.groupby("account_id")}


def test_newsletter_opens_neither_move_nor_step_back():
    paths = path(journey("A", ("2025-01-01", "page_view"), ("2025-01-10", "form_submit"),
                         ("2025-02-01", "pricing_view"), ("2025-03-01", "open"),
                         ("2025-04-01", "open"), ("2025-05-01", "open")))
    assert paths["A"] == ["awareness", "consideration", "evaluation"]


def test_a_journey_starts_aware_unless_its_first_touchpoint_is_evidence():
    paths = path(journey("A", ("2025-01-01 10:00", "page_view"),
                         ("2025-01-01 10:05", "form_submit")),
                 journey("B", ("2025-01-01", "form_submit"), ("2025-01-09", "content_download")))
    assert paths["A"] == ["awareness", "consideration"]
    assert paths["B"] == ["consideration"]


def test_lower_evidence_is_a_step_back_lower_background_is_not():
    paths = path(
        journey("research", ("2025-01-01", "form_submit"), ("2025-01-05", "pricing_view"),
                ("2025-01-09", "meeting"), ("2025-01-12", "content_download"),
                ("2025-01-20", "open"), ("2025-02-01", "meeting")),
        journey("newsletter", ("2025-01-01", "form_submit"), ("2025-01-05", "pricing_view"),
                ("2025-01-09", "meeting"), ("2025-01-12", "open"),
                ("2025-01-20", "page_view"), ("2025-02-01", "meeting")))
    # back to research at the download, evaluating again at the next meeting
    assert paths["research"] == ["consideration", "evaluation", "consideration", "evaluation"]
    assert paths["newsletter"] == ["consideration", "evaluation"]


def test_a_lost_deal_lets_the_next_evidence_say_where_the_account_went():
    paths = path(
        journey("back", ("2025-01-01", "meeting"), ("2025-01-09", "proposal_sent"),
                ("2025-02-01", "deal_lost"), ("2025-03-01", "open"),
                ("2025-04-01", "content_download")),
        journey("gone", ("2025-01-01", "meeting"), ("2025-01-09", "proposal_sent"),
                ("2025-02-01", "deal_lost"), ("2025-03-01", "open")))
    assert paths["back"] == ["evaluation", "decision", "consideration"]
    assert paths["gone"] == ["evaluation", "decision"]  # lost, nothing since: no guess


def test_a_single_step_up_is_withdrawn_when_lower_evidence_comes_first():
    paths = path(journey("A", ("2025-01-01", "form_submit"), ("2025-01-05", "pricing_view"),
                         ("2025-01-09", "content_download"), ("2025-01-15", "form_submit")))
    assert paths["A"] == ["consideration"]


def test_a_skip_needs_evidence_of_the_later_stage():
    paths = path(journey("A", ("2025-01-01 09:00", "page_view"),
                         ("2025-01-01 09:03", "demo_request"), ("2025-01-08 10:00", "meeting")))
    assert paths["A"] == ["awareness", "evaluation"]


def test_background_is_measured_not_assumed():
    # 30 prospects click a newsletter every week, a little less while considering (once a
    # month); 30 others only open and click newsletters and stop there. Downloads happen
    # only while considering.
    weekly = pd.date_range("2025-01-06", "2025-08-25", freq="7D")
    clicks = [(str(d.date()), "click") for d in weekly
              if not pd.Timestamp("2025-04-02") <= d < pd.Timestamp("2025-06-01") or d.day < 8]
    journeys = [journey(f"P{i}", *sorted([
        ("2025-01-01", "open"), ("2025-04-02", "form_submit"), ("2025-04-20", "content_download"),
        ("2025-05-03", "content_download"), ("2025-06-01", "pricing_view"),
        ("2025-06-10", "meeting"), ("2025-08-27", "meeting"), *clicks])) for i in range(30)]
    journeys += [journey(f"S{i}", ("2025-01-01", "open"), ("2025-02-01", "open"),
                         ("2025-03-01", "click")) for i in range(30)]
    events = pd.concat(journeys, ignore_index=True)
    events["level"] = events.stage.map({s: i for i, s in enumerate(PRE_SALE)})
    table = informative_activities(events).set_index("activity")
    assert not table.loc["click", "informative"]
    assert table.loc["content_download", "informative"]
    assert table.loc["form_submit", "informative"]


@pytest.mark.parametrize("activity", ["open", "page_view"])
def test_the_lowest_stage_is_background_by_definition(activity):
    events = journey("A", ("2025-01-01", activity), ("2025-02-01", "form_submit"))
    events["level"] = events.stage.map({s: i for i, s in enumerate(PRE_SALE)})
    table = informative_activities(events).set_index("activity")
    assert not table.loc[activity, "informative"]


def test_confidence_is_the_share_of_evidence_pointing_to_the_stay():
    steady = journey("steady", ("2025-01-01", "form_submit"),
                     ("2025-01-05", "content_download"), ("2025-01-09", "content_download"))
    once = journey("once", ("2025-01-01", "form_submit"))
    # a step up to evaluation withdrawn by white papers: it counts against consideration
    mixed = journey("mixed", ("2025-01-01", "form_submit"), ("2025-01-05", "content_download"),
                    ("2025-01-09", "pricing_view"), ("2025-01-12", "content_download"),
                    ("2025-01-20", "content_download"))
    stays, _ = evidence_stays(pd.concat([steady, once, mixed, *typical()], ignore_index=True),
                              PRE_SALE)
    got = stays.set_index("account_id").posterior
    assert got["steady"] == pytest.approx(3 / 4)
    assert got["once"] == pytest.approx(1 / 2)  # one signal: a coin flip
    assert got["mixed"] == pytest.approx(4 / 6)


# -- renewal cycles between engagements ---------------------------------------------------

def test_evaluating_and_deciding_between_engagements_is_a_renewal_cycle():
    from journey_mining.stage_evidence import renewal_stays

    ts = pd.Timestamp
    renewing = [f"R{i}" for i in range(10)]
    gaps = pd.DataFrame({
        "account_id": [*renewing, "browses", "deciding"],
        "ended_at": [ts("2025-01-01")] * 12,
        "next_start": [ts("2025-09-01")] * 11 + [pd.NaT],
        "gap_end": [ts("2025-09-01")] * 11 + [ts("2025-12-31")],
    })
    signals = pd.concat([
        *[journey(a, ("2025-08-01", "meeting"), ("2025-08-15", "proposal_sent"))
          for a in renewing],
        journey("browses", ("2025-02-01", "pricing_view")),  # long before, nothing follows
        journey("deciding", ("2025-11-01", "meeting"), ("2025-11-20", "proposal_sent")),
    ], ignore_index=True)[["account_id", "occurred_at", "activity", "stage"]]
    stays, parameters = renewal_stays(gaps, signals, sales_cycle_days=60, ladder=PRE_SALE)
    got = {a: list(g.sort_values("entered_at").stage) for a, g in stays.groupby("account_id")}
    assert got == {**{a: ["evaluation", "decision"] for a in renewing},
                   "deciding": ["evaluation", "decision"]}
    assert parameters.loc[parameters.parameter == "sales_cycle_days", "value"].tolist() == [60]


def test_no_sales_cycle_measured_means_no_renewal_cycles():
    from journey_mining.stage_evidence import renewal_stays

    gaps = pd.DataFrame({"account_id": ["A"], "ended_at": [pd.Timestamp("2025-01-01")],
                         "next_start": [pd.Timestamp("2025-03-01")],
                         "gap_end": [pd.Timestamp("2025-03-01")]})
    signals = journey("A", ("2025-02-01", "meeting"))[["account_id", "occurred_at", "activity",
                                                       "stage"]]
    stays, _ = renewal_stays(gaps, signals, sales_cycle_days=None, ladder=PRE_SALE)
    assert stays.empty


def test_an_observed_stage_change_pins_the_stage():
    # a CRM lifecycle change to evaluation, recorded: the account is there from that
    # moment, with no confirmation needed, and a recorded step back is a step back
    STAGE.update({"stage_set_evaluation": "evaluation", "stage_set_consideration":
                  "consideration"})
    events = pd.concat([
        journey("A", ("2025-01-01", "form_submit"), ("2025-02-01", "stage_set_evaluation"),
                ("2025-02-10", "open"), ("2025-03-01", "stage_set_consideration"),
                ("2025-03-05", "open")),
        *typical()], ignore_index=True)
    events["observed"] = events.activity.str.startswith("stage_set_")
    stays, _ = evidence_stays(events, PRE_SALE)
    got = stays[stays.account_id == "A"].sort_values("entered_at")
    assert list(got.stage) == ["consideration", "evaluation", "consideration"]
    assert got.entered_at.tolist()[1:] == [pd.Timestamp("2025-02-01"),
                                           pd.Timestamp("2025-03-01")]
    assert got.posterior.tolist()[1:] == [1.0, 1.0]  # recorded, not inferred
    assert got.observed.tolist() == [False, True, True]


def test_an_observed_activity_must_be_in_the_stage_map():
    from journey_mining.errors import ConfigError
    from journey_mining.stages import parse_stage_map

    with pytest.raises(ConfigError, match="observed: crm.lifecycle_change must also be"):
        parse_stage_map({"signals": {"crm": {"meeting": "evaluation"}},
                         "observed": {"crm": ["lifecycle_change"]}})
    parsed = parse_stage_map({"signals": {"crm": {"Stage Evaluation": "evaluation"}},
                              "observed": {"crm": ["Stage Evaluation"]}})
    assert parsed.observed == (("crm", "stage_evaluation"),)
