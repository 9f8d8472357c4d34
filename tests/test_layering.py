"""Layers import downward only: orchestration -> reporting -> transforms; orchestration -> connectors.

Read from the code's own import statements (every `import` and `from ... import`, at any depth, so an
import tucked inside a function counts too). A module may import its own layer and the layers below;
connectors know nothing of Dagster or DuckDB (the sandbox store, which keeps its synthetic people in
DuckDB, is the one exception); reporting knows nothing of Dagster, of the connectors' HTTP clients or
of the settings (orchestration passes what it needs).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# layer -> top-level packages it must never import
FORBIDDEN = {
    "connectors": {"orchestration", "reporting", "transforms", "dagster", "duckdb"},
    "transforms": {"orchestration", "reporting", "connectors", "dagster"},
    "reporting": {"orchestration", "connectors", "dagster"},
}
# The sandbox store holds its synthetic population in DuckDB on purpose.
ALLOWED = {("connectors/sandbox", "duckdb")}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_layers_import_downward_only() -> None:
    wrong = []
    for layer, forbidden in FORBIDDEN.items():
        for path in sorted((REPO / layer).rglob("*.py")):
            where = path.relative_to(REPO).as_posix()
            for package in sorted(imported_packages(path) & forbidden):
                if not any(where.startswith(prefix) and package == p for prefix, p in ALLOWED):
                    wrong.append(f"{where} imports {package}")
    assert not wrong, wrong


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from orchestration.settings import environ\n    import dagster as dg\n")
    assert imported_packages(module) == {"orchestration", "dagster"}
