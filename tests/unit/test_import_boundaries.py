"""Edge and gateway speak only through contracts/ (DESIGN.md); this test holds the line.

contracts/ imports neither side. What edge and gateway still import of each other is listed
below, file by file: a new cross import fails the test, and so does an entry that is gone (the
list only shrinks). Issue 13 empties it: the face adapter and the photo checks the gateway's
enrolment uses still live in edge/gate, and the CLI and demo that start both sides in edge/.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What each package must not import; dormguard/ (CLI, demo) may import everything.
FORBIDDEN = {
    "contracts": ("edge", "gateway", "dormguard"),
    "edge": ("gateway", "dormguard"),
    "gateway": ("edge", "dormguard"),
}

STILL_CROSSING: frozenset[tuple[str, str]] = frozenset(
    {
        ("gateway/enrolment.py", "edge.gate.enrol"),
        ("gateway/enrolment.py", "edge.gate.faces"),
        ("gateway/app.py", "edge.gate.faces"),
    }
)


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


def cross_imports() -> set[tuple[str, str]]:
    """(file, module) pairs where one of the three packages imports another it must not."""
    crossing: set[tuple[str, str]] = set()
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((REPO / package).rglob("*.py")):
            for module in imported_modules(path):
                if module.split(".")[0] in forbidden:
                    crossing.add((path.relative_to(REPO).as_posix(), module))
    return crossing


def test_contracts_import_neither_edge_nor_gateway() -> None:
    assert {(f, m) for f, m in cross_imports() if f.startswith("contracts/")} == set()


def test_no_new_import_between_edge_and_gateway() -> None:
    new = cross_imports() - STILL_CROSSING
    assert new == set(), f"edge and gateway must share code through contracts/: {sorted(new)}"


def test_the_list_of_remaining_cross_imports_only_shrinks() -> None:
    gone = STILL_CROSSING - cross_imports()
    assert gone == set(), f"no longer imported, remove from STILL_CROSSING: {sorted(gone)}"


def test_the_scanner_sees_function_level_imports() -> None:
    """A lazy import inside a function counts as much as one at the top."""
    assert ("gateway/app.py", "edge.gate.faces") in cross_imports()
