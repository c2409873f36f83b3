"""Heavy model fits and their cadence: the churn model, the conversion drivers, the
attribution bootstraps and the representative journeys re-fit once a week (config
`fits.every_days`), not every night.

A night's new events barely move a model fitted on years of history, yet fitting is
most of what those steps cost (backtests over dozens of snapshots, hundreds of
bootstrap resamples). Between fits a run scores today's clients with the last fit and
keeps the last drivers, attribution and representatives; the report says the date of
the fit. A fit is redone when it is due by age (the data's as-of date or the clock
moved on `every_days` since it), when the history it learnt from changed (late rows
dated before its data's end, or late identities that tie old touchpoints to accounts,
above `max_late_share` of that history), when anything that decides its result other
than the data changed (the analysis settings, the SQL or the library: the
fingerprint), when the data went back before it (an earlier as-of), when its tables
are missing, and when asked (`journey run --refit`, a full reload).

The fit of a scoring model is kept as a pickle in the warehouse table `model_fits`: a
warehouse is trusted like the code that reads it (whoever can write it can already
change every number in it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pickle
from dataclasses import dataclass

import duckdb

from journey_mining.warehouse import table_exists

__all__ = ["FITS_TABLE", "Fit", "fit_fingerprint", "history_rows", "last_fit", "refit_reason",
           "store_fit"]

FITS_TABLE = "model_fits"  # (the SQL below names it: no SQL is built by formatting)


@dataclass(frozen=True)
class Fit:
    """The last fit of one analysis: when, on data up to which date, under which
    fingerprint, and what scores with it (None where the tables are the fit)."""

    analysis: str
    fitted_at: dt.datetime
    data_as_of: dt.datetime
    fingerprint: str
    payload: object | None = None
    history_rows: int | None = None  # touchpoints tied to an account up to data_as_of


def history_rows(con: duckdb.DuckDBPyConnection, as_of: dt.datetime) -> int:
    """The history a fit on data up to `as_of` learns from, as one count: touchpoints
    tied to an account that happened by then. Late rows and late identities (a form
    fill tying a visitor's old events to an account) both make it grow."""
    return con.execute("SELECT count(*) FROM touchpoints WHERE account_id IS NOT NULL "
                       "AND occurred_at <= $as_of", {"as_of": as_of}).fetchall()[0][0]


def fit_fingerprint(params, spark: bool = False) -> str:
    """What decides a fit besides the data: the analysis settings (`AnalysisParams`,
    the stage map file's content), the SQL models (with their Spark versions when the
    models run on `spark`) and the library's code, its version."""
    from journey_mining import __version__
    from journey_mining.build import code_fingerprint, settings_fingerprint

    payload = {**settings_fingerprint(params), "code": code_fingerprint(spark),
               "version": __version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def last_fit(con: duckdb.DuckDBPyConnection, analysis: str) -> Fit | None:
    """The last fit of `analysis`, or None (none yet, or one this version cannot read)."""
    if not table_exists(con, FITS_TABLE):
        return None
    counted = con.execute("SELECT count(*) > 0 FROM duckdb_columns() WHERE table_name = "
                          "'model_fits' AND column_name = 'history_rows'").fetchall()[0][0]
    rows = con.execute(  # a fit recorded before history_rows existed does not say it
        "SELECT fitted_at, data_as_of, fingerprint, payload, history_rows FROM model_fits "
        "WHERE analysis = $a" if counted else
        "SELECT fitted_at, data_as_of, fingerprint, payload, NULL FROM model_fits "
        "WHERE analysis = $a", {"a": analysis}).fetchall()
    if not rows:
        return None
    fitted_at, data_as_of, fingerprint, blob, history = rows[0]
    try:
        payload = pickle.loads(blob) if blob is not None else None  # noqa: S301 - see module
    except Exception:  # noqa: BLE001 - a fit an older version wrote: fit again
        return None
    return Fit(analysis, fitted_at, data_as_of, fingerprint, payload, history)



def refit_reason(last: Fit | None, fingerprint: str, as_of: dt.datetime, every_days: int,
                 now: dt.datetime, asked: str | None = None,
                 tables_present: bool = True, history_now: int | None = None,
                 max_late_share: float = 0.01) -> str | None:
    """Why this run fits again, in words for the log; None when the last fit stands.
    `history_now`: `history_rows` at the last fit's data_as_of in today's warehouse."""
    if asked:
        return asked
    if last is None:
        return "no fit yet"
    if not tables_present:
        return "the tables of the last fit are missing"
    if last.fingerprint != fingerprint:
        return "the analysis settings or the code changed since the last fit"
    if as_of < last.data_as_of:
        return (f"the as-of date {as_of:%Y-%m-%d} is before the last fit's data "
                f"({last.data_as_of:%Y-%m-%d})")
    if every_days == 0:
        return "fits.every_days is 0: every build fits"
    if last.history_rows is None or history_now is None:
        return "the last fit does not say how much history it learnt from"
    late = abs(history_now - last.history_rows)
    if late > max_late_share * max(last.history_rows, 1):
        return (f"{late:,} touchpoints dated by the last fit's data end "
                f"({last.data_as_of:%Y-%m-%d}) arrived or were tied to accounts since it "
                f"({late / max(last.history_rows, 1):.1%} of its history; "
                f"fits.max_late_share {max_late_share:.0%})")
    days = max((as_of - last.data_as_of).days, (now - last.fitted_at).days)
    if days >= every_days:
        return f"the last fit is {days} days old (refit every {every_days})"
    return None


def store_fit(con: duckdb.DuckDBPyConnection, analysis: str, data_as_of: dt.datetime,
              fingerprint: str, payload: object | None = None,
              now: dt.datetime | None = None, history: int | None = None) -> None:
    """Record `analysis` as fitted now on data up to `data_as_of` (replaces its last fit);
    `history`: its `history_rows` (counted here when not given)."""
    con.execute("CREATE TABLE IF NOT EXISTS model_fits (analysis VARCHAR PRIMARY KEY, "
                "fitted_at TIMESTAMP, data_as_of TIMESTAMP, fingerprint VARCHAR, payload BLOB, "
                "history_rows BIGINT)")
    con.execute("ALTER TABLE model_fits ADD COLUMN IF NOT EXISTS history_rows BIGINT")
    blob = pickle.dumps(payload) if payload is not None else None
    con.execute("INSERT OR REPLACE INTO model_fits (analysis, fitted_at, data_as_of, "
                "fingerprint, payload, history_rows) VALUES ($a, $t, $d, $f, $p, $h)",
                {"a": analysis, "t": now or dt.datetime.now(dt.UTC).replace(tzinfo=None),
                 "d": data_as_of, "f": fingerprint, "p": blob,
                 "h": history if history is not None else history_rows(con, data_as_of)})
