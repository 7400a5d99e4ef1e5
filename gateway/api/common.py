"""Pieces the routers share: UTC times (naive refused), bounded ids and paging, errors, models."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn, TypeVar

from fastapi import HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select

from contracts.models import UtcDatetime

__all__ = [
    "MAX_OFFSET",
    "MAX_PAGE_SIZE",
    "MAX_ROW_ID",
    "In",
    "Out",
    "PageLimit",
    "PageOffset",
    "RowIdPath",
    "UtcDatetime",
    "conflict",
    "not_found",
    "unavailable",
    "where_equal",
]

MAX_ROW_ID = 2**63 - 1
"""The largest id worth looking up: SQLite's INTEGER and PostgreSQL's bigint are signed 64-bit.

A larger number names no row, and the SQLite driver raises OverflowError binding it: such ids
are refused in validation (422) instead of failing in the query (500).
"""
MAX_PAGE_SIZE = 1000
"""The most items one page of a list may ask for."""
MAX_OFFSET = 1_000_000
"""The most items an offset may skip (page further with filters or a cursor)."""

RowIdPath = Annotated[
    int, Path(ge=1, le=MAX_ROW_ID, description=f"a numeric id, 1 to {MAX_ROW_ID}")
]
"""A path parameter naming a row by its integer id."""

PageLimit = Annotated[
    int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"items per page, 1 to {MAX_PAGE_SIZE}")
]
"""How many items a list answers with (give the route's default as the parameter default)."""

PageOffset = Annotated[
    int, Query(ge=0, le=MAX_OFFSET, description=f"items to skip, 0 to {MAX_OFFSET}")
]
"""How many matching items a list skips before the page starts."""

_Query = TypeVar("_Query", bound=Select[Any])


def where_equal(query: _Query, *filters: tuple[Any, object | None]) -> _Query:
    """The query narrowed to ``column == value`` for every (column, value) whose value is given.

    A value of None means the caller did not ask for that filter.
    """
    for column, value in filters:
        if value is not None:
            query = query.where(column == value)
    return query


class In(BaseModel):
    """Base of request bodies: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Out(BaseModel):
    """Base of response bodies."""

    model_config = ConfigDict(from_attributes=True)


def not_found(detail: str) -> NoReturn:
    """Raise 404 with a message naming what is missing."""
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail)


def conflict(detail: str) -> NoReturn:
    """Raise 409 (the request contradicts the current state)."""
    raise HTTPException(status.HTTP_409_CONFLICT, detail)


def unavailable(detail: str) -> NoReturn:
    """Raise 503 (a part the request needs is down; retry later)."""
    raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail)
