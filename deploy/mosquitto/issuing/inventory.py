"""Reading the site inventory file: JSON, YAML through PyYAML, or the YAML subset it uses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any


class InventoryError(ValueError):
    """The inventory (or the ACL template) is not usable; the message says where and why."""


def _strip_comment(line: str) -> str:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _scalar(text: str, lineno: int) -> Any:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [] if not inner else [_scalar(part, lineno) for part in inner.split(",")]
    if text[:1] in "'\"":
        if len(text) < 2 or text[-1] != text[0]:
            raise InventoryError(f"line {lineno}: unterminated quoted string {text!r}")
        return text[1:-1]
    if text[:1] in "{&*!|>":
        raise InventoryError(
            f"line {lineno}: {text!r}: this YAML feature needs PyYAML (pip install pyyaml); "
            "the built-in reader knows block mappings and lists, [a, b] lists and comments"
        )
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("", "null", "~"):
        return None
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    return text


def _split_key(content: str, lineno: int) -> tuple[str, str] | None:
    """('key', 'rest') for a 'key: rest' line, None when the line is not a mapping entry."""
    match = re.match(r"^([A-Za-z0-9_.-]+):(?:\s+(.*))?$", content)
    if not match:
        return None
    return match.group(1), (match.group(2) or "").strip()


def parse_simple_yaml(text: str) -> Any:
    """Read the YAML subset the inventory uses; InventoryError names the line of a problem."""
    lines: list[tuple[int, str, int]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise InventoryError(f"line {lineno}: indent with spaces, not tabs")
        content = _strip_comment(raw)
        if content.strip() in ("", "---"):
            continue
        indent = len(content) - len(content.lstrip(" "))
        lines.append((indent, content.strip(), lineno))
    if not lines:
        return None
    value, end = _parse_block(lines, 0, lines[0][0])
    if end != len(lines):
        raise InventoryError(f"line {lines[end][2]}: unexpected indentation")
    return value


def _parse_block(lines: list[tuple[int, str, int]], i: int, indent: int) -> tuple[Any, int]:
    if lines[i][1] == "-" or lines[i][1].startswith("- "):
        return _parse_list(lines, i, indent)
    return _parse_mapping(lines, i, indent)


def _parse_list(lines: list[tuple[int, str, int]], i: int, indent: int) -> tuple[Any, int]:
    items: list[Any] = []
    while i < len(lines) and lines[i][0] == indent:
        _, content, lineno = lines[i]
        if not (content == "-" or content.startswith("- ")):
            raise InventoryError(f"line {lineno}: expected a list item ('- ...')")
        rest = content[1:].strip()
        if not rest:
            if i + 1 < len(lines) and lines[i + 1][0] > indent:
                value, i = _parse_block(lines, i + 1, lines[i + 1][0])
            else:
                value, i = None, i + 1
            items.append(value)
        elif _split_key(rest, lineno) is not None:
            # "- key: value" starts a mapping whose keys sit in the column after "- ".
            column = indent + len(content) - len(rest)
            lines[i] = (column, rest, lineno)
            value, i = _parse_mapping(lines, i, column)
            items.append(value)
        else:
            items.append(_scalar(rest, lineno))
            i += 1
    if i < len(lines) and lines[i][0] > indent:
        raise InventoryError(f"line {lines[i][2]}: unexpected indentation")
    return items, i


def _parse_mapping(lines: list[tuple[int, str, int]], i: int, indent: int) -> tuple[Any, int]:
    mapping: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent:
        _, content, lineno = lines[i]
        entry = _split_key(content, lineno)
        if entry is None:
            raise InventoryError(f"line {lineno}: expected 'key: value', got {content!r}")
        key, rest = entry
        if key in mapping:
            raise InventoryError(f"line {lineno}: duplicate key {key!r}")
        i += 1
        if rest:
            mapping[key] = _scalar(rest, lineno)
        elif i < len(lines) and (
            lines[i][0] > indent
            or (lines[i][0] == indent and (lines[i][1] == "-" or lines[i][1].startswith("- ")))
        ):
            mapping[key], i = _parse_block(lines, i, lines[i][0])
        else:
            mapping[key] = None
    if i < len(lines) and lines[i][0] > indent:
        raise InventoryError(f"line {lines[i][2]}: unexpected indentation")
    return mapping, i


def load_inventory_file(path: Path) -> Any:
    """The inventory as plain data: JSON, or YAML (PyYAML when installed, else the subset)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    try:
        import yaml
    except ImportError:
        return parse_simple_yaml(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InventoryError(f"YAML syntax error: {exc}") from exc
