"""Pseudonymisation at ingest: no raw address or visitor id reaches any table, and
stitching still works because every source hashes with the same key."""

from __future__ import annotations

import pytest

from journey_mining import build, ingest, warehouse
from journey_mining.config import AnalysisParams, IngestConfig
from journey_mining.errors import ConfigError
from tests.journeys_fixture import AS_OF, write_journey_exports

SECRETS = ["ann@acme.com", "ann", "carl@gmail.com", "lena@lambda.com", "bob", "v01", "v11",
           "Max@Acme.com", "max@acme.com"]


@pytest.fixture
def private(tmp_path):
    con = warehouse.connect()
    folder = write_journey_exports(tmp_path / "in")
    (folder / "web_events_bad.csv").write_text(
        "event_id,occurred_at,anonymous_id,event_name,email\n"
        "wx,not a date,v01,form_submit,ann@acme.com\n")  # rejected: its raw row is kept
    ingest.load_exports(con, folder, IngestConfig(pseudonymise=True), pseudonym_key="s3cret")
    build.build(con, AnalysisParams(), as_of=AS_OF)
    yield con
    con.close()


def all_text(con) -> str:
    chunks = []
    for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
        rows = con.execute(f"SELECT * FROM {table}").fetchall()
        chunks.extend(str(v) for row in rows for v in row if isinstance(v, str))
    return "\n".join(chunks)


def test_no_raw_email_or_visitor_id_is_stored_anywhere(private):
    text = all_text(private)
    assert "s3cret" not in text
    for secret in SECRETS:
        assert f"{secret}@" not in text and f"{secret}," not in text
        assert secret not in text.split("\n")


def test_stitching_still_ties_the_same_people(private):
    # The golden fixture's identity map, with pseudonyms: the same links, the same methods.
    rows = private.execute(
        "SELECT identifier_type, account_id, method, count(*) FROM identity_map "
        "GROUP BY ALL ORDER BY ALL").fetchall()
    contacts = ("A01", "A03", "A04", "A05", "A06", "A07", "A08", "A09", "A11")
    assert rows == [
        ("anonymous_id", "A01", "form_fill", 1), ("anonymous_id", "A11", "form_fill", 1),
        *[("contact_id", a, "crm_contact", 1) for a in contacts],
        ("email", "A01", "contact_email", 1), ("email", "A01", "email_domain", 1),
        ("email", "A02", "email_domain", 1),
        *[("email", a, "contact_email", 1) for a in contacts[1:]]]
    emails = [r[0] for r in private.execute(
        "SELECT identifier FROM identity_map WHERE identifier_type = 'email'").fetchall()]
    assert all(e.startswith("p_") and e.endswith(("@acme.com", "@beta.io", "@gmail.com",
                                                  "@delta.com", "@epsilon.com", "@zeta.com",
                                                  "@eta.com", "@theta.com", "@iota.com",
                                                  "@lambda.com")) for e in emails)


def test_the_same_key_gives_the_same_pseudonym_across_loads(tmp_path):
    first, second = warehouse.connect(), warehouse.connect()
    folder = write_journey_exports(tmp_path / "in")
    for con in (first, second):
        ingest.load_exports(con, folder, IngestConfig(pseudonymise=True), pseudonym_key="k")
    query = "SELECT email FROM raw_crm_contacts ORDER BY contact_id"
    assert first.execute(query).fetchall() == second.execute(query).fetchall()


def test_pseudonymising_without_a_key_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="JOURNEY_PSEUDONYM_KEY"):
        ingest.load_exports(warehouse.connect(), write_journey_exports(tmp_path / "in"),
                            IngestConfig(pseudonymise=True))


def test_an_id_of_an_earlier_load_is_found_in_text_in_any_letter_case(tmp_path):
    """Daily loads: the visitor came yesterday, a CRM note mentions its id today in other
    letters. Only keyed hashes of yesterday's ids are kept, and they are enough."""
    from tests.conftest import write_csv

    con = warehouse.connect()
    config = IngestConfig(pseudonymise=True)
    write_csv(tmp_path / "day1", "web_events.csv", "event_id,occurred_at,anonymous_id,event_name",
              "w1,2025-01-10T09:00:00Z,VisitorCCCC3,page_view")
    ingest.load_exports(con, tmp_path / "day1", config, pseudonym_key="k")
    write_csv(tmp_path / "day2", "crm_activities.csv",
              "activity_id,occurred_at,account_id,activity_type,properties",
              'a1,2025-01-11T09:00:00Z,A1,call,"{""seen"": ""visitorcccc3 and VISITORCCCC3""}"')
    ingest.load_exports(con, tmp_path / "day2", config, pseudonym_key="k")
    (properties,) = con.execute("SELECT properties FROM raw_crm_activities").fetchall()[0]
    (pseudonym,) = con.execute("SELECT anonymous_id FROM raw_web_events").fetchall()[0]
    assert "cccc3" not in properties.lower()
    assert properties.count(pseudonym) == 2
