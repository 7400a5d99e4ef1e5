"""Strict readers of parsed JSON: exact fields and types, errors that name the place.

Each reader takes the value and ``where`` (a path such as ``people[3].windows[0].start``) and
returns the value with its type, or raises ValueError saying what is wrong there. The gallery
document (contracts/gallery.py) is read with these.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar

_E = TypeVar("_E", bound=StrEnum)


def _kind(value: object) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    names = {
        type(None): "null",
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }
    return names.get(type(value), type(value).__name__)


def expect_object(value: object, where: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """An object with exactly these fields."""
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object, got {_kind(value)}")
    for name in fields:
        if name not in value:
            raise ValueError(f"{where}: missing field {name!r}")
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}")
    return value


def expect_list(value: object, where: str) -> list[Any]:
    """An array."""
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected an array, got {_kind(value)}")
    return value


def expect_str(value: object, where: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a string, got {_kind(value)}")
    if not value:
        raise ValueError(f"{where}: must not be empty")
    return value


def expect_int(value: object, where: str) -> int:
    """An integer (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: expected an integer, got {_kind(value)}")
    return value


def expect_enum(value: object, enum: type[_E], where: str) -> _E:
    """One of the enum's string values, as the member."""
    allowed = [member.value for member in enum]
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return enum(value)


def expect_str_set(value: object, where: str) -> frozenset[str]:
    """An array of unique non-empty strings, as a set."""
    items: set[str] = set()
    for i, item in enumerate(expect_list(value, where)):
        text = expect_str(item, f"{where}[{i}]")
        if text in items:
            raise ValueError(f"{where}[{i}]: duplicate {text!r}")
        items.add(text)
    return frozenset(items)
