"""The heavy fits' cadence: when a fit stands and when it is redone, and that a kept fit
scores exactly like the fit it is (so skipping the fit changes nothing but time)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from journey_mining import churn, fits, warehouse
from journey_mining.config import AnalysisParams
from tests.journeys_fixture import built_journeys

NOW = dt.datetime(2025, 7, 10, 6, 0)
FIT = fits.Fit("churn", fitted_at=dt.datetime(2025, 7, 7, 6, 0),
               data_as_of=dt.datetime(2025, 7, 6, 23, 0), fingerprint="f1", history_rows=1000)


@pytest.mark.parametrize(("recorded", "now_", "says"), [
    (1000, 1000, None), (1000, 1010, None),  # nothing late, or 1 %: the fit stands
    (1000, 1011, "11 touchpoints dated by the last fit's data end"),  # late history
    (1000, 985, "15 touchpoints"),           # fewer tied (a contact moved, rows removed)
    (None, 1000, "does not say"),            # a fit recorded before it was counted
])
def test_late_history_above_the_share_fits_again(recorded, now_, says):
    last = fits.Fit("churn", FIT.fitted_at, FIT.data_as_of, "f1", history_rows=recorded)
    reason = fits.refit_reason(last, "f1", dt.datetime(2025, 7, 9, 23), 7, NOW,
                               history_now=now_, max_late_share=0.01)
    assert (reason is None) if says is None else (says in reason), reason


@pytest.mark.parametrize(("last", "fingerprint", "as_of", "now", "asked", "present", "says"), [
    (FIT, "f1", dt.datetime(2025, 7, 9, 23), NOW, None, True, None),  # 3 days: it stands
    (None, "f1", dt.datetime(2025, 7, 9, 23), NOW, None, True, "no fit yet"),
    (FIT, "f2", dt.datetime(2025, 7, 9, 23), NOW, None, True, "settings or the code changed"),
    (FIT, "f1", dt.datetime(2025, 7, 13, 23), NOW, None, True, "7 days old"),  # data moved
    (FIT, "f1", dt.datetime(2025, 7, 9, 23), dt.datetime(2025, 7, 15, 6), None, True,
     "8 days old"),  # the clock moved, the data did not (a pinned as-of, late rows)
    (FIT, "f1", dt.datetime(2025, 7, 1), NOW, None, True, "before the last fit's data"),
    (FIT, "f1", dt.datetime(2025, 7, 9, 23), NOW, None, False, "tables of the last fit"),
    (FIT, "f1", dt.datetime(2025, 7, 9, 23), NOW, "asked for with --refit", True, "--refit"),
])
def test_a_fit_stands_until_it_is_due_or_anything_but_the_data_changed(
        last, fingerprint, as_of, now, asked, present, says):
    reason = fits.refit_reason(last, fingerprint, as_of, 7, now, asked, present,
                               history_now=1000)
    assert (reason is None) if says is None else (says in reason), reason


def test_every_day_zero_fits_every_build():
    assert "every build" in fits.refit_reason(FIT, "f1", FIT.data_as_of, 0, FIT.fitted_at,
                                              history_now=1000)


def test_the_fingerprint_follows_the_analysis_settings_not_the_cadence():
    base = fits.fit_fingerprint(AnalysisParams())
    assert fits.fit_fingerprint(AnalysisParams()) == base
    assert fits.fit_fingerprint(AnalysisParams(churn_horizon_days=90)) != base


def test_a_kept_churn_fit_scores_exactly_like_the_fit_it_is(sample_con, tmp_path):
    """Stored in the warehouse and read back, the last fit gives the same scores, bands
    and reasons as the run that fitted it, on the same data."""
    fitted = churn.score_churn(sample_con)
    assert fitted.run["status"] == "trained"
    con = warehouse.connect(tmp_path / "fits.duckdb")
    fits.store_fit(con, "churn", fitted.run["as_of"], "f",
                   {"scorer": fitted.scorer, "run": fitted.run}, history=0)
    kept = fits.last_fit(con, "churn")
    assert kept.data_as_of == fitted.run["as_of"]
    again = churn.rescore_churn(sample_con, kept.payload["scorer"], kept.payload["run"])
    # The same model on the same clients: equal to the last bits but for sums DuckDB adds
    # in another order (one pass over fewer snapshot dates): 1e-12 relative.
    pd.testing.assert_frame_equal(again.scores, fitted.scores, check_exact=False, rtol=1e-12,
                                  atol=0)
    assert again.run["fitted_at"] == fitted.run["fitted_at"]
    assert again.run["roc_auc"] == fitted.run["roc_auc"]


def test_a_kept_fallback_lists_todays_clients_with_their_signals(tmp_path):
    con = built_journeys(tmp_path)
    fitted = churn.score_churn(con)
    assert fitted.run["status"] == "fallback"
    again = churn.rescore_churn(con, fitted.scorer, fitted.run)
    pd.testing.assert_frame_equal(again.scores, fitted.scores, check_exact=False, rtol=1e-12,
                                  atol=0)


def test_a_fit_this_version_cannot_read_is_fitted_again(tmp_path):
    con = warehouse.connect(tmp_path / "w.duckdb")
    fits.store_fit(con, "churn", FIT.data_as_of, "f", {"scorer": 1}, history=0)
    con.execute("UPDATE model_fits SET payload = 'not a pickle'::BLOB")
    assert fits.last_fit(con, "churn") is None


def test_a_stage_map_edited_in_place_changes_the_fingerprints(tmp_path):
    from importlib import resources

    from journey_mining import build

    stage_map = tmp_path / "stage_map.yml"
    stage_map.write_text(
        resources.files("journey_mining").joinpath("config/stage_map.yml").read_text())
    params = AnalysisParams(stage_map=str(stage_map))
    before = (fits.fit_fingerprint(params), build.settings_fingerprint(params))
    stage_map.write_text(stage_map.read_text() + "\n# moved a signal\n")
    after = (fits.fit_fingerprint(params), build.settings_fingerprint(params))
    assert before[0] != after[0] and before[1] != after[1]


def test_late_rows_dated_before_the_fit_make_the_next_build_fit_again(tmp_path):
    """The plan `journey run` walks: a late CRM export dated before the fit's data end (the
    as-of date does not move) is history the fit did not see: fitted again, not kept."""
    from journey_mining import steps
    from journey_mining.generator import GeneratorSpec, generate_exports

    folder = tmp_path / "in"
    generate_exports(folder, GeneratorSpec(n_accounts=120, seed=53, dirt=False))
    late = folder / "crm_activities_export_1.csv"
    held = late.rename(tmp_path / late.name)
    db = tmp_path / "w.duckdb"
    wanted = ["load", "check for changes", "build", "mining", "churn risk", "drivers"]
    first = steps.run_all(db, folder, steps=wanted)
    con = warehouse.connect(db, read_only=True)
    before = dict(con.execute("SELECT analysis, fitted_at FROM model_fits").fetchall())
    as_of = con.execute("SELECT as_of FROM run_parameters").fetchall()[0][0]
    con.close()
    assert first.results["churn risk"].tables
    held.rename(late)
    steps.run_all(db, folder, steps=wanted)
    con = warehouse.connect(db, read_only=True)
    after = dict(con.execute("SELECT analysis, fitted_at FROM model_fits").fetchall())
    assert con.execute("SELECT as_of FROM run_parameters").fetchall()[0][0] == as_of
    con.close()
    assert all(after[name] > before[name] for name in before)


def test_turning_an_export_back_on_is_something_new(tmp_path):
    """`outputs` is part of what a run depends on: a run after turning the OCEL export back
    on writes it, even when no file and no setting of the analysis changed."""
    from journey_mining import build
    from journey_mining.config import OutputFiles

    con = built_journeys(tmp_path)
    off = build.build_fingerprint(con, AnalysisParams(), None, OutputFiles(ocel=False))
    assert build.build_fingerprint(con, AnalysisParams(), None, OutputFiles()) != off
    assert build.build_fingerprint(con, AnalysisParams(), None, OutputFiles(ocel=False)) == off


def test_where_the_tables_are_is_part_of_a_build(tmp_path):
    """Another engine, a moved Spark folder or another URI is a build of its own (never
    "nothing new"), and a complete run records where its tables are."""
    from journey_mining import build, spark_engine

    con = built_journeys(tmp_path)
    places = [spark_engine.tables_place("duckdb", tmp_path / "w.duckdb"),
              spark_engine.tables_place("spark", tmp_path / "wh" / "journeys.duckdb"),
              spark_engine.tables_place("spark", tmp_path / "moved" / "journeys.duckdb"),
              spark_engine.tables_place("spark", "cat/journeys.duckdb", "s3a://b/lake"),
              spark_engine.tables_place("spark", "cat/journeys.duckdb", "s3a://b/lake2")]
    assert places[0] == "duckdb" and places[3] == "spark s3a://b/lake/journeys.tables"
    assert places[1] == f"spark {(tmp_path / 'wh' / 'journeys.tables').resolve()}"
    fingerprints = {build.build_fingerprint(con, AnalysisParams(), None, None, place)
                    for place in places}
    assert len(fingerprints) == len(places)
    assert build.last_build_place(con) is None  # no complete run yet
    build.record_build(con, "f", places[3])
    assert build.last_build_place(con) == places[3]
