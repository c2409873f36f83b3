"""Pseudonymisation at ingest: emails and visitor ids replaced by keyed hashes before
anything is stored.

Intuition
---------
A keyed hash (SHA-256 of key + value, 16 hex digits) keeps what the analysis needs
(the same person hashes the same in every source and every load, so stitching
works; an email keeps its domain, which account matching needs) and drops what it
does not (who the person is). The hard part is text: a link, a referrer or a CRM
note carries emails and visitor ids in many spellings. `Pseudonymiser.scrub`
finds

* emails in every spelling a URL, a form or an HTML page gives them: plain,
  URL-encoded (`john.smith%2Bnews%40acme.com`), double-encoded (`%2540`), as an
  HTML entity (`&#64;`), with non-ASCII or apostrophes in the local part;
* visitor ids of this load and of earlier ones, in any letter case (an id written
  upper-case in its column may be lower-case in a URL), wherever they appear:
  another visitor's id in a referrer, an id in CRM properties. Earlier loads' ids
  are known only by keyed hashes: each load stores, per visitor id, the keyed hash
  of its lower-case form beside its pseudonym (`visitor_digests`), so a token of a
  later load is recognised by hashing it the same way.

Ids shorter than `MIN_EMBEDDED_ID` are not searched for inside text (a two-letter id
would otherwise rewrite every URL holding those letters); in their own column every
id is hashed.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import re
from collections.abc import Iterable
from urllib.parse import unquote

import duckdb
import pyarrow as pa

__all__ = ["MIN_EMBEDDED_ID", "PSEUDONYMISED", "Pseudonymiser", "pseudonymise_value"]

PSEUDONYMISED = ("anonymous_id",)  # besides every email column
MIN_EMBEDDED_ID = 6

_LOCAL = r"(?:[A-Za-z0-9._+'-]|%[0-9A-Fa-f]{2}|[^\x00-\x7F])+"
_AT = r"(?:@|%40|%2540|&#0*64;|&#[xX]0*40;)"
_DOMAIN = r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
EMAIL_IN_TEXT = re.compile(_LOCAL + _AT + _DOMAIN)
_MAY_HOLD_EMAIL = re.compile(r"@|%40|%2540|&#", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9_.:-]+")
_TIMESTAMP_TOKEN = re.compile(
    r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*([Zz]|[+-]\d{2}:?\d{2})?")
# One pass over a JSON text: a string (a key when a colon follows) or a bare value.
_JSON_PART = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:)?|(?<=:)(\s*)([^\s,"{}\[\]:]+)')


def pseudonymise_value(value: str, key: str, is_email: bool) -> str:
    """The keyed hash ingest stores for an email or visitor id (same as the SQL macros)."""
    if is_email:
        value = value.lower()
        digest = hashlib.sha256((key + value).encode()).hexdigest()[:16]
        return f"p_{digest}@{value.rsplit('@', 1)[-1]}"
    return "p_" + hashlib.sha256((key + value).encode()).hexdigest()[:16]


def _plain_email(text: str) -> str:
    """An email as found in text, decoded: URL-encoding (once or twice), HTML entities."""
    for _ in range(3):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return html.unescape(text).strip().lower()


class Pseudonymiser:
    """The keyed hashes of one load: values, and emails and visitor ids inside text.

    `visitors`: the raw visitor ids of the load's web events; `digests`: lower-case
    digest -> pseudonym of the ids earlier loads stored (`visitor_digests`); `stored`:
    the pseudonyms earlier loads stored (ids loaded before digests were kept: a token
    is recognised in the letter case it was stored in).
    """

    def __init__(self, key: str, visitors: Iterable[str] = (), stored: Iterable[str] = (),
                 digests: dict[str, str] | None = None):
        self.key = key
        self._visitors = {v.lower(): self.value(v, False) for v in visitors
                          if v and len(v) >= MIN_EMBEDDED_ID}
        self._digests = dict(digests or {})
        self._stored = set(stored)

    def digest(self, token: str) -> str:
        """The keyed hash of a token's lower-case form (how `visitor_digests` knows ids)."""
        return "d_" + hashlib.sha256((self.key + "\0" + token.lower()).encode()).hexdigest()[:24]

    def new_digests(self) -> list[tuple[str, str]]:
        """(digest, pseudonym) of this load's visitor ids, for `visitor_digests`."""
        return [(self.digest(lowered), pseudonym)
                for lowered, pseudonym in self._visitors.items()]

    def value(self, value: str, is_email: bool) -> str:
        """The pseudonym of one email or visitor id (`pseudonymise_value` with the key)."""
        return pseudonymise_value(value, self.key, is_email)

    def _id(self, token: str) -> str | None:
        if len(token) < MIN_EMBEDDED_ID:
            return None
        found = self._visitors.get(token.lower())
        if found is None and self._digests:
            found = self._digests.get(self.digest(token))
        if found is None and self._stored:
            hashed = self.value(token, False)
            found = hashed if hashed in self._stored else None
        return found

    def _token(self, token: str) -> str:
        whole = self._id(token)
        if whole is not None:
            return whole
        parts = re.split(r"([.:])", token)
        if len(parts) == 1:
            return token
        return "".join(p if p in ".:" else (self._id(p) or p) for p in parts)

    def scrub(self, text: str | None) -> str | None:
        """The text with every email and known visitor id in it replaced by its pseudonym."""
        if not text:
            return text
        if _MAY_HOLD_EMAIL.search(text):
            text = EMAIL_IN_TEXT.sub(lambda m: self.value(_plain_email(m.group(0)), True), text)
        if self._visitors or self._digests or self._stored:
            text = _TOKEN.sub(lambda m: self._token(m.group(0)), text)
        return text

    def unsplit(self, raw: str | None, fmt: str) -> str | None:
        """A row the reader could not split, with every value replaced by its pseudonym.

        Nobody can tell which field of a broken row is an email or a visitor id, so
        every value is hashed with the key (the same hash as in the loaded rows, so an
        analyst with the key can still match it), except timestamps, booleans and
        nulls; the row keeps its shape: delimiters, JSON keys and punctuation.
        """
        if raw is None:
            return None

        def hashed(token: str) -> str:
            value = token.strip().strip('"').strip()
            if (not value or _TIMESTAMP_TOKEN.fullmatch(value)
                    or value in ("true", "false", "null")):
                return token
            if EMAIL_IN_TEXT.fullmatch(value):
                return self.value(_plain_email(value), True)
            return self.value(value, False)

        if fmt.startswith(".jsonl"):
            def part(m: re.Match) -> str:
                if m.group(1) is not None:
                    return m.group(0) if m.group(2) else f'"{hashed(m.group(1))}"'
                return m.group(3) + hashed(m.group(4))
            return _JSON_PART.sub(part, raw)
        return "".join(piece if re.fullmatch(r"[,;\t|]", piece) else hashed(piece)
                       for piece in re.split(r"([,;\t|])", raw))

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """SQL for the load: `_pseudo_id(v, $key)`, `_pseudo_email(v, $key)` (macros, the
        same hashes as `value`) and `_scrub(text)` (this object's `scrub`)."""
        con.execute("""CREATE OR REPLACE TEMP MACRO _pseudo_id(v, k) AS
            CASE WHEN v IS NULL THEN NULL ELSE 'p_' || left(sha256(k || v), 16) END""")
        # An email column spelled as in a link (ann%40acme.com, ann&#64;acme.com) is the
        # same address: decoded first, so it keeps its domain and its one pseudonym.
        con.execute("""CREATE OR REPLACE TEMP MACRO _plain_email(v) AS
            regexp_replace(lower(v), '%2540|%40|&#0*64;|&#x0*40;', '@', 'g')""")
        con.execute("""CREATE OR REPLACE TEMP MACRO _pseudo_email(v, k) AS
            CASE WHEN v IS NULL THEN NULL
                 ELSE 'p_' || left(sha256(k || _plain_email(v)), 16) || '@'
                      || regexp_extract(_plain_email(v), '@([^@]+)$', 1) END""")

        def scrub_all(texts: pa.Array) -> pa.Array:
            return pa.array([self.scrub(t) for t in texts.to_pylist()], pa.string())

        with contextlib.suppress(duckdb.Error):  # registered by the load's previous file
            con.remove_function("_scrub")
        con.create_function("_scrub", scrub_all, ["VARCHAR"], "VARCHAR", type="arrow",
                            side_effects=False)
