"""gateway.attributes: a value built from another object's attributes of the same names."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from gateway.attributes import field_names, from_attributes
from gateway.db.schema import DoorRecord

TS = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: int
    label: str = "none"
    hidden: int = field(default=0, init=False)


class PointOut(BaseModel):
    x: int
    y: int
    label: str = "none"


@dataclass
class Source:
    x: int = 1
    y: int = 2
    label: str = "a"
    extra: str = "not copied"


def test_same_named_attributes_are_copied_into_a_dataclass_and_a_model() -> None:
    assert from_attributes(Point, Source()) == Point(1, 2, "a")
    assert from_attributes(PointOut, Source()) == PointOut(x=1, y=2, label="a")


def test_overrides_win_over_the_source() -> None:
    assert from_attributes(Point, Source(), y=5) == Point(1, 5, "a")


def test_a_field_the_source_lacks_keeps_its_default_or_fails_without_one() -> None:
    @dataclass
    class Partial:
        x: int = 1
        y: int = 2

    assert from_attributes(Point, Partial()) == Point(1, 2)
    with pytest.raises(TypeError):
        from_attributes(Point, object())


def test_field_names_are_the_constructor_fields_or_a_mapped_class_columns() -> None:
    assert field_names(Point) == ("x", "y", "label")
    assert field_names(PointOut) == ("x", "y", "label")
    assert "event_id" in field_names(DoorRecord)
    with pytest.raises(TypeError):
        field_names(Source.__class__)


def test_a_mapped_row_is_built_from_an_event() -> None:
    @dataclass
    class Door:
        event_id: str = "e1"
        ts: datetime = TS
        site: str = "campus"
        building: str = "B1"
        gate_id: str = "g1"
        kind: str = "opened"
        open_for_s: float | None = None
        seq: int | None = 3
        producer: str = "gate:campus/B1/g1"

    row = from_attributes(DoorRecord, Door())
    assert (row.event_id, row.ts, row.gate_id, row.kind, row.seq) == ("e1", TS, "g1", "opened", 3)
