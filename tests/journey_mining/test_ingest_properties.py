"""Property-based ingest checks: random valid and malformed rows, nothing valid lost,
nothing invalid in, every row accounted for."""

from __future__ import annotations

import csv
import datetime as dt
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journey_mining import ingest, warehouse

SAFE_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl",
                                                                              "Zp")),
                    min_size=1, max_size=12).filter(lambda s: s.strip() != "")
INSTANTS = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2025, 12, 31)
                        ).map(lambda d: d.replace(microsecond=0))
# Later than the load time plus the default tolerance (24 h): rejected.
FUTURE = st.datetimes(min_value=dt.datetime.now() + dt.timedelta(days=3),
                      max_value=dt.datetime(2999, 1, 1)).map(lambda d: d.replace(microsecond=0))
OFFSETS = st.sampled_from([None, 0, 1, 2, -5, 5.5])
BAD_TIMES = st.sampled_from(["", "not a date", "2024-02-30 10:00:00", "31/12/2024", "12:00",
                             "2024-13-01T00:00:00Z"])


def stamp(instant: dt.datetime, offset) -> str:
    if offset is None:
        return instant.strftime("%Y-%m-%d %H:%M:%S")  # no offset: read as UTC
    local = instant + dt.timedelta(hours=offset)
    sign = "+" if offset >= 0 else "-"
    hours, minutes = int(abs(offset)), int(abs(offset) * 60) % 60
    return local.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{hours:02d}:{minutes:02d}"


@st.composite
def rows(draw):
    """Rows of a web export: (row, kind) with kind valid, or why it must be rejected."""
    out, n = [], draw(st.integers(1, 25))
    for i in range(n):
        kind = draw(st.sampled_from(["valid"] * 4 + ["no_id", "no_anonymous_id", "bad_time",
                                                     "conflict", "future"]))
        instant, offset = draw(INSTANTS), draw(OFFSETS)
        row = {"event_id": f"e{i}", "occurred_at": stamp(instant, offset),
               "anonymous_id": draw(SAFE_TEXT), "event_name": draw(SAFE_TEXT), "_utc": instant}
        if kind == "no_id":
            row["event_id"] = draw(st.sampled_from(["", "   "]))
        elif kind == "no_anonymous_id":
            row["anonymous_id"] = ""
        elif kind == "bad_time":
            row["occurred_at"] = draw(BAD_TIMES)
            if row["occurred_at"] == "":
                kind = "no_time"
        elif kind == "future":
            row["occurred_at"] = stamp(draw(FUTURE), None)
        elif kind == "conflict" and any(k == "valid" for _, k in out):
            first = next(r for r, k in out if k == "valid")
            row = {**first, "event_name": first["event_name"] + "!"}
        else:
            kind = "valid"
        out.append((row, kind))
    return out


def write(folder, generated):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["event_id", "occurred_at", "anonymous_id", "event_name"])
    for row, _ in generated:
        writer.writerow([row["event_id"], row["occurred_at"], row["anonymous_id"],
                         row["event_name"]])
    (folder / "web_events.csv").write_text(buffer.getvalue(), encoding="utf-8")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=rows())
def test_nothing_valid_is_lost_and_nothing_invalid_gets_in(tmp_path_factory, generated):
    folder = tmp_path_factory.mktemp("prop")
    write(folder, generated)
    con = warehouse.connect()
    report = ingest.load_exports(con, folder)
    loaded = {r[0]: r[1:] for r in con.execute(
        "SELECT event_id, occurred_at, anonymous_id, event_name FROM raw_web_events").fetchall()}
    valid = [r for r, k in generated if k == "valid"]
    assert loaded == {r["event_id"]: (r["_utc"], r["anonymous_id"].strip(),
                                      r["event_name"].strip()) for r in valid}
    invalid = len(generated) - len(valid)
    assert con.execute("SELECT count(*) FROM rejected_rows").fetchall()[0][0] == invalid
    assert report.rows_read == len(generated) == report.rows_loaded + report.rows_rejected
    rejected_lines = {r[0] for r in con.execute("SELECT row_number FROM rejected_rows").fetchall()}
    assert rejected_lines == {i + 2 for i, (_, k) in enumerate(generated) if k != "valid"}
