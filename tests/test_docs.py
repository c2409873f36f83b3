"""The docs a user reads instead of the code: the README and docs/CONTRACT.md render as
CommonMark, and what they state as the contract is what the code does."""

from __future__ import annotations

import re

import pytest
import yaml
from markdown_it import MarkdownIt

from tests.conftest import REPO

DOCS = [REPO / "README.md", REPO / "docs" / "CONTRACT.md"]


def unclosed_fences(text: str) -> list[int]:
    """1-based lines of code fences that no closing fence ends (a "``` Analysis" line
    opens a block that swallows the rest of the page on any CommonMark renderer)."""
    lines = text.splitlines()
    bad = []
    for token in MarkdownIt("commonmark").parse(text):
        if token.type != "fence":
            continue
        start, end = token.map
        closing = lines[end - 1].strip() if end - 1 > start else ""
        if not (closing and set(closing) <= set(token.markup[0]) and
                len(closing) >= len(token.markup)):
            bad.append(start + 1)
    return bad


def test_a_fence_left_open_is_found():
    assert unclosed_fences("# a\n\n```bash\nx\n```\n\ntext\n") == []
    assert unclosed_fences("# a\n\n```bash\nx\n``` Analysis\n\n## b\n") == [3]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_docs_render_without_an_open_code_fence(doc):
    assert unclosed_fences(doc.read_text()) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_docs_send_users_nowhere_they_cannot_go(doc):
    """A user has the project, not the maintainers' folders."""
    assert "../shared/CONTRACT" not in doc.read_text()
    for target in re.findall(r"\]\(([^)#:]+)\)", doc.read_text()):
        assert (doc.parent / target).exists(), target


def _contract_section(number: int) -> str:
    text = (REPO / "docs" / "CONTRACT.md").read_text()
    return text.split(f"\n## {number}.")[1].split("\n## ")[0]


def test_the_documented_stage_map_is_the_default_one():
    stage_map = yaml.safe_load((REPO / "journey_mining" / "config" / "stage_map.yml")
                               .read_text())["signals"]
    documented = {}
    for row in re.findall(r"^\| \d \| (\w+) \| (.+) \|$", _contract_section(2), re.M):
        stage, signals = row
        for part in signals.split(" · "):
            channel, activities = part.split(": ")
            for activity in activities.split(", "):
                documented[(channel, activity)] = stage
    actual = {(channel, activity): stage for channel, acts in stage_map.items()
              for activity, stage in acts.items()}
    assert documented == actual


def test_every_documented_output_column_is_in_a_built_warehouse(sample_con):
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|$", _contract_section(4), re.M)
    assert len(rows) >= 10
    for table, columns in rows:
        have = {r[0] for r in sample_con.execute(f"DESCRIBE {table}").fetchall()}
        missing = [c.strip() for c in columns.split(",") if c.strip() not in have]
        assert missing == [], table
