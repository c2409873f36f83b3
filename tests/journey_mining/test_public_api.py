"""The public API a notebook user meets: every public name is listed and documented, and
the declared step list is consistent with what the steps really read and write."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import journey_mining
from journey_mining import steps, warehouse


def _modules():
    for info in pkgutil.walk_packages(journey_mining.__path__, "journey_mining."):
        if not info.name.endswith("__main__") and ".sql" not in info.name:
            yield importlib.import_module(info.name)


def test_every_module_lists_its_public_names_and_each_is_documented():
    undocumented = []
    for module in _modules():
        assert hasattr(module, "__all__"), module.__name__
        for name in module.__all__:
            obj = getattr(module, name)  # AttributeError if __all__ names a ghost
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and not inspect.getdoc(obj):
                undocumented.append(f"{module.__name__}.{name}")
            if inspect.isclass(obj) and obj.__module__ == module.__name__:
                undocumented += [f"{module.__name__}.{name}.{m}" for m, f in vars(obj).items()
                                 if inspect.isfunction(f) and not m.startswith("_")
                                 and not inspect.getdoc(f)]
    assert undocumented == []


def test_the_package_exposes_run_all_and_its_modules():
    assert journey_mining.run_all is steps.run_all
    assert journey_mining.reports.write_report
    assert set(journey_mining.__all__) >= {"run_all", "Config", "steps", "reports"}


def test_each_step_reads_only_what_is_loaded_or_written_before_it(sample_warehouse):
    con = warehouse.connect(sample_warehouse, read_only=True)
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() "
        "UNION SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    con.close()
    written: set[str] = set()
    for step in steps.STEPS:
        assert set(step.reads) <= written, (step.name, set(step.reads) - written)
        written |= set(step.writes)
    # Every step but the report ran on the fixture warehouse: what they declare is there,
    # and nothing is there that no step declares.
    declared = {t for s in steps.STEPS if s.name != "report" for t in s.writes}
    assert declared - tables == set()
    assert {t for t in tables if not t.startswith("_")} - declared == set()


def _imports_of(path, modules) -> set[str]:
    """The journey_mining modules a file imports (at the top or inside a function);
    `from package import submodule` depends on the submodule, not on the package."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("journey_mining"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("journey_mining")}
    return found


def test_the_package_has_no_import_circle():
    """Data flows one way through the modules (warehouse at the bottom, build and steps
    above what they call): a module never imports, even lazily, one that imports it."""
    import graphlib
    from pathlib import Path

    root = Path(journey_mining.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    # The package itself only loads modules on first use (journey_mining.__getattr__).
    graph = {name: {m for m in _imports_of(path, modules) if m in modules and m != name
                    and m != "journey_mining"}
             for name, path in modules.items() if name != "journey_mining"}
    graphlib.TopologicalSorter(graph).prepare()  # CycleError names the circle


# The sample generator tells one account's life as a story, step by step; its three long
# functions are the story, not a job each (issue 25 asks for small ingest and report code).
LONG_FUNCTIONS_ALLOWED = {("generator.py", "simulate"), ("generator.py", "client_life"),
                          ("generator.py", "generate_exports")}


def test_no_function_of_the_library_is_over_80_lines():
    import ast
    from pathlib import Path

    root = Path(journey_mining.__file__).parent
    long = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and \
                    node.end_lineno - node.lineno + 1 > 80 and \
                    (path.name, node.name) not in LONG_FUNCTIONS_ALLOWED:
                long.append(f"{path.relative_to(root)}:{node.name} "
                            f"({node.end_lineno - node.lineno + 1} lines)")
    assert long == []


def test_the_readme_lists_every_source_with_its_required_and_optional_columns():
    """The README's table of sources is what a user maps exports to: it must be the
    contract the loader enforces (journey_mining.sources), not a copy that drifted."""
    from journey_mining.sources import SOURCES
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    for name, spec in SOURCES.items():
        optional = [c for c in spec.columns if c not in spec.required]
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}` |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2] == ", ".join(spec.required), name
        assert cells[3] == ", ".join(optional), name
