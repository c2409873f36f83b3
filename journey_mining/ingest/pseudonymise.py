"""Pseudonymisation on the way in: emails and visitor ids are hashed before they are stored.

With `ingest.pseudonymise` on, no email or anonymous id reaches the warehouse in the
clear: not in its own column, not inside other text (a link with `?email=`), not in
the raw row kept for a reject. The keyed hashing itself is `journey_mining.pseudonyms`;
this module connects it to a load: it learns every visitor id the load will read
(so an id inside an earlier file's text is recognised), writes the SQL that hashes a
value, rewrites the rows the reader could not split, and stores the new visitor
digests with the load so that later loads recognise them.
"""

from __future__ import annotations

import pyarrow as pa

from journey_mining.config import IngestConfig
from journey_mining.ingest.discovery import SourceFile
from journey_mining.ingest.readers import _mapped_columns, _read
from journey_mining.ingest.scratch import _drop_scan, _quote
from journey_mining.pseudonyms import Pseudonymiser
from journey_mining.sources import SOURCES

# The package's own modules share private helpers; the names for users are these.
__all__: list[str] = []


def _pseudonym(text: str, is_email: bool) -> str:
    """SQL for a keyed hash of a value; an email keeps its domain, which stitching needs."""
    return f"_pseudo_email({text}, $key)" if is_email else f"_pseudo_id({text}, $key)"


def _load_pseudonymiser(con, key: str, files: list[SourceFile], config: IngestConfig
                        ) -> Pseudonymiser:
    """The keyed hashes of a load, knowing every visitor id it will read.

    A referrer or a CRM note may carry the id of a visitor whose own rows come in a
    later file, so the web exports' visitor ids are read first (one more read of each
    web file, only when pseudonymising); ids of earlier loads are known by their
    stored pseudonyms.
    """
    spec = SOURCES["web_events"]
    visitors: set[str] = set()
    for f in (f for f in files if f.source == spec.name):
        try:
            columns = _read(con, f, config, [])
            column = _mapped_columns(spec, columns, config.source(spec.name).columns).get(
                "anonymous_id")
            if column:
                visitors.update(v for (v,) in con.execute(
                    f"SELECT DISTINCT trim({_quote(column)}) FROM _scan").fetchall() if v)
        finally:
            _drop_scan(con)
    stored = [v for (v,) in con.execute(
        "SELECT DISTINCT anonymous_id FROM raw_web_events").fetchall()]
    digests = dict(con.execute("SELECT digest, any_value(pseudonym) FROM visitor_digests "
                               "GROUP BY digest").fetchall())
    return Pseudonymiser(key, visitors, stored, digests)


def _pseudonymise_broken(con, pseudonyms: Pseudonymiser, fmt: str) -> None:
    """Replace the raw text of unsplittable rows by its pseudonymised form (few rows)."""
    rows = con.execute("SELECT _row_number, reason, raw FROM _broken").fetchall()
    con.execute("DELETE FROM _broken")
    con.executemany("INSERT INTO _broken VALUES (?, ?, ?)",
                    [(n, reason, pseudonyms.unsplit(raw, fmt)) for n, reason, raw in rows])


def _store_visitor_digests(con, pseudonyms: Pseudonymiser, load_id: int) -> None:
    """This load's visitor ids as digests the next loads recognise (new ones only)."""
    pairs = pseudonyms.new_digests()
    if not pairs:
        return
    digests, names = zip(*pairs, strict=True)
    con.register("_new_digests", pa.table({"digest": list(digests), "pseudonym": list(names)}))
    try:
        con.execute("""INSERT INTO visitor_digests
                       SELECT digest, pseudonym, $load_id FROM _new_digests n
                       WHERE NOT EXISTS (SELECT 1 FROM visitor_digests v
                                         WHERE v.digest = n.digest)""", {"load_id": load_id})
    finally:
        con.unregister("_new_digests")
