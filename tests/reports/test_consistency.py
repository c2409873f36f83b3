"""A number the report shows twice is the same number: the report, the terminal summary
and the Prefect artifact tables read one definition each (journey_kpis and the marts)."""

from __future__ import annotations

import html as html_lib
import re

import pytest

from journey_mining import journeys, reports, warehouse


@pytest.fixture(scope="module")
def shown(sample_warehouse, tmp_path_factory):
    con = warehouse.connect(sample_warehouse, read_only=True)
    index = reports.write_report(con, tmp_path_factory.mktemp("r"), "t", static_images=False)
    kpis = con.sql("SELECT * FROM journey_kpis").df().iloc[0]
    funnel = con.sql("SELECT stage, reached FROM stage_funnel").fetchall()
    summary = journeys.journey_summary(con).to_text()
    artifact = journeys.run_tables(con)
    scored = con.execute("SELECT count(*) FROM churn_scores").fetchall()[0][0]
    con.close()
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", index.read_text()))
    return text, kpis, dict(funnel), summary, artifact, scored


def test_re_engagement_is_the_same_numbers_everywhere(shown):
    text, k, _, summary, _, _ = shown
    pair = f"{int(k.re_engaged_accounts)} of {int(k.first_engagement_ended)} accounts whose first"
    assert text.count(pair) == 2  # the question card and the section headline
    assert f"{k.re_engagement_rate:.1%}" in text
    assert (f"({int(k.re_engaged_accounts)} of {int(k.first_engagement_ended)} accounts whose "
            "first engagement ended came back)") in summary
    every_pair = set(re.findall(r"(\d+) of (\d+) (?:ended engagements|accounts whose first)",
                                text))
    assert every_pair == {(str(int(k.re_engaged_accounts)), str(int(k.first_engagement_ended)))}


def test_clients_are_counted_once_and_split_into_now_and_former(shown):
    text, k, funnel, _, artifact, scored = shown
    assert int(k.clients_ever) == funnel["client"]
    assert int(k.current_clients) == scored  # the churn population is "client now"
    assert int(k.current_clients) + int(k.former_clients) == int(k.clients_ever)
    assert f"{int(k.clients_ever)} of {int(k.prospects)} prospects became clients" in text
    assert f"{int(k.clients_ever)} became clients (" in text  # funnel headline
    assert f"({int(k.clients_ever)} became clients; {int(k.former_clients)} of them" in text
    assert dict(zip(artifact["funnel"].stage, artifact["funnel"].reached,
                    strict=True)) == funnel


def test_path_coverage_is_one_number_in_chart_sentence_and_table(sample_warehouse, shown):
    text = shown[0]
    con = warehouse.connect(sample_warehouse, read_only=True)
    top = con.execute("SELECT sum(coverage) FROM path_variants WHERE level = 'stage' "
                      f"AND variant_rank <= {reports.html.TOP_PATHS}").fetchall()[0][0]
    con.close()
    assert f"the {reports.html.TOP_PATHS} most common cover {top:.1%}" in text
    assert f"cover {1 - top:.1%} of accounts" in text  # the note under the table


@pytest.fixture(scope="module")
def stage_counts(sample_warehouse, tmp_path_factory):
    """What each place says about accounts per stage: the marts, the terminal summary,
    the process map's hover texts (in the report's page) and the cards."""
    con = warehouse.connect(sample_warehouse, read_only=True)
    index = reports.write_report(con, tmp_path_factory.mktemp("s"), "t", static_images=False)
    marts = {
        "occupancy": {s: (e, n) for s, e, n in con.execute(
            "SELECT stage, accounts_ever_in, accounts_in_now FROM stage_occupancy").fetchall()},
        "funnel_now": dict(con.execute(
            "SELECT stage, currently_in_stage FROM stage_funnel").fetchall()),
        "journeys_now": dict(con.execute(
            "SELECT current_stage, count(*) FROM account_journeys "
            "WHERE current_stage IS NOT NULL GROUP BY ALL").fetchall()),
        "timing": dict(con.execute(
            "SELECT stage, accounts_entered FROM stage_timing").fetchall()),
        "kpis": con.sql("SELECT * FROM journey_kpis").df().iloc[0],
    }
    summary = journeys.journey_summary(con).to_text()
    con.close()
    page = index.read_text()
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", page))
    return marts, summary, page, text


def test_accounts_in_a_stage_now_is_one_number_in_every_mart(stage_counts):
    marts = stage_counts[0]
    now = {s: n for s, (_, n) in marts["occupancy"].items()}
    assert marts["funnel_now"] == now
    assert {s: now[s] for s in marts["journeys_now"]} == marts["journeys_now"]
    assert sum(now.values()) == sum(marts["journeys_now"].values())


def test_the_terminal_the_process_map_and_the_timing_table_count_stages_alike(stage_counts):
    marts, summary, page, _ = stage_counts
    occupancy = marts["occupancy"]
    printed = {}
    for line in summary.splitlines():
        parts = line.split()
        if parts and parts[0] in occupancy:
            printed[parts[0]] = (int(parts[-2].replace(",", "")), int(parts[-1].replace(",", "")))
    assert printed == occupancy  # the "ever in" and "now" columns
    hover = dict(re.findall(r"([a-z ]+): ([\d,]+) accounts were in this stage", page))
    assert {s: int(hover[reports.format.LABEL[s]].replace(",", "")) for s in occupancy} == {
        s: ever for s, (ever, _) in occupancy.items()}
    assert all(occupancy[s][0] == n for s, n in marts["timing"].items())


def test_a_card_that_counts_something_else_says_what_it_counts(stage_counts):
    marts, _, page, text = stage_counts
    k, occupancy = marts["kpis"], marts["occupancy"]
    # The between-engagements and former-client bases are the stage counts...
    assert (f"{int(k.advocates_between_engagements)} of {occupancy['between_engagements'][0]} "
            "clients who were between engagements") in text
    assert f"of {occupancy['former_client'][0]} former clients" in text
    # ...while "advocates" counts accounts that gave a referral or a case study (in any
    # stage), not accounts inferred to be in the advocacy stage: the card says so.
    assert (f"{int(k.advocates)} accounts gave a referral or a case study") in text
    # ...and the process map's advocacy stage, which counts fewer, is named beside it.
    assert (f"The process map's advocacy stage counts {occupancy['advocacy'][0]}: only those "
            "who gave one after an engagement was completed") in text
    # The funnel counts accounts that got this far or further, and says so.
    assert "Accounts reaching each stage or further" in page


def test_two_numbers_of_one_question_that_differ_by_definition_say_which_is_which(
        stage_counts, sample_warehouse):
    """Every pair a reader met side by side with no word on why they differ: the funnel's
    reached against the map's were-in, the step rate against the share of prospects, the
    exact path against the representative's look-alikes, the re-engagement rate against
    the share of all accounts that returned, and a difference of shares in points."""
    marts, _, page, text = stage_counts
    k, occupancy = marts["kpis"], marts["occupancy"]
    con = warehouse.connect(sample_warehouse, read_only=True)
    reached = dict(con.execute("SELECT stage, reached FROM stage_funnel").fetchall())
    path, exact = con.execute("SELECT variant, cases FROM path_variants WHERE level = 'stage' "
                              "ORDER BY variant_rank LIMIT 1").fetchall()[0]
    look_alike = con.execute("SELECT accounts FROM representative_journeys WHERE level = "
                             "'stage' AND medoid_path = ?", [path]).fetchall()
    last, markov = (dict(con.execute(
        "SELECT value, share FROM attribution WHERE goal = 'client' AND dimension = "
        f"'marketing_channel' AND model = '{m}'").fetchall()) for m in ("last_touch", "markov_1"))
    con.close()
    # reached (funnel) vs were in (map): both shown, and the map says which it counts.
    assert reached["awareness"] != occupancy["awareness"][0]
    assert "accounts that were in it at some point" in text
    assert "under each stage, the accounts that were in it" in page
    # The funnel's step rate is "of the stage before", the headline's share "of prospects".
    assert "of the stage before" in page
    assert f"{int(k.clients_ever)} of {int(k.prospects)} prospects became clients" in text
    # The same path: exactly it in "most common paths", it and its look-alikes above.
    assert "accounts on exactly this path" in text
    assert "accounts with this path or a similar one" in text
    if look_alike:
        assert look_alike[0][0] >= exact
    # Re-engagement rate (of ended engagements) vs returns among all accounts.
    assert f"re-engagement rate {k.re_engagement_rate:.1%}" in text
    assert "Share of all accounts whose journey has each kind of move" in page
    # A difference of two shares reads in points, with both shares beside it.
    over = max(last, key=lambda v: last[v] - markov.get(v, 0))
    gap = last[over] - markov[over]
    assert (f"Last-touch reports give {over} {gap * 100:.1f} points more than the journeys "
            f"support ({last[over]:.1%} vs {markov[over]:.1%})") in text
    assert not re.search(r"\d % more than the journeys", text)
