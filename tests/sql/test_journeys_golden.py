"""Golden tests: every row of identity_map, account_journeys, engagements and stage_funnel
on the hand-built fixture of tests/journeys_fixture.py (each number is worked out there)."""

from __future__ import annotations

import datetime as dt

import pytest

from journey_mining import build
from journey_mining.config import AnalysisParams
from tests.journeys_fixture import AS_OF, built_journeys


def T(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    con = built_journeys(tmp_path_factory.mktemp("journeys"))
    yield con
    con.close()


def test_identity_map(built):
    rows = built.execute(
        "SELECT identifier_type, identifier, contact_id, account_id, method, n_candidate_accounts "
        "FROM identity_map ORDER BY identifier_type, identifier").fetchall()
    assert rows == [
        ("anonymous_id", "v01", "C01", "A01", "form_fill", 1),
        ("anonymous_id", "v11", "C11", "A11", "form_fill", 2),  # lena x2 beats max x1
        ("contact_id", "C01", "C01", "A01", "crm_contact", 0),
        ("contact_id", "C03", "C03", "A03", "crm_contact", 0),
        ("contact_id", "C04", "C04", "A04", "crm_contact", 0),
        ("contact_id", "C05", "C05", "A05", "crm_contact", 0),
        ("contact_id", "C06", "C06", "A06", "crm_contact", 0),
        ("contact_id", "C07", "C07", "A07", "crm_contact", 0),
        ("contact_id", "C08", "C08", "A08", "crm_contact", 0),
        ("contact_id", "C09", "C09", "A09", "crm_contact", 0),
        ("contact_id", "C11", "C11", "A11", "crm_contact", 0),
        ("email", "ann@acme.com", "C01", "A01", "contact_email", 1),
        ("email", "bob@beta.io", None, "A02", "email_domain", 1),
        ("email", "carl@gmail.com", "C03", "A03", "contact_email", 1),
        ("email", "dina@delta.com", "C04", "A04", "contact_email", 1),
        ("email", "emil@epsilon.com", "C05", "A05", "contact_email", 1),
        ("email", "eve@eta.com", "C07", "A07", "contact_email", 1),
        ("email", "ida@iota.com", "C09", "A09", "contact_email", 1),
        ("email", "lena@lambda.com", "C11", "A11", "contact_email", 1),
        ("email", "max@acme.com", None, "A01", "email_domain", 1),
        ("email", "theo@theta.com", "C08", "A08", "contact_email", 1),
        ("email", "zoe@zeta.com", "C06", "A06", "contact_email", 1),
    ]


def test_free_mail_is_never_domain_matched(built):
    # A12's domain is gmail.com; dave@gmail.com is no contact: it stays unresolved.
    assert built.execute(
        "SELECT account_id, evidence FROM int_emails_resolved WHERE email = 'dave@gmail.com'"
    ).fetchall() == [(None, "free-mail domain: never matched by domain")]


def test_domain_shared_by_two_accounts_is_not_matched(built):
    assert built.execute(
        "SELECT account_id, evidence FROM int_emails_resolved WHERE email = 'oscar@omega.com'"
    ).fetchall() == [(None, "domain shared by 2 accounts: not matched")]


def test_visitor_events_before_and_after_the_form_fill_join_the_journey(built):
    assert built.execute(
        "SELECT source_id, account_id, contact_id, resolution_method FROM touchpoints "
        "WHERE anonymous_id = 'v01' ORDER BY occurred_at").fetchall() == [
        ("w01", "A01", "C01", "form_fill"), ("w02", "A01", "C01", "form_fill"),
        ("w03", "A01", "C01", "contact_email"), ("w04", "A01", "C01", "form_fill")]


def test_a_form_fill_goes_by_its_own_email_even_on_a_conflicting_visitor(built):
    assert built.execute(
        "SELECT source_id, account_id, resolution_method FROM touchpoints "
        "WHERE anonymous_id = 'v11' ORDER BY occurred_at").fetchall() == [
        ("w11", "A11", "form_fill"), ("w12", "A11", "contact_email"),
        ("w13", "A11", "contact_email"), ("w14", "A01", "email_domain"),
        ("w15", "A11", "form_fill")]


def test_account_journeys(built):
    rows = built.execute(
        "SELECT account_id, first_touch_at, last_touch_at, n_touchpoints, n_contacts_engaged, "
        "roles_engaged, furthest_stage, current_stage, n_engagements, dropped, dropped_at_stage "
        "FROM account_journeys ORDER BY account_id").fetchall()
    assert rows == [
        # current stage: the January pricing view was withdrawn by the March webinar
        # registration (stage states, evidence method); furthest is what was signalled
        ("A01", T("2025-01-05 09:00"), T("2025-03-04 09:00"), 5, 1, ["initiator"],
         "evaluation", "consideration", 0, True, "evaluation"),
        ("A02", T("2025-06-01 09:00"), T("2025-06-01 09:05"), 2, 0, [],
         "consideration", "consideration", 0, False, None),
        ("A03", T("2025-03-01 09:00"), T("2025-03-01 09:00"), 1, 1, ["decider"],
         "awareness", "awareness", 0, True, "awareness"),
        ("A04", T("2024-01-05 10:00"), T("2024-07-10 10:00"), 7, 1, ["buyer"],
         "client", "client", 1, False, None),
        ("A05", T("2024-01-01 10:00"), T("2024-09-01 10:00"), 5, 1, ["user"],
         "between_engagements", "between_engagements", 2, False, None),
        ("A06", T("2024-02-01 10:00"), T("2024-05-01 10:00"), 4, 1, ["other"],
         "former_client", "former_client", 1, False, None),
        ("A07", T("2025-02-01 09:00"), T("2025-02-01 09:00"), 1, 1, ["influencer"],
         "awareness", "awareness", 0, True, "awareness"),
        ("A08", T("2025-03-01 10:00"), T("2025-06-10 09:00"), 4, 1, ["decider"],
         "decision", "decision", 0, False, None),
        ("A09", T("2024-03-01 10:00"), T("2024-10-01 10:00"), 4, 1, ["initiator"],
         "advocacy", "advocacy", 1, False, None),
        ("A10", None, None, 0, 0, [], None, None, 0, False, None),
        ("A11", T("2025-03-01 09:00"), T("2025-06-20 09:00"), 5, 1, ["initiator"],
         "evaluation", "evaluation", 0, False, None),
        ("A12", None, None, 0, 0, [], None, None, 0, False, None),
        ("A13", None, None, 0, 0, [], None, None, 0, False, None),
        ("A14", None, None, 0, 0, [], None, None, 0, False, None),
    ]


def test_engagements(built):
    rows = built.execute(
        "SELECT account_id, engagement_no, started_at, ended_at, gap_days, ended_by, n_deals_won "
        "FROM engagements ORDER BY account_id, engagement_no").fetchall()
    assert rows == [
        ("A04", 1, T("2024-07-01 10:00"), None, None, None, 1),
        ("A05", 1, T("2024-01-01 10:00"), T("2024-04-01 10:00"), None, "project_completed", 1),
        ("A05", 2, T("2024-06-01 10:00"), T("2024-09-01 10:00"), 61.0, "project_completed", 2),
        ("A06", 1, T("2024-02-01 10:00"), T("2024-05-01 10:00"), None, "cancellation", 1),
        ("A09", 1, T("2024-03-01 10:00"), T("2024-08-01 10:00"), None, "project_completed", 1),
    ]


def test_stage_funnel(built):
    rows = built.execute(
        "SELECT stage, reached, round(conversion_to_next, 6), dropped, ever_in_stage, "
        "currently_in_stage FROM stage_funnel ORDER BY stage_order").fetchall()
    # currently_in_stage: each account's current stay, dormant ones included (A03 and A07
    # rest in awareness; A01, dormant, and A02 in consideration; A11 in evaluation; A08 in
    # decision, as account_journeys.current_stage and stage_occupancy say).
    assert rows == [
        ("awareness", 10, 0.8, 2, 6, 2),
        ("consideration", 8, 0.875, 0, 3, 2),
        ("evaluation", 7, round(5 / 7, 6), 1, 4, 1),
        ("decision", 5, 0.8, 0, 2, 1),
        ("client", 4, None, 0, 4, 1),
        ("between_engagements", 3, None, 0, 2, 1),
        ("advocacy", 2, None, 0, 1, 1),
        ("former_client", 1, None, 0, 1, 1),
    ]


def test_negative_signals(built):
    assert built.execute(
        "SELECT source_id, score FROM touchpoints WHERE is_negative ORDER BY source_id"
    ).fetchall() == [("a403", None), ("a602", None), ("a603", 4.0), ("a604", None),
                     ("a803", None)]


def test_headline_numbers(built):
    row = built.execute(
        "SELECT accounts, touchpoints, resolved_touchpoints, first_engagement_ended, "
        "re_engaged_accounts, re_engagement_rate, dropped_accounts, "
        "visitors_with_conflicting_form_fills, emails_with_ambiguous_domain FROM journey_kpis"
    ).fetchall()
    assert row == [(14, 41, 38, 3, 1, 1 / 3, 3, 1, 1)]


def test_identity_resolution_by_source_and_method(built):
    assert built.execute(
        "SELECT source, method, touchpoints FROM identity_resolution").fetchall() == [
        ("crm_activities", "crm_record", 23),
        ("email_events", "contact_email", 4),
        ("email_events", "email_domain", 2),
        ("email_events", "unresolved", 2),
        ("web_events", "contact_email", 3),
        ("web_events", "email_domain", 1),
        ("web_events", "form_fill", 5),
        ("web_events", "unresolved", 1),
    ]


def test_an_earlier_as_of_date_ignores_later_touchpoints(built):
    # As of 2024-05-15: A04 lost a deal, then met sales again (evaluation); A05 is between
    # its two engagements; A06 has just cancelled.
    build.build(built, AnalysisParams(), as_of=dt.datetime(2024, 5, 15))
    try:
        rows = built.execute(
            "SELECT account_id, current_stage, n_engagements FROM account_journeys "
            "WHERE account_id IN ('A04', 'A05', 'A06') ORDER BY 1").fetchall()
        assert rows == [("A04", "evaluation", 0), ("A05", "between_engagements", 1),
                        ("A06", "former_client", 1)]
    finally:
        build.build(built, AnalysisParams(), as_of=AS_OF)
