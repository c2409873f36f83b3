"""Every SELECT that makes a table is a file under sql/ (or a plain literal), with `$`
parameters for values and identifiers never chosen by string formatting; and no SQL
text the package runs compares a stage number (they come from stage_ladder) or names an
engagement activity of the default config (they come from engagement_rules).

The SQL texts are every .sql and .yml file under sql/ and every string literal in
journey_mining that reads as SQL (found by walking each module's syntax tree; the
static parts of an f-string count too). The checks are functions of the folders they
read, so `test_the_checks_find_seeded_violations` can show each one failing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from journey_mining.config import EngagementRules
from tests.conftest import REPO

# Modules (or packages, ending in /) that still build SQL by string formatting, and why.
# Shrink this list as they move to files and bound parameters; an entry that no longer
# formats SQL fails the test, so the list never claims more than is there.
FORMATTED_SQL_ALLOWED = {
    "journey_mining/warehouse.py": "DDL of the loaded tables from the source specs; "
                                   "store_frame and drop_tables name the table a caller gives",
    "journey_mining/ingest/": "each scan is built from the source spec's columns and the "
                              "file's format",
    "journey_mining/checks.py": "data-test queries built from the yml specs (model, column, "
                                "accepted values, expect expressions)",
    "journey_mining/sql_models.py": "the runner creates each model's table or view under the "
                                    "name of its file",
    "journey_mining/spark_engine.py": "a Spark build's DuckDB views name each table and its "
                                      "Parquet folder",
}
# (file, activity) pairs still written into SQL, and why.
ACTIVITY_LITERALS_ALLOWED: dict[tuple[str, str], str] = {}
# Where the default activity names belong: the config defaults and the sample generator.
ACTIVITY_NAMES_BELONG = ("journey_mining/config/", "journey_mining/generator.py")

_DEFAULTS = EngagementRules()
ACTIVITIES = sorted({"deal_won", "deal_lost", "project_completed", "cancellation",
                     *_DEFAULTS.start, *_DEFAULTS.end, *_DEFAULTS.cancel,
                     *getattr(_DEFAULTS, "lost", [])})

_VERB = r"(?:create|insert|drop|delete|alter|attach|copy)"
SQL_TEXT = re.compile(
    r"\bselect\b[\s\S]*\bfrom\b"
    rf"|\b{_VERB}\s+(?:\{{\}}|or\s+replace|into|from|table|view|temp|temporary|if|schema"
    r"|macro|index|unique|database)\b"
    r"|\bupdate\s+\w+\s+set\b|\bwith\s+\w+\s+as\s*\(", re.I)
_OP = r"(?:>=|<=|<>|!=|==|=|<|>)"
STAGE_NUMBER = re.compile(
    rf"stage_order\s*(?:{_OP}|\bbetween\b|\bin\s*\()\s*\d"
    rf"|(?<![\w.])\d+\s*{_OP}\s*[\w.]*stage_order", re.I)
ACTIVITY_LITERAL = re.compile(r"'(" + "|".join(map(re.escape, ACTIVITIES)) + r")'")


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _modules(package: Path) -> list[Path]:
    return sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                found.add(id(first.value))
    return found


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _static_text(node: ast.JoinedStr) -> str:
    return "".join(v.value if _is_str(v) else "{}" for v in node.values)


def python_sql(path: Path) -> list[tuple[int, str, str | None]]:
    """Every SQL text in a module: (line, text, how it is formatted or None)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip |= {id(v) for v in node.values}
    constants = {t.id: n.value.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 and _is_str(n.value) for t in n.targets if isinstance(t, ast.Name)}
    found = []
    for node in ast.walk(tree):
        if _is_str(node) and id(node) not in skip and SQL_TEXT.search(node.value):
            found.append((node.lineno, node.value, None))
        elif isinstance(node, ast.JoinedStr) and SQL_TEXT.search(_static_text(node)):
            found.append((node.lineno, _static_text(node), "f-string"))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "format"):
            receiver = node.func.value
            text = (receiver.value if _is_str(receiver) else constants.get(receiver.id, "")
                    if isinstance(receiver, ast.Name) else "")
            if SQL_TEXT.search(text) or re.search("sql", ast.unparse(receiver), re.I):
                found.append((node.lineno, text or ast.unparse(receiver), ".format"))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
            sides = (node.left, node.right)
            text = " ".join(s.value for s in sides if _is_str(s))
            if not all(_is_str(s) for s in sides) and SQL_TEXT.search(text):
                found.append((node.lineno, text, "% or +"))
    return found


def _allowed(name: str, allowed) -> str | None:
    return next((key for key in allowed if name == key or
                 (key.endswith("/") and name.startswith(key))), None)


def formatted_sql(package: Path, root: Path) -> tuple[list[str], set[str]]:
    """SQL built by formatting outside the allow-list, and the allow-list entries used."""
    outside, used = [], set()
    for path in _modules(package):
        name = _relative(path, root)
        for line, text, how in python_sql(path):
            if how is None:
                continue
            key = _allowed(name, FORMATTED_SQL_ALLOWED)
            if key:
                used.add(key)
            else:
                outside.append(f"{name}:{line}: {how} builds SQL: {' '.join(text.split())[:80]}")
    return outside, used


def _without_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def sql_texts(sql_dir: Path, package: Path, root: Path) -> list[tuple[str, int, str]]:
    """(file, first line, text) of every SQL text: files under sql/, literals in the package."""
    texts = [(_relative(p, root), 1, p.read_text()) for p in sorted(sql_dir.rglob("*"))
             if p.suffix in (".sql", ".yml")]
    for path in _modules(package):
        texts += [(_relative(path, root), line, text) for line, text, _ in python_sql(path)]
    return texts


def _hits(pattern: re.Pattern, name: str, first: int, text: str):
    for i, line in enumerate(_without_comments(text).splitlines()):
        for match in pattern.finditer(line):
            yield f"{name}:{first + i}", match


def stage_numbers(sql_dir: Path, package: Path, root: Path) -> list[str]:
    return [f"{where}: {m.group(0)}" for name, first, text in sql_texts(sql_dir, package, root)
            for where, m in _hits(STAGE_NUMBER, name, first, text)]


def activity_literals(sql_dir: Path, package: Path, root: Path) -> tuple[list[str], set]:
    """Activity names written into SQL outside where they belong, and allowed pairs seen."""
    found, used = [], set()
    for name, first, text in sql_texts(sql_dir, package, root):
        if name.startswith(ACTIVITY_NAMES_BELONG):
            continue
        for where, m in _hits(ACTIVITY_LITERAL, name, first, text):
            if (name, m.group(1)) in ACTIVITY_LITERALS_ALLOWED:
                used.add((name, m.group(1)))
            else:
                found.append(f"{where}: {m.group(0)}")
    return found, used


def stage_arithmetic(package: Path, root: Path) -> list[str]:
    """Stage numbers worked out in Python: STAGE_ORDER[s] +/- 2, LADDER[... - 2]."""
    found = []
    for path in _modules(package):
        name = _relative(path, root)
        if name in ("journey_mining/stages.py", "journey_mining/generator.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
                sides = (node.left, node.right)
                if (any(isinstance(s, ast.Subscript) and isinstance(s.value, ast.Name)
                        and s.value.id == "STAGE_ORDER" for s in sides)
                        and any(isinstance(s, ast.Constant) and isinstance(s.value, int)
                                for s in sides)):
                    found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
            if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                    and node.value.id == "LADDER"
                    and any(isinstance(n, ast.BinOp) for n in ast.walk(node.slice))):
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    return found


PACKAGE = REPO / "journey_mining"
SQL_DIR = REPO / "sql"


def test_no_sql_is_built_by_string_formatting_outside_the_allow_list():
    outside, used = formatted_sql(PACKAGE, REPO)
    assert outside == []
    assert set(FORMATTED_SQL_ALLOWED) - used == set(), "allow-list entries that no longer " \
        "format SQL: remove them"


def test_no_sql_text_compares_a_stage_number():
    assert stage_numbers(SQL_DIR, PACKAGE, REPO) == []


def test_no_sql_text_names_an_engagement_activity_of_the_default_config():
    found, used = activity_literals(SQL_DIR, PACKAGE, REPO)
    assert found == []
    assert set(ACTIVITY_LITERALS_ALLOWED) - used == set(), "allowed activity literals that " \
        "are gone: remove them"


def test_no_stage_number_is_worked_out_in_python():
    assert stage_arithmetic(PACKAGE, REPO) == []


def test_the_sql_texts_include_files_and_literals():
    names = {name for name, _, _ in sql_texts(SQL_DIR, PACKAGE, REPO)}
    assert "sql/analysis/churn_features.sql" in names
    assert "journey_mining/journeys.py" in names  # its inline reads of the marts


def test_the_checks_find_seeded_violations(tmp_path):
    package, sql_dir = tmp_path / "journey_mining", tmp_path / "sql"
    (package / "config").mkdir(parents=True)
    (sql_dir / "analysis").mkdir(parents=True)
    (package / "seeded.py").write_text(
        '"""Docstring: select the rows from a table where stage_order > 3 (prose)."""\n'
        'from journey_mining.stages import LADDER, STAGE_ORDER\n'
        'TEMPLATE_SQL = "select * from {table}"\n'
        'ONE = "SELECT * FROM t WHERE stage_order >= 5"\n'
        'def f(con, t):\n'
        '    con.execute(f"SELECT * FROM {t}")\n'
        '    con.execute(TEMPLATE_SQL.format(table=t))\n'
        '    con.execute("DROP TABLE " + t)\n'
        '    con.execute("select 1 from x where activity = \'deal_lost\'")\n'
        '    return LADDER[STAGE_ORDER["client"] - 2], STAGE_ORDER["client"] + 1\n')
    (package / "config" / "defaults.py").write_text(
        'Q = "select * from t where activity = \'deal_won\'"\n')
    (sql_dir / "analysis" / "seeded.sql").write_text(
        "-- start (default 'deal_won') is a role of engagement_rules\n"
        "select * from t\nwhere activity = 'cancellation' and 2 < l.stage_order\n")

    outside, _ = formatted_sql(package, tmp_path)
    assert sorted(w.split(": ")[1] for w in outside) == [
        "% or + builds SQL", ".format builds SQL", "f-string builds SQL"]
    assert sorted(stage_numbers(sql_dir, package, tmp_path)) == [
        "journey_mining/seeded.py:4: stage_order >= 5",
        "sql/analysis/seeded.sql:3: 2 < l.stage_order"]
    found, _ = activity_literals(sql_dir, package, tmp_path)
    assert sorted(found) == ["journey_mining/seeded.py:9: 'deal_lost'",
                             "sql/analysis/seeded.sql:3: 'cancellation'"]
    assert sorted(w.split(": ")[1] for w in stage_arithmetic(package, tmp_path)) == [
        "LADDER[STAGE_ORDER['client'] - 2]", "STAGE_ORDER['client'] + 1",
        "STAGE_ORDER['client'] - 2"]
