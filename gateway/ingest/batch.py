"""What travels through the ingest: one message as delivered, and what storing a batch produced."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from contracts.models import AlertNotice, CommandResult, GalleryAck
from gateway.alerts.types import Signal
from gateway.alerts.views import AlertView
from gateway.timeseries.base import Point


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message as the broker delivered it."""

    topic: str
    payload: bytes
    retain: bool = False


@dataclass
class BatchOutcome:
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    signals: list[Signal] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    # For this gateway's embedded store only: appliance states another replica stored.
    local_points: list[Point] = field(default_factory=list)
    gallery_acks: list[tuple[str, GalleryAck]] = field(default_factory=list)
    command_results: list[tuple[str, CommandResult]] = field(default_factory=list)
    alerts_raised: int = 0
    notices: list[AlertNotice] = field(default_factory=list)
    views: list[AlertView] = field(default_factory=list)  # alerts changed: broadcast them
    # For the student pages: appliances whose state changed (device_fields), watches fired.
    devices: list[dict[str, Any]] = field(default_factory=list)
    watch_notices: list[dict[str, Any]] = field(default_factory=list)


def merge_outcomes(a: BatchOutcome, b: BatchOutcome) -> BatchOutcome:
    """Two halves' outcomes as one (every field is a count or a list)."""
    return BatchOutcome(**{f.name: getattr(a, f.name) + getattr(b, f.name) for f in fields(a)})
