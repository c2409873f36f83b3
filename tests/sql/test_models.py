"""SQL models: run order, staging rules on given rows, and the declared data tests."""

from __future__ import annotations

import duckdb
import pytest

from journey_mining import build, checks, warehouse
from journey_mining.build import CONFIG_TABLES
from journey_mining.config import AnalysisParams
from journey_mining.errors import ModelError
from journey_mining.sql_models import discover_models, reads_of


def test_models_run_after_the_models_they_read():
    order = [m.name for m in discover_models()]
    assert order.index("stg_web__events") < order.index("int_touchpoints_unioned")
    assert order.index("int_touchpoints_unioned") < order.index("touchpoints")
    assert order.index("int_touchpoints_unioned") < order.index("run_parameters")


def test_every_table_a_model_reads_is_built_before_it_or_loaded():
    """The runner's graph is the SQL's own reads (comma joins and subqueries included):
    every table a model reads is a model that runs before it, a configuration table the
    build writes first, or a loaded table. A read of anything else fails here."""
    models = discover_models()
    tables = {t: i for i, m in enumerate(models) for t in m.tables}
    loaded = set(build.LOADED_TABLES)
    for i, model in enumerate(models):
        read = set(model.declared_reads) if model.sql is None else reads_of(model.sql)
        unknown = read - set(tables) - set(CONFIG_TABLES) - loaded
        assert not unknown, f"{model.path.name} reads {sorted(unknown)}, which nothing builds"
        late = {t for t in read & set(tables) if tables[t] >= i and t not in model.tables}
        assert not late, f"{model.path.name} runs before {sorted(late)}, which it reads"


def test_a_comma_join_a_subquery_and_upper_case_are_dependencies():
    assert reads_of("select * from a as x, run_parameters as p") == {"a", "run_parameters"}
    assert reads_of("SELECT O.STAGE FROM STAGE_OCCUPANCY AS O, Run_Parameters P") == {
        "stage_occupancy", "run_parameters"}
    assert reads_of("with c as (select * from b) select * from c "
                    "where x in (select x from d)") == {"b", "d"}


def insert(con, table, **columns):
    """Insert one loaded row with the bookkeeping columns filled in."""
    names = list(columns) + ["_load_id", "_file", "_row_number", "_row_hash"]
    values = list(columns.values()) + [1, "given.csv", 2, "h"]
    marks = ", ".join("?" for _ in names)
    con.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", values)


@pytest.mark.parametrize(("given", "expected"), [
    ("Decider", "decider"), (" BUYER ", "buyer"), ("Champion", "other"), (None, None)])
def test_contact_role_is_a_buying_committee_role_or_other(con, given, expected):
    insert(con, "raw_crm_contacts", contact_id="c1", account_id="a1", role=given)
    build.build(con, AnalysisParams())
    assert con.execute("SELECT role FROM stg_crm__contacts").fetchall() == [(expected,)]


@pytest.mark.parametrize(("given", "expected"), [
    ("acme.com", "acme.com"), ("https://www.Acme.com/about", "acme.com"),
    ("WWW.ACME.CO.UK", "acme.co.uk"), ("", None)])
def test_account_domain_is_normalised_for_matching(con, given, expected):
    insert(con, "raw_crm_accounts", account_id="a1", name="Acme", domain=given)
    build.build(con, AnalysisParams())
    assert con.execute("SELECT domain FROM stg_crm__accounts").fetchall() == [(expected,)]


@pytest.mark.parametrize(("given", "expected"), [
    ("Deal Won", "deal_won"), ("deal-won", "deal_won"), (" meeting ", "meeting")])
def test_activity_names_are_normalised(con, given, expected):
    import datetime as dt

    insert(con, "raw_crm_activities", activity_id="x1", occurred_at=dt.datetime(2025, 1, 1),
           account_id="a1", activity_type=given)
    build.build(con, AnalysisParams())
    assert con.execute("SELECT activity FROM touchpoints").fetchall() == [(expected,)]


def test_as_of_defaults_to_the_latest_touchpoint(con):
    import datetime as dt

    for i, day in enumerate((3, 9, 5)):
        insert(con, "raw_web_events", event_id=f"w{i}", occurred_at=dt.datetime(2025, 1, day),
               anonymous_id="a", event_name="page_view")
    build.build(con, AnalysisParams())
    assert con.execute("SELECT as_of FROM run_parameters").fetchall() == [
        (dt.datetime(2025, 1, 9),)]
    build.build(con, AnalysisParams(), as_of=dt.datetime(2025, 1, 4))
    assert con.execute("SELECT as_of FROM run_parameters").fetchall() == [
        (dt.datetime(2025, 1, 4),)]


def test_every_declared_data_test_passes_on_the_sample(sample_con):
    failures = [r for r in checks.run_checks(sample_con) if not r.passed]
    assert failures == []


def test_a_broken_invariant_is_reported(con):
    import datetime as dt

    insert(con, "raw_web_events", event_id="w1", occurred_at=dt.datetime(2025, 1, 1),
           anonymous_id="a", event_name="page_view")
    build.build(con, AnalysisParams())
    con.execute("INSERT INTO stage_funnel SELECT * FROM stage_funnel")  # break uniqueness
    results = checks.run_checks(con)
    failed = {(r.model, r.check) for r in results if not r.passed}
    assert ("stage_funnel", "unique(stage)") in failed
    # tests whose subqueries now meet two rows cannot run: failed, with the reason
    assert [r for r in results if r.error and r.failing_rows == -1 and not r.passed]


def test_sums_of_stored_small_counts_are_right_under_order_by(tmp_path):
    """DuckDB 2.0 narrowed sum() to the stored column's statistics before an ORDER BY
    (33,667 read back as -31,869): the data-quality gate and artifacts sum per-file counts."""
    path = tmp_path / "w.duckdb"
    con = warehouse.connect(path)
    con.execute("CREATE TABLE loads (load_id BIGINT)")
    con.execute("INSERT INTO loads VALUES (1)")
    con.execute("CREATE TABLE files (load_id BIGINT, source VARCHAR, rows_read BIGINT, "
                "rows_rejected BIGINT)")
    con.execute("INSERT INTO files SELECT 1, 'email', 3000 + i, 1 FROM range(11) t(i)")
    con.execute("INSERT INTO files VALUES (1, 'crm', 12, 0)")
    con.close()
    con = warehouse.connect(path, read_only=True)
    rows = con.execute("""SELECT source, sum(rows_read), sum(rows_rejected) FROM files
                          WHERE load_id = (SELECT max(load_id) FROM loads)
                          GROUP BY source ORDER BY source""").fetchall()
    con.close()
    assert rows == [("crm", 12, 0), ("email", 33_055, 11)]


def test_a_relationship_test_counts_each_orphan_row_once():
    """Orphans are counted per row of the model; NULLs are not orphans; a key repeated in
    the target does not count a row twice."""
    con = duckdb.connect()
    con.execute("CREATE TABLE m AS SELECT * FROM (VALUES ('a'), ('b'), (NULL), ('b'), ('c')) v(k)")
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES ('a'), ('a'), ('c')) v(key)")
    (name, query), = checks._queries("m", {"relationships": {"k": "t.key"}})
    assert name == "relationships(k -> t.key)"
    assert con.execute(query).fetchall() == [(2,)]


def test_a_build_that_fails_in_the_stage_inference_changes_nothing(tmp_path, monkeypatch):
    """The stage states are built in the same transaction as the models: a failure in the
    inference (a Python model) leaves every table of the previous build as it was."""
    from journey_mining import stage_inference
    from tests.journeys_fixture import AS_OF, built_journeys

    con = built_journeys(tmp_path)
    before = {t: con.execute(f"SELECT count(*), max(as_of) FROM run_parameters, {t}"
                             ).fetchall() for t in ("account_journeys", "account_stage_history",
                                                    "stage_funnel")}

    def broken(*_):
        raise RuntimeError("inference broke")

    monkeypatch.setitem(stage_inference.METHODS, "evidence", broken)
    with pytest.raises(ModelError, match="int_inferred_stays.*inference broke"):
        build.build(con, AnalysisParams(), as_of=AS_OF.replace(year=AS_OF.year - 1))
    after = {t: con.execute(f"SELECT count(*), max(as_of) FROM run_parameters, {t}"
                            ).fetchall() for t in before}
    assert after == before


def _models_with(tmp_path, name: str, sql: str):
    """The repository's models plus one more mart, in a copy of sql/."""
    import shutil

    from journey_mining.sql_models import SQL_DIR

    copy = tmp_path / "sql"
    shutil.copytree(SQL_DIR, copy)
    (copy / "marts" / f"{name}.sql").write_text(sql)
    return discover_models(copy)


def test_an_upper_case_model_runs_after_what_it_reads(tmp_path):
    order = [m.name for m in _models_with(
        tmp_path, "upper_metric", "SELECT O.STAGE, P.AS_OF FROM STAGE_OCCUPANCY AS O, "
                                  "RUN_PARAMETERS AS P")]
    assert order.index("upper_metric") > order.index("stage_occupancy")
    assert order.index("upper_metric") > order.index("run_parameters")


def test_a_model_reading_a_later_steps_table_is_refused_in_one_sentence(tmp_path):
    from journey_mining.sql_models import unknown_reads

    models = _models_with(tmp_path, "scored", "select count(*) as n from churn_scores")
    assert unknown_reads(models, {*CONFIG_TABLES, *build.LOADED_TABLES}) == [
        "marts/scored.sql reads churn_scores, which no model builds before it (a table of a "
        "later step, or a typo)"]


def test_a_model_that_does_not_parse_names_its_file(tmp_path):
    with pytest.raises(ModelError, match=r"^marts/broken\.sql does not parse: "):
        _models_with(tmp_path, "broken", "select count(* as n from account_journeys")
