"""Load a YAML file into a pydantic model, pointing errors at the offending line.

Shared by every daemon's ``--config`` and by ``dormguard validate-config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration problem; the message names the file, line and field."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: invalid configuration:\n  " + "\n  ".join(problems))


class _DuplicateKeyError(ValueError):
    pass


def _reject_duplicate_keys(node: yaml.Node | None) -> None:
    """YAML lets a later key silently win; in a config that hides mistakes, so refuse it."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                line = int(key.start_mark.line) + 1
                if key.value in seen:
                    raise _DuplicateKeyError(
                        f"line {line}: {key.value}: duplicate key (first given on line "
                        f"{seen[key.value]})"
                    )
                seen[key.value] = line
            _reject_duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item)


def _node_at(root: yaml.Node | None, loc: tuple[int | str, ...]) -> yaml.Node | None:
    """The deepest YAML node along a pydantic error location."""
    node = root
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == key), None)
            if child is None:
                return node
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                return node
            node = node.value[key]
        else:
            return node
    return node


def _key_line(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Line (1-based) of the key for an unexpected field, else of the value."""
    parent = _node_at(root, loc[:-1])
    if isinstance(parent, yaml.MappingNode) and loc:
        for k, _ in parent.value:
            if k.value == loc[-1]:
                return int(k.start_mark.line) + 1
    node = _node_at(root, loc)
    return None if node is None else int(node.start_mark.line) + 1


def load_yaml_model(path: Path, model: type[M]) -> M:
    """Read, parse and validate a YAML config; ConfigError names file, line and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [f"cannot read file: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            path, [f"file is not UTF-8 text (bad byte at offset {exc.start})"]
        ) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        _reject_duplicate_keys(root)
        data: Any = yaml.safe_load(text)
    except _DuplicateKeyError as exc:
        raise ConfigError(path, [str(exc)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, [f"{where}YAML syntax error: {problem}"]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        first = int(root.start_mark.line) + 1 if root is not None else 1
        raise ConfigError(path, [f"line {first}: the top level must be a mapping of settings"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            key_line = _key_line(root, loc)
            field = ".".join(str(p) for p in loc) or "<top level>"
            prefix = f"line {key_line}: " if key_line else ""
            problems.append(f"{prefix}{field}: {err['msg']}")
        raise ConfigError(path, problems) from exc
