"""Build a dataclass, pydantic model or SQL row from another object's same-named attributes."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def field_names(cls: type) -> tuple[str, ...]:
    """The constructor field names of a dataclass, a pydantic model or a mapped SQL class.

    Kept per class: the ingest builds door and appliance-state rows with it for every event.
    """
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = _find_field_names(cls)
    return names


def _find_field_names(cls: type) -> tuple[str, ...]:
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return tuple(cls.model_fields)
    if dataclasses.is_dataclass(cls):
        return tuple(f.name for f in dataclasses.fields(cls) if f.init)
    mapper = getattr(cls, "__mapper__", None)  # SQLAlchemy declarative: its column attributes
    if mapper is not None:
        return tuple(attr.key for attr in mapper.column_attrs)
    raise TypeError(f"{cls.__name__} is not a dataclass, pydantic model or mapped SQL class")


def from_attributes(cls: type[T], source: object, **overrides: Any) -> T:
    """``cls`` built from ``source``'s attributes named like its fields; ``overrides`` win.

    A field ``source`` has no attribute for keeps its default (or, without one, fails to build).
    """
    values = {
        name: getattr(source, name)
        for name in field_names(cls)
        if name not in overrides and hasattr(source, name)
    }
    return cls(**values, **overrides)
