"""Edge and gateway speak only through contracts/ (DESIGN.md); this test holds the line.

contracts/ imports neither side; faces/ (the face adapter and photo checks both sides use,
docs/decisions/0009) imports only contracts/ and libraries; edge and gateway never import each
other. dormguard/ (CLI, demo) starts both sides and may import everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# What each package must not import.
FORBIDDEN = {
    "contracts": ("edge", "faces", "gateway", "dormguard"),
    "faces": ("edge", "gateway", "dormguard"),
    "edge": ("gateway", "dormguard"),
    "gateway": ("edge", "dormguard"),
}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def cross_imports(package: str) -> set[tuple[str, str]]:
    """(file, module) pairs where a file of the package imports a package it must not."""
    crossing: set[tuple[str, str]] = set()
    for path in sorted((REPO / package).rglob("*.py")):
        for module in imported_modules(path):
            if module.split(".")[0] in FORBIDDEN[package]:
                crossing.add((path.relative_to(REPO).as_posix(), module))
    return crossing


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_it_must_not(package: str) -> None:
    crossing = cross_imports(package)
    assert crossing == set(), (
        f"{package}/ must not import {', '.join(FORBIDDEN[package])} "
        f"(shared code lives in contracts/ or faces/): {sorted(crossing)}"
    )


def test_the_scanner_sees_function_level_imports(tmp_path: Path) -> None:
    """A lazy import inside a function counts as much as one at the top."""
    source = tmp_path / "lazy.py"
    source.write_text(
        "import contracts.models\n"
        "\n"
        "def build():\n"
        "    from edge.gate.daemon import GateDaemon\n"
        "    if True:\n"
        "        import gateway.app\n"
        "    return GateDaemon, gateway.app\n",
        encoding="utf-8",
    )
    assert imported_modules(source) == {"contracts.models", "edge.gate.daemon", "gateway.app"}
