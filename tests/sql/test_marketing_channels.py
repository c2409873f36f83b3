"""Golden tests of marketing channels (contract v3 section 5): one hand-written touchpoint
per rule of the default grouping, each channel and source / medium worked out by hand, and a
user's rules, tried before the defaults or instead of them."""

from __future__ import annotations

import datetime as dt

import pytest

from journey_mining import build, ingest, warehouse
from journey_mining.config import AnalysisParams, MarketingChannels
from tests.conftest import write_csv

WEB = "event_id,occurred_at,anonymous_id,event_name,email,page_url,referrer,utm_source," \
      "utm_medium,utm_campaign"
PAGE = "https://example.io/blog/a"
# event id: (referrer, utm_source, utm_medium, utm_campaign) -> channel, source / medium
VISITS = {
    "w01": (("", "google", "cpc", "brand"), "paid search", "google / cpc"),
    "w02": (("https://www.google.de/search?q=crm", "", "", ""), "organic search",
            "google.de / organic"),
    "w03": (("https://www.linkedin.com/feed/", "", "", ""), "organic social",
            "linkedin.com / social"),
    "w04": (("", "linkedin", "paid_social", "abm"), "paid social", "linkedin / paid_social"),
    "w05": (("", "facebook", "cpc", ""), "paid social", "facebook / cpc"),
    "w06": (("", "Newsletter", " Email ", "june"), "email", "newsletter / email"),
    "w07": (("https://partner.example/blog", "", "", ""), "referral",
            "partner.example / referral"),
    "w08": (("https://example.io/pricing", "", "", ""), "direct", "(direct) / (none)"),
    "w09": (("", "", "", ""), "direct", "(direct) / (none)"),
    "w10": (("", "dsp", "display", "retargeting"), "display", "dsp / display"),
    "w11": (("", "expo", "event", ""), "events/offline", "expo / event"),
    "w12": (("", "foo", "", ""), "other", "foo / (none)"),
    "w13": (("", "bing", "organic", ""), "organic search", "bing / organic"),
    # a link clicked in a webmail is email, not a search engine's referral
    "w14": (("https://mail.google.com/mail/u/0/", "", "", ""), "email", "mail.google.com / email"),
    # the site's own subdomain and a domain of the user's (own_domains) are no referrals
    "w15": (("https://blog.example.io/post", "", "", ""), "direct", "(direct) / (none)"),
    "w16": (("https://shop.example-store.com/", "", "", ""), "direct", "(direct) / (none)"),
    # web analytics' own "(direct)", and a source tag without a medium
    "w17": (("", "(direct)", "(none)", ""), "direct", "(direct) / (none)"),
    "w18": (("", "linkedin", "", ""), "organic social", "linkedin / (none)"),
}
# UTM tags that only the landing page's URL carries
TAGGED_PAGE = "https://example.io/lp?x=1&utm_source=google&utm_medium=cpc&utm_campaign=spring%20sale"
CRM = {"a1": ("Meeting", "sales outreach"), "a2": ("Trade Show Visit", "events/offline"),
       "a3": ("Support Ticket", "account management"), "a4": ("Email", "sales outreach"),
       "a5": ("Webinar", "events/offline")}


def _exports(folder):
    write_csv(folder, "crm_accounts.csv", "account_id,name,domain", "A1,Acme,acme.com")
    write_csv(folder, "crm_contacts.csv", "contact_id,account_id,email", "C1,A1,ann@acme.com")
    write_csv(folder, "crm_activities.csv", "activity_id,occurred_at,account_id,contact_id,"
              "activity_type", *(f"{i},2025-02-{n + 1:02d}T09:00:00Z,A1,C1,{kind}"
                                 for n, (i, (kind, _)) in enumerate(CRM.items())))
    write_csv(folder, "web_events.csv", WEB, *(
        f"{i},2025-01-{n + 1:02d}T09:00:00Z,v1,page_view,,{PAGE},{','.join(fields)}"
        for n, (i, (fields, _, _)) in enumerate(VISITS.items())),
        f"w90,2025-01-30T09:00:00Z,v1,page_view,,{TAGGED_PAGE},,,,")
    write_csv(folder, "email_events.csv", "event_id,occurred_at,email,event_type,campaign_id,"
              "campaign_name", "m1,2025-03-01T09:00:00Z,ann@acme.com,open,c-7,June news")
    return folder


def _channels(tmp_path, settings: MarketingChannels | None = None) -> dict:
    con = warehouse.connect()
    ingest.load_exports(con, _exports(tmp_path / "exports"))
    build.build(con, AnalysisParams(marketing_channels=settings or MarketingChannels(
        own_domains=["https://www.Example-Store.com/"])),
                as_of=dt.datetime(2025, 6, 30))
    rows = con.execute("SELECT source_id, marketing_channel, source_medium, campaign "
                       "FROM touchpoints").fetchall()
    con.close()
    return {source_id: (channel, medium, campaign) for source_id, channel, medium, campaign
            in rows}


def test_the_default_rules_group_every_kind_of_visit_as_web_analytics_does(tmp_path):
    got = _channels(tmp_path)
    for event, (_, channel, medium) in VISITS.items():
        assert got[event][:2] == (channel, medium), event
    for activity, (kind, channel) in CRM.items():
        assert got[activity][0] == channel, kind
    # The email platform's events are email; the campaign carries its name, not its id.
    assert got["m1"] == ("email", "email platform / email", "June news")
    assert got["w01"][2] == "brand"
    assert got["w90"] == ("paid search", "google / cpc", "spring sale")


@pytest.mark.parametrize("keep", [True, False])
def test_a_users_rules_come_first_and_replace_or_extend_the_defaults(tmp_path, keep):
    rules = MarketingChannels.model_validate({
        "rules": [{"channel": "Partner Program", "when": {"referrer": r"partner\.example"}},
                  {"channel": "brand search", "when": {"utm_campaign": ["Brand"],
                                                       "utm_medium": ["cpc", "ppc"]}}],
        "keep_default_rules": keep})
    got = _channels(tmp_path, rules)
    assert got["w07"][0] == "partner program"  # names are compared lower-cased
    assert got["w01"][0] == "brand search"     # a list: any of the values, any letter case
    # The rest: the defaults when kept, else "other" (no rule of the user's matched).
    assert got["w03"][0] == ("organic social" if keep else "other")
    assert got["a1"][0] == ("sales outreach" if keep else "other")
    # source / medium is web analytics' reading, not the user's grouping
    assert got["w02"][1] == "google.de / organic" and got["w14"][1] == "mail.google.com / email"
