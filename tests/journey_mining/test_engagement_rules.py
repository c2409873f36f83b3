"""Engagements and churn from config (contract v2): other activity names, purchase-only
logs (instant engagements, non-contractual churn) and an inactivity end."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import yaml

from journey_mining import build, churn, ingest, reengagement, warehouse
from journey_mining.config import AnalysisParams, EngagementRules, load_config
from journey_mining.errors import ConfigError
from tests.conftest import user_env, write_csv

DAY0 = dt.datetime(2024, 1, 1, 9, 0)


def purchase_log(folder, purchases: dict[str, list[float]]):
    """crm exports where each purchase (a day offset from DAY0) is an activity 'Purchase'."""
    rows, n = [], 0
    for account, days in purchases.items():
        for day in days:
            n += 1
            at = DAY0 + dt.timedelta(days=day)
            rows.append(f"p{n},{at:%Y-%m-%d %H:%M:%S},{account},Purchase")
    write_csv(folder, "crm_accounts.csv", "account_id,name",
              *(f"{a},Customer {a}" for a in purchases))
    write_csv(folder, "crm_activities.csv", "activity_id,occurred_at,account_id,activity_type",
              *rows)
    # the stage map is no export: it goes beside the folder the loader reads
    (folder.parent / "stage_map.yml").write_text(yaml.safe_dump(
        {"signals": {"crm": {"purchase": "client"}}}))
    return folder


@pytest.fixture
def purchases(tmp_path):
    folder = tmp_path / "in"
    purchase_log(folder, {"C1": [0, 30, 30.2, 90], "C2": [10], "C3": [5, 45]})
    path = tmp_path / "journey.yml"
    path.write_text(yaml.safe_dump({"analysis": {
        "stage_map": "stage_map.yml", "churn_kind": "non_contractual",
        "as_of": "2024-12-31", "engagements": {"start": ["purchase"], "instant": True}}}))
    config = load_config(path)
    con = warehouse.connect()
    ingest.load_exports(con, folder, config.ingest)
    build.build(con, config.analysis)
    yield con, config
    con.close()


def test_a_purchase_log_gives_one_engagement_per_purchase_day(purchases):
    con, _ = purchases
    rows = con.execute("SELECT account_id, engagement_no, round(gap_days, 6), end_kind, "
                       "n_deals_won FROM engagements ORDER BY ALL").fetchall()
    assert rows == [("C1", 1, None, "instant", 1), ("C1", 2, 30.0, "instant", 2),
                    ("C1", 3, 60.0, "instant", 1), ("C2", 1, None, "instant", 1),
                    ("C3", 1, None, "instant", 1), ("C3", 2, 40.0, "instant", 1)]


def test_re_engagement_is_measured_on_a_purchase_log(purchases):
    con, _ = purchases
    # All three first engagements ended (instantly); C1 and C3 came back.
    rate = con.execute("SELECT re_engagement_rate, re_engaged_accounts, "
                       "first_engagement_ended FROM journey_kpis").fetchall()[0]
    assert rate == (pytest.approx(2 / 3), 2, 3)
    tables = reengagement.analyse_reengagement(con)
    assert int(tables["reengagement_summary"].query("segment_type == 'all'").returned.iloc[0]) \
        == 3  # C1 returned twice, C3 once


def test_generated_purchase_gaps_are_recovered_exactly(tmp_path):
    rng = np.random.default_rng(11)
    purchases = {}
    for i in range(60):
        days = np.cumsum(rng.integers(1, 120, size=int(rng.integers(1, 6)))).tolist()
        purchases[f"K{i:03d}"] = [float(d) for d in days]
    folder = purchase_log(tmp_path / "in", purchases)
    path = tmp_path / "journey.yml"
    path.write_text(yaml.safe_dump({"analysis": {
        "stage_map": "stage_map.yml", "churn_kind": "non_contractual",
        "engagements": {"start": ["purchase"], "instant": True}}}))
    config = load_config(path)
    con = warehouse.connect()
    ingest.load_exports(con, folder, config.ingest)
    build.build(con, config.analysis)
    got = con.execute("SELECT account_id, list(round(gap_days, 6) ORDER BY engagement_no) "
                      "FROM engagements GROUP BY 1").fetchall()
    expected = {a: [None] + [b - a_ for a_, b in zip(d, d[1:], strict=False)]
                for a, d in purchases.items()}
    assert dict(got) == expected


def test_non_contractual_churn_scores_every_customer(purchases):
    con, _ = purchases
    run = churn.score_churn(con, horizon_days=180)
    assert run.run["churn_kind"] == "non_contractual"
    assert sorted(run.scores.account_id) == ["C1", "C2", "C3"]
    # too little history to train: no probability and no band (a constant would read as
    # a score: issue 26, "every client gets 0.0 %"), the signals seen instead
    assert run.run["status"] == "fallback"
    assert run.scores.churn_probability.isna().all()
    assert run.scores.risk_band.isna().all()
    # the signals in purchase words, by hand: C1 bought on days 0, 30 (twice) and 90 of
    # 2024, so 275 days before 31 Dec and every 45 days; C2 once on day 10
    assert dict(zip(run.scores.account_id, run.scores.top_factors, strict=True)) == {
        "C1": "no purchase for 275 days; 3 purchases, one every 45 days",
        "C2": "no purchase for 355 days; 1 purchase",
        "C3": "no purchase for 320 days; 2 purchases, one every 40 days"}
    assert run.run["reason"].startswith("too little purchase history: 2 customers bought "
                                        "more than once (BG/NBD needs 30)")


def test_a_zero_probability_is_never_medium():
    assert churn.risk_band(0.0, 0.0) == "low"
    assert churn.risk_band(0.0, 0.2) == "low"
    assert churn.risk_band(0.3, 0.2) == "medium"


def loaded_crm_log(folder, *activities: str):
    """One account A1 with CRM activities given as 'id,occurred_at,activity_type'."""
    write_csv(folder, "crm_accounts.csv", "account_id,name", "A1,Account One")
    write_csv(folder, "crm_activities.csv", "activity_id,occurred_at,account_id,activity_type",
              *(",".join([a.split(",")[0], a.split(",")[1], "A1", a.split(",")[2]])
                for a in activities))
    con = warehouse.connect()
    ingest.load_exports(con, folder)
    return con


def test_other_activity_names_start_and_end_engagements(tmp_path):
    con = loaded_crm_log(tmp_path, "x1,2024-01-01 10:00:00,A_SUBMITTED",
                         "x2,2024-01-05 10:00:00,A_APPROVED", "x3,2024-03-01 10:00:00,A_PAID_OFF",
                         "x4,2024-06-01 10:00:00,A_APPROVED",
                         "x5,2024-07-01 10:00:00,A_DEFAULTED")
    rules = EngagementRules(start=["A_APPROVED"], end=["A_PAID_OFF"], cancel=["A Defaulted"])
    build.build(con, AnalysisParams(engagements=rules))
    rows = con.execute("SELECT engagement_no, ended_by, end_kind, round(gap_days) "
                       "FROM engagements ORDER BY 1").fetchall()
    assert rows == [(1, "a_paid_off", "completed", None), (2, "a_defaulted", "cancelled", 92.0)]


def test_an_engagement_ends_after_inactivity(tmp_path):
    con = loaded_crm_log(tmp_path, "a1,2024-01-01 10:00:00,deal_won",
                         "a2,2024-01-11 10:00:00,support_ticket",
                         "a3,2024-01-21 10:00:00,support_ticket",
                         "a4,2024-06-01 10:00:00,deal_won", "a5,2024-06-15 10:00:00,meeting")
    build.build(con, AnalysisParams(engagements=EngagementRules(inactivity_days=60)),
                    as_of=dt.datetime(2024, 7, 1))
    rows = con.execute("SELECT engagement_no, ended_at::VARCHAR, end_kind FROM engagements "
                       "ORDER BY 1").fetchall()
    # engagement 2's last touchpoint (June 15) is only 16 days before the as-of: open
    assert rows == [(1, "2024-01-21 10:00:00", "inactive"), (2, None, None)]


def test_one_activity_in_two_roles_is_a_config_error(tmp_path):
    path = tmp_path / "journey.yml"
    path.write_text(yaml.safe_dump({"analysis": {"engagements": {
        "start": ["deal_won"], "end": ["Deal Won"]}}}))
    with pytest.raises(ConfigError, match=r"\['deal_won'\] is both an engagement end and start"):
        load_config(path)


def bgnbd_purchase_days(n: int, seed: int, params=(0.5, 6.0, 1.2, 3.0),
                        weeks: float = 78.0) -> dict[str, list[float]]:
    """A purchase log from a BG/NBD world (parameters other than the paper's): customers
    join over the first 12 weeks and buy until they drop out, for `weeks` weeks."""
    import numpy as np

    r, alpha, a, b = params
    rng = np.random.default_rng(seed)
    log = {}
    for i in range(n):
        lam, p = rng.gamma(r, 1 / alpha), rng.beta(a, b)
        t = rng.uniform(0, 12)
        days = [t * 7]
        while True:
            t += rng.exponential(1 / lam)
            if t > weeks:
                break
            days.append(t * 7)
            if rng.random() < p:
                break
        log[f"C{i:04d}"] = days
    return log


def test_a_purchase_log_gets_bgnbd_through_journey_run(tmp_path):
    """The classic split (history, then a horizon as long as it) on a purchase log: the
    discriminative model has no cancellation to learn from, BG/NBD ranks and calibrates,
    and every scored customer has a reason in words."""
    import subprocess
    import sys
    from pathlib import Path

    import duckdb

    folder = purchase_log(tmp_path / "in", bgnbd_purchase_days(800, seed=77))
    (tmp_path / "journey.yml").write_text(yaml.safe_dump({"analysis": {
        "stage_map": str(tmp_path / "stage_map.yml"), "churn_kind": "non_contractual",
        "churn_horizon_days": 273, "engagements": {"start": ["purchase"], "instant": True}}}))
    journey = str(Path(sys.executable).parent / "journey")
    run = subprocess.run([journey, "run", "--input", str(folder), "--config",
                          str(tmp_path / "journey.yml"), "--warehouse", str(tmp_path / "w.duckdb"),
                          "--outputs", str(tmp_path / "o"), "--reports", str(tmp_path / "r"),
                          "--no-static-images"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=600, env=user_env(tmp_path / ".prefect", shared_api=True))
    assert run.returncode == 0, run.stderr[-3000:]
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    runs = con.sql("SELECT * FROM model_runs").df().iloc[-1]
    assert runs.status == "trained" and runs.model == "bg_nbd"
    assert runs.bgnbd_roc_auc > 0.7 and runs.roc_auc > runs.recency_roc_auc
    scores = con.sql("SELECT * FROM churn_scores").df()
    assert len(scores) and scores.churn_probability.between(0, 1).all()
    assert scores.churn_probability.nunique() > 10  # a ranking, not one constant
    assert not scores.top_factors.str.contains("no strong risk signal").any()
    assert scores.top_factors.str.contains("usually buys every|one purchase only").all()
    assert "customers bought again)" in run.stdout  # purchase words, not engagements
    assert "Churn risk (BG/NBD, next 273 days): " in run.stdout  # the summary says it too
    report = next((tmp_path / "r").rglob("index.html")).read_text()
    assert "How often do customers buy again?" in report
    assert "customers are scored" in report and "BG/NBD, a model of repeat buying" in report
    assert "clients now are scored" not in report
    assert "first engagement ended started another" not in report
    assert "days since the last purchase" in report  # the re-purchase curve's axis
    # a purchase log is no broken journey: every data test passes on it
    assert con.execute("SELECT model, \"check\" FROM data_test_results "
                       "WHERE NOT passed").fetchall() == []


def test_a_log_of_purchases_only_gets_reasons_in_purchase_words(purchases):
    """Where every touchpoint is a purchase, "no touchpoint for 40 days" is "no purchase
    for 40 days" (a new user's 1,496 reasons said "touchpoint" and "sales contacts")."""
    from journey_mining.sql_models import read_sql

    con, _ = purchases
    assert con.execute(read_sql("analysis/purchases_only")).fetchall() == [(True,)]
    words = churn.ChurnModel(purchase_words="only purchases")
    assert words._text("days_since_last_touch", 40) == "no purchase for 40 days"
    assert words._text("deals_won", 3) == "3 purchases"
    assert churn.ChurnModel(purchase_words="purchases")._text(
        "days_since_last_touch", 40) == "no touchpoint for 40 days"  # other touchpoints too
    con.execute("UPDATE engagement_rules SET activity = 'order' WHERE role = 'start'")
    assert con.execute(read_sql("analysis/purchases_only")).fetchall() == [(False,)]
