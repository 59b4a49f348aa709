"""core/ is the leaf: the API and the operator import it, it imports neither (nor the CLI above them)."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from tests.support import python

CORE = Path(__file__).resolve().parent.parent / "core"
ABOVE = ("monaco.api", "monaco.operator", "monaco.cli")

IMPORT_ALL_OF_CORE = """
import importlib, pkgutil, sys
import monaco.core
for module in pkgutil.iter_modules(monaco.core.__path__):
    importlib.import_module(f"monaco.core.{module.name}")
print(" ".join(sorted(m for m in sys.modules if m.split(".")[:2] != ["monaco", "core"] and m.startswith("monaco."))))
"""


def test_importing_every_core_module_loads_nothing_above_it() -> None:
    done = subprocess.run(python("-c", IMPORT_ALL_OF_CORE), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def _imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):  # imports inside functions too, which the run above does not reach
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_no_core_module_imports_the_api_the_operator_or_the_cli() -> None:
    for path in sorted(CORE.glob("*.py")):
        above = {n for n in _imported(ast.parse(path.read_text())) if n.startswith(ABOVE)}
        assert not above, f"core/{path.name} imports {sorted(above)}"
