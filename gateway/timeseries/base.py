"""What the gateway's time-series sinks share: the point, writer stats and the two protocols.

The MQTT ingest thread calls ``TimeSeriesWriter.write``; the API calls ``TimeSeriesReader.query``.
Nothing here imports a storage library.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Protocol, runtime_checkable

FieldValue = float | int | bool


@dataclass(frozen=True, slots=True)
class Point:
    """One sample of a measurement: tags identify the series, fields carry the numbers.

    ``series_key`` separates series that share the same tags (one appliance among several of the
    same kind in a room). The embedded SQLite store makes it part of the series identity; the
    InfluxDB writer ignores it, so it never becomes a high-cardinality tag there.
    """

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    ts: datetime
    series_key: str | None = None

    def __post_init__(self) -> None:
        if not self.measurement:
            raise ValueError("point measurement must not be empty")
        if self.ts.tzinfo is None or self.ts.utcoffset() is None:
            raise ValueError(f"point {self.measurement!r}: timestamp must be timezone-aware UTC")
        if not self.fields:
            raise ValueError(f"point {self.measurement!r} has no fields")
        for name, value in self.fields.items():
            if not isinstance(value, int | float):
                raise ValueError(
                    f"point {self.measurement!r}: field {name!r} is {type(value).__name__}, "
                    "expected a number or bool"
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"point {self.measurement!r}: field {name!r} is not finite")
        for key, tag in self.tags.items():
            if not key or not tag:
                raise ValueError(f"point {self.measurement!r}: empty tag {key!r}={tag!r}")
        # Read-only copies: a point handed to a background writer must not change under it.
        object.__setattr__(self, "tags", MappingProxyType(dict(self.tags)))
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "ts", self.ts.astimezone(UTC))

    def __reduce__(self) -> tuple[type[Point], tuple[object, ...]]:
        """Picklable (the ingest worker process hands points back): plain dicts on the wire."""
        return (
            Point,
            (self.measurement, dict(self.tags), dict(self.fields), self.ts, self.series_key),
        )


@dataclass(frozen=True, slots=True)
class WriterStats:
    """A snapshot of a writer's counters.

    ``written``: points the store accepted; ``pending``: points queued in memory or in flight;
    ``backlog``: points parked on disk until the sink is reachable again; ``dropped``: points
    lost because a bound was hit (queue or backlog full); ``rejected``: points the sink refused as
    bad data; ``errors``: failed write attempts (each is retried unless it was bad data).
    """

    written: int = 0
    pending: int = 0
    backlog: int = 0
    dropped: int = 0
    rejected: int = 0
    errors: int = 0
    last_error: str = ""
    healthy: bool = True


@runtime_checkable
class TimeSeriesWriter(Protocol):
    """A time-series sink fed by the MQTT ingest thread."""

    def start(self) -> None:
        """Open files and start the background thread."""
        ...

    def write(self, points: Sequence[Point]) -> None:
        """Queue points; never blocks on I/O and never raises because the sink is down."""
        ...

    def flush(self, timeout: float) -> bool:
        """Wait up to timeout seconds until everything queued is stored; True if it was."""
        ...

    def close(self) -> None:
        """Store what can be stored, then stop the background thread and close files."""
        ...

    def stats(self) -> WriterStats:
        """Current counters."""
        ...


@runtime_checkable
class TimeSeriesReader(Protocol):
    """Reads one field of one measurement back for the API."""

    def query(
        self,
        measurement: str,
        field: str,
        tags: Mapping[str, str],
        start: datetime,
        end: datetime,
        limit: int,
        *,
        series_key: str | None = None,
    ) -> list[tuple[datetime, float]]:
        """The latest ``limit`` samples in [start, end), oldest first.

        Every series of ``measurement`` whose tags include all of ``tags`` (and whose series key
        equals ``series_key`` when given) contributes.
        """
        ...
