"""The decision core depends on nothing but the standard library and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "kemi" / "trunkedge" / "core"


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_imports_only_the_standard_library_and_core(path: Path) -> None:
    foreign = [m for m in imported_modules(path)
               if m.split(".")[0] not in sys.stdlib_module_names
               and m != "trunkedge.core" and not m.startswith("trunkedge.core.")]
    assert foreign == [], f"{path.name} imports {foreign}"


def test_the_core_folder_holds_the_decisions() -> None:
    assert {"admission.py", "digest.py", "identity.py", "pops.py", "target.py",
            "reasons.py"} <= {p.name for p in CORE.glob("*.py")}
