"""Stage numbers are never written into a model or a query: they come from stage_ladder
(its `phase` says prospect or client), so the ladder is defined in one place."""

from __future__ import annotations

import re

from tests.conftest import REPO

LITERAL = re.compile(r"stage_order\s*(?:>=|<=|<>|!=|=|<|>|between)\s*\d", re.I)


def test_no_model_or_query_compares_a_stage_number():
    files = [*(REPO / "sql").rglob("*.sql"), *(REPO / "sql").rglob("*.yml"),
             *(REPO / "journey_mining").rglob("*.py")]
    found = [f"{p.relative_to(REPO)}:{i}: {line.strip()}" for p in files
             for i, line in enumerate(p.read_text().splitlines(), 1) if LITERAL.search(line)]
    assert found == []
