"""No import loops among our modules (issue 13): every dependency points one way.

A loop makes a module impossible to understand (or import) without the ones that import it
back, and is usually a sign that a shared piece has no home of its own; give it one (the
gateway's ports module, contracts/) rather than a function-level import that hides the loop.
Function-level and TYPE_CHECKING imports count as much as top-level ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("contracts", "faces", "edge", "gateway", "dormguard")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Our modules that `path` imports; `from pkg import mod` counts as importing pkg.mod."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            named.add(module)
            named.update(f"{module}.{alias.name}" for alias in node.names)
    return {m for m in named if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    known = our_modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_loop_among_our_modules() -> None:
    assert loops(import_graph()) == []


def test_the_loop_finder_finds_a_loop_of_three_and_ignores_a_chain() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert loops(graph) == [["a", "b", "c"]]
    assert loops({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    """The scanner reads imports inside functions and resolves `from . import x`."""
    package = REPO / "gateway"
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from . import b\n    import gateway.app\n", encoding="utf-8")
    known = {"gateway.app": package / "app.py", "gateway.b": package / "b.py"}
    assert imports_of("gateway.probe", source, known) == {"gateway.app", "gateway.b"}


def test_the_graph_covers_every_package() -> None:
    graph = import_graph()
    assert {name.split(".")[0] for name in graph} >= {"contracts", "edge", "gateway", "dormguard"}
    assert any(m.startswith("gateway.") for m in graph["dormguard.cli"])
