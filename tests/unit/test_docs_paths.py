"""What the docs point at exists: every repository path and module they name (issue 13).

README.md and docs/*.md are read; the decision notes under docs/decisions/ are a record of what
was true when they were written, so they may name paths that have since moved.
docs/architecture.md must keep its "Where to find" table.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TOP = (
    "bench|contracts|dashboards|deploy|docs|dormguard|edge|examples|faces|firmware_configs"
    "|gateway|tests"
)
PATH = re.compile(rf"(?<![\w./-])((?:{TOP})/[\w./*-]*[\w*/])")
FILE_ENDINGS = frozenset(
    {"db", "dump", "json", "log", "md", "py", "sql", "toml", "txt", "yaml", "yml"}
)
# Paths the docs name that a command creates, not the repository.
CREATED = frozenset({"deploy/compose/secrets"})
MODULE = re.compile(r"(?<![\w./-])((?:contracts|dormguard|edge|faces|gateway)(?:\.\w+)+)")


def named_paths(text: str) -> set[str]:
    return {m.group(1) for m in PATH.finditer(text)}


def named_modules(text: str) -> set[str]:
    """Dotted module names (a file name such as `faces.py` or `gateway.yaml` is not one)."""
    return {
        m.group(1)
        for m in MODULE.finditer(text)
        if m.group(1).rpartition(".")[2] not in FILE_ENDINGS
    }


def path_exists(named: str) -> bool:
    """The path exists; a glob matches something; or it is a decision's number (0008)."""
    if "*" in named:
        return any(REPO.glob(named.rstrip("/")))
    target = REPO / named
    return target.exists() or any(target.parent.glob(f"{target.name}-*.md"))


def module_exists(dotted: str) -> bool:
    """The longest prefix is a module or package; what follows is a name defined in it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = REPO.joinpath(*parts[:cut])
        source = base.with_suffix(".py")
        if not source.exists():
            source = base / "__init__.py"
        if not source.exists():
            continue
        rest = parts[cut:]
        if not rest:
            return True
        text = source.read_text(encoding="utf-8")
        return (
            re.search(rf"^\s*(?:class|def|async def)\s+{rest[0]}\b|^{rest[0]}\b", text, re.M)
            is not None
        )
    return False


def test_every_path_the_docs_name_exists() -> None:
    missing = {
        (doc.relative_to(REPO).as_posix(), p)
        for doc in DOCS
        for p in named_paths(doc.read_text(encoding="utf-8"))
        if p not in CREATED and not path_exists(p)
    }
    assert missing == set()


def test_every_module_the_docs_name_exists() -> None:
    missing = {
        (doc.relative_to(REPO).as_posix(), m)
        for doc in DOCS
        for m in named_modules(doc.read_text(encoding="utf-8"))
        if not module_exists(m)
    }
    assert missing == set()


def test_architecture_has_a_where_to_find_table() -> None:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Where to find", 1)
    assert len(section) == 2, "docs/architecture.md lost its '## Where to find' section"
    rows = [line for line in section[1].split("\n## ", 1)[0].splitlines() if line.startswith("|")]
    table = "\n".join(rows[2:])
    assert len(rows) - 2 >= 10, rows
    for what in ("gate decision", "topic", "alert rule", "migration"):
        assert what in table.lower(), f"the table does not say where to find a {what}"
    assert all(named_paths(row) for row in rows[2:]), "every row names a path"


def test_the_scanner_reads_paths_and_modules() -> None:
    text = "see `gateway/app.py`, edge/gate/*.py and `python -m edge.devices.app` or docs/x."
    assert named_paths(text) == {"gateway/app.py", "edge/gate/*.py", "docs/x"}
    assert named_modules(text) == {"edge.devices.app"}
    assert path_exists("edge/gate/*.py")
    assert not path_exists("gateway/no_such_module.py")
    assert path_exists("docs/decisions/0001")
    assert named_modules("`faces.py`, gateway.yaml and `gateway.app`") == {"gateway.app"}
    assert named_modules("# from edge.gate.credentials.hash_pin") == {
        "edge.gate.credentials.hash_pin"
    }
    assert module_exists("gateway.app")
    assert not module_exists("gateway.no_such_module")
    assert not module_exists("gateway.app.no_such_name")
