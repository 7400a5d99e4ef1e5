"""Small pieces the routers share: UTC times (naive ones refused), error helpers, base models."""

from __future__ import annotations

from typing import NoReturn

from fastapi import HTTPException, status
from pydantic import BaseModel, ConfigDict

from contracts.models import UtcDatetime

__all__ = ["In", "Out", "UtcDatetime", "conflict", "not_found", "unavailable"]


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
