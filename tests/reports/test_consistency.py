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
