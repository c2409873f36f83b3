"""Timestamps to UTC: the zones a value may name, and the SQL macros that read them.

Exports write times every way: with an offset, with a zone abbreviation or name,
with AM/PM, or bare. The zone written in a value wins; only a bare value is read in
the source's configured zone. A value whose zone is unknown or ambiguous becomes
NULL, so that normalising can reject its row with the reason rather than guess.
"""

from __future__ import annotations

__all__ = ["ZONE_ABBREVIATIONS"]

# What follows the time of day of a timestamp, when it is a zone (a name, an
# abbreviation, GMT+2, or a bare +2 that is then refused) rather than an offset.
_ZONE_AFTER_TIME = (r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*"
                    r"([A-Za-z][A-Za-z0-9_/+:.-]*|[+-]\d{1,2})$")
# A timestamp carries its own offset when a time of day is followed by Z or +hh[:mm].
_OFFSET_PATTERN = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)$"

# Zone abbreviations a timestamp may end with, as the fixed offsets they stand for
# (PostgreSQL's default set). None: the abbreviation names several zones (IST: India,
# Ireland, Israel) and such a row is rejected rather than guessed. A zone name
# (America/New_York) is read by DuckDB's ICU time zones, daylight saving included.
ZONE_ABBREVIATIONS: dict[str, str | None] = {
    "UTC": "+00:00", "UT": "+00:00", "GMT": "+00:00", "WET": "+00:00", "WEST": "+01:00",
    "BST": "+01:00", "CET": "+01:00", "CEST": "+02:00", "MET": "+01:00", "MEST": "+02:00",
    "EET": "+02:00", "EEST": "+03:00", "MSK": "+03:00",
    "NST": "-03:30", "NDT": "-02:30", "AST": "-04:00", "ADT": "-03:00",
    "EST": "-05:00", "EDT": "-04:00", "CST": "-06:00", "CDT": "-05:00", "MST": "-07:00",
    "MDT": "-06:00", "PST": "-08:00", "PDT": "-07:00", "AKST": "-09:00", "AKDT": "-08:00",
    "HST": "-10:00",
    "HKT": "+08:00", "SGT": "+08:00", "AWST": "+08:00", "JST": "+09:00", "KST": "+09:00",
    "ACST": "+09:30", "ACDT": "+10:30", "AEST": "+10:00", "AEDT": "+11:00",
    "NZST": "+12:00", "NZDT": "+13:00",
    "IST": None,
}


def _create_timestamp_macros(con) -> None:
    """SQL macros that turn a timestamp's text into UTC.

    The zone written in the value wins over the configured one: an offset (+02:00, Z),
    an abbreviation (EST, from ZONE_ABBREVIATIONS) or a zone name (Europe/Berlin).
    Only a value with none of these is read in the source's configured zone. A value
    whose zone is unknown or ambiguous becomes NULL (the row is rejected with why).
    """
    # The zone of a value: what follows its time of day (UTC, EST, Europe/Berlin,
    # Etc/GMT+2, GMT+2, UTC-05:00, EST5EDT, +2), unless that is an offset DuckDB reads as
    # such (+02:00, +0200, Z). AM/PM comes back as the zone too and is read as 12-hour.
    con.execute(rf"""CREATE OR REPLACE TEMP MACRO _zone_of(t) AS
        CASE WHEN NOT regexp_matches(t, '{_OFFSET_PATTERN}')
             THEN nullif(regexp_extract(t, '{_ZONE_AFTER_TIME}', 1), '')
        END""")
    con.execute(f"""CREATE OR REPLACE TEMP MACRO _utc_timestamp(t, zone, zones, tz) AS
        CASE WHEN t IS NULL THEN NULL
             WHEN upper(replace(zone, '.', '')) IN ('AM', 'PM') THEN
                 timezone('UTC', timezone(tz, try_strptime(
                     upper(regexp_replace(t, '(?i)\\s*([ap])\\.?m\\.?$', ' \\1M')),
                     ['%Y-%m-%d %I:%M:%S %p', '%Y-%m-%d %I:%M %p', '%Y-%m-%dT%I:%M:%S %p',
                      '%Y-%m-%d %I:%M:%S.%f %p'])))
             WHEN zone IS NOT NULL THEN
                 CASE WHEN zones[upper(zone)] = '?' THEN NULL
                      WHEN zones[upper(zone)] IS NOT NULL
                          THEN timezone('UTC', try_cast(
                              rtrim(left(t, length(t) - length(zone))) || zones[upper(zone)]
                              AS TIMESTAMPTZ))
                      ELSE timezone('UTC', try_cast(t AS TIMESTAMPTZ))
                 END
             WHEN regexp_matches(t, '{_OFFSET_PATTERN}')
                 THEN timezone('UTC', try_cast(
                     regexp_replace(t, '\\s+([+-][0-9:]+|[Zz])$', '\\1') AS TIMESTAMPTZ))
             ELSE timezone('UTC', timezone(tz, try_cast(t AS TIMESTAMP)))
        END""")


def _zone_parameters() -> dict[str, list[str]]:
    """The values bound to `$zone_names` and `$zone_offsets`: ZONE_ABBREVIATIONS as two
    lists for an SQL map, an ambiguous abbreviation's offset as '?'."""
    return {"zone_names": list(ZONE_ABBREVIATIONS),
            "zone_offsets": [o or "?" for o in ZONE_ABBREVIATIONS.values()]}


def _split_formats(formats: list[str]) -> tuple[list[str], list[str]]:
    """The configured formats as (naive, with an offset): a format with %z or %Z reads
    the value's own offset, one without reads it in the source's zone."""
    aware = [f for f in formats if "%z" in f or "%Z" in f]
    return [f for f in formats if f not in aware], aware


def _timestamp_selects(column: str, text: str, formats: list[str] = ()) -> list[str]:
    """SQL select items of a timestamp column read from `text`: the zone the value names,
    the value in UTC, and its text (the reasons below quote it). Configured formats
    (`timestamp_format`, `dayfirst`) are tried first, ISO 8601 after them."""
    naive, aware = _split_formats(list(formats))
    tries = ([f"timezone('UTC', timezone($tz, try_strptime({text}, $ts_naive)))"]
             if naive else []) + ([f"timezone('UTC', try_strptime({text}, $ts_aware))"]
                                  if aware else [])
    iso = f"_utc_timestamp({text}, _zone_{column}, map($zone_names, $zone_offsets), $tz)"
    value = f"coalesce({', '.join(tries)}, {iso})" if tries else iso
    return [f"_zone_of({text}) AS _zone_{column}", f"{value} AS {column}",
            f"{text} AS _text_{column}"]


def _timestamp_reasons(column: str, source: str = "") -> list[str]:
    """SQL reasons to reject a row for its timestamp `column` (NULL when none applies):
    a value that does not read as a time (its zone unknown or ambiguous, or no time at
    all), and a time after the load time plus the tolerance (a far-future time would
    become the as-of date and age every journey)."""
    return [
        f"""CASE WHEN _text_{column} IS NOT NULL AND {column} IS NULL THEN
                    CASE WHEN _zone_{column} IS NULL
                              OR upper(replace(_zone_{column}, '.', '')) IN ('AM', 'PM')
                             THEN 'unparseable timestamp in {column}: ' || _text_{column}
                                  || ' (set ingest.sources.{source}.timestamp_format to '
                                  || 'its strptime format, or dayfirst)'
                         WHEN map($zone_names, $zone_offsets)[upper(_zone_{column})] = '?'
                             THEN 'ambiguous time zone ' || _zone_{column} || ' in {column}: '
                                  || _text_{column} || ' (it names several zones: write an '
                                  || 'offset like +05:30 or a zone name like Asia/Kolkata)'
                         ELSE 'unknown time zone ' || _zone_{column} || ' in {column}: '
                              || _text_{column} || ' (write an offset like -05:00 or a zone '
                              || 'name like America/New_York)'
                    END END""",
        f"""CASE WHEN {column} > $not_after
                    THEN 'timestamp in the future: {column} ' || strftime({column},
                         '%Y-%m-%d %H:%M:%S') || ' is after the load time '
                         || strftime($now, '%Y-%m-%d %H:%M:%S') || ' UTC plus '
                         || $tolerance || ' hours (ingest.future_tolerance_hours)' END""",
    ]


# Formats tried on the values of a file whose timestamps mostly fail, to say in the error
# which setting would read them (never applied without the user setting it).
_OTHER_FORMATS = ("%d %b %Y %H:%M", "%d %b %Y %H:%M:%S", "%b %d, %Y %I:%M %p",
                  "%b %d, %Y %H:%M", "%b %d %Y %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
                  "%Y/%m/%d", "%d %B %Y", "%B %d, %Y", "%Y%m%d%H%M%S", "%Y%m%d",
                  "%m/%d/%y %I:%M %p", "%m/%d/%y %H:%M", "%d/%m/%y %H:%M", "%d.%m.%y %H:%M")


def _formats_reading(con, values: list[str], formats) -> list[str]:
    """The formats that read every one of `values`."""
    return [fmt for fmt in formats if con.execute(
        "SELECT bool_and(try_strptime(v, $f) IS NOT NULL) FROM unnest($v) t(v)",
        {"f": [fmt], "v": values}).fetchall()[0][0]]


def _format_hint(con, source: str, values: list[str]) -> str:
    """Which setting would read `values`, in words for the error."""
    from journey_mining.config import numeric_date_formats

    month, day = (_formats_reading(con, values, numeric_date_formats(first))
                  for first in (False, True))
    setting = f"ingest.sources.{source}"
    if month and day:
        return (f"they read month first ('{month[0]}') and day first ('{day[0]}'): set "
                f"{setting}.dayfirst to say which")
    if month or day:
        return (f"they read with {setting}.dayfirst: {'true' if day else 'false'} "
                f"(or timestamp_format '{(day or month)[0]}')")
    other = _formats_reading(con, values, [*_OTHER_FORMATS, *(f + " %z" for f in
                                                            _OTHER_FORMATS if "%M" in f)])
    if other:
        return f"they read with {setting}.timestamp_format '{other[0]}'"
    return (f"set {setting}.timestamp_format to their strptime format (e.g. "
            "'%m/%d/%Y %I:%M %p')")


# A file is refused for its timestamps when more than half of its rows, and at least this
# many, fail to read (fewer are rejected rows, with the setting named in their reason).
MOSTLY_FAILING_ROWS = 3


def check_file_timestamps(con, stage: str, file_name: str, source: str,
                          columns: list[str]) -> None:
    """Refuse a file whose timestamps mostly fail to read: that is a setting (a date
    format), not bad rows, and rejecting them all would lose the file quietly."""
    from journey_mining.errors import TimestampFormatError

    for column in columns:
        prefix = f"unparseable timestamp in {column}: "
        total, failed, values = con.execute(
            f"""SELECT count(*), count(*) FILTER (WHERE contains(_reason, $p)),
                       list(regexp_extract(_reason, $pattern, 1)) FILTER (
                           WHERE contains(_reason, $p))[1:50]
                FROM {stage} WHERE _file = $file""",
            {"p": prefix, "file": file_name,
             "pattern": prefix + r"(.*?) \(set ingest"}).fetchall()[0]
        if failed >= MOSTLY_FAILING_ROWS and failed * 2 > total:
            raise TimestampFormatError(
                f"{file_name}: {column} does not read as a time in {failed:,} of {total:,} "
                f"rows (e.g. '{values[0]}'); {_format_hint(con, source, values)}")
