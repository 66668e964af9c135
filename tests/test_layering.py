"""The core knows nothing above it: no plugin, bench, modality, release or front-door
module, not even imported inside a function (DESIGN.md, "Choices")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "unicomp" / "core"
#: What the core may import of the package: itself and the leaf modules under it.
ALLOWED = ("unicomp.core", "unicomp.errors", "unicomp.atomic")


def imported_modules(source: str) -> set[str]:
    """Every module a source file imports, at any depth (absolute names)."""
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def test_the_scan_sees_imports_inside_functions() -> None:
    source = "def f():\n    from unicomp.plugins.manager import get_registry\n"
    assert imported_modules(source) == {"unicomp.plugins.manager.get_registry"}


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda path: path.name)
def test_core_module_imports_nothing_above_the_core(path: Path) -> None:
    package = {
        m for m in imported_modules(path.read_text(encoding="utf-8")) if m.startswith("unicomp")
    }
    assert {m for m in package if not m.startswith(ALLOWED)} == set()
