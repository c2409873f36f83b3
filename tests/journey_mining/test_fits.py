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
               data_as_of=dt.datetime(2025, 7, 6, 23, 0), fingerprint="f1")


@pytest.mark.parametrize(("last", "fingerprint", "as_of", "now", "asked", "present", "says"), [
    (FIT, "f1", dt.datetime(2025, 7, 9, 23), NOW, None, True, None),  # 3 days: it stands
    (None, "f1", dt.datetime(2025, 7, 9, 23), NOW, None, True, "no fit yet"),
    (FIT, "f2", dt.datetime(2025, 7, 9, 23), NOW, None, True, "settings or the code changed"),
    (FIT, "f1", dt.datetime(2025, 7, 13, 23), NOW, None, True, "7 days old"),  # data moved
    (FIT, "f1", dt.datetime(2025, 7, 9, 23), dt.datetime(2025, 7, 15, 6), None, True,
     "8 days old"),  # the clock moved, the data did not (a pinned as-of, late rows)
    (FIT, "f1", dt.datetime(2025, 7, 1), NOW, None, True, "before the last fit's data"),
    (FIT, "f1", dt.datetime(2025, 7, 9, 23), NOW, None, False, "tables of the last fit"),
    (FIT, "f1", dt.datetime(2025, 7, 9, 23), NOW, "asked for (--refit)", True, "--refit"),
])
def test_a_fit_stands_until_it_is_due_or_anything_but_the_data_changed(
        last, fingerprint, as_of, now, asked, present, says):
    reason = fits.refit_reason(last, fingerprint, as_of, 7, now, asked, present)
    assert (reason is None) if says is None else (says in reason), reason


def test_every_day_zero_fits_every_run():
    assert fits.refit_reason(FIT, "f1", FIT.data_as_of, 0, FIT.fitted_at) is not None


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
                   {"scorer": fitted.scorer, "run": fitted.run})
    kept = fits.last_fit(con, "churn")
    assert kept.data_as_of == fitted.run["as_of"]
    again = churn.rescore_churn(sample_con, kept.payload["scorer"], kept.payload["run"])
    pd.testing.assert_frame_equal(again.scores, fitted.scores)
    assert again.run["fitted_at"] == fitted.run["fitted_at"]
    assert again.run["roc_auc"] == fitted.run["roc_auc"]


def test_a_kept_fallback_lists_todays_clients_with_their_signals(tmp_path):
    con = built_journeys(tmp_path)
    fitted = churn.score_churn(con)
    assert fitted.run["status"] == "fallback"
    again = churn.rescore_churn(con, fitted.scorer, fitted.run)
    pd.testing.assert_frame_equal(again.scores, fitted.scores)


def test_a_fit_this_version_cannot_read_is_fitted_again(tmp_path):
    con = warehouse.connect(tmp_path / "w.duckdb")
    fits.store_fit(con, "churn", FIT.data_as_of, "f", {"scorer": 1})
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
