"""The bounded in-memory hand-off between the ingest thread and a writer's background thread."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence

from gateway.timeseries.base import Point

log = logging.getLogger(__name__)


class PointQueue:
    """A bounded FIFO of points: put() never blocks, take() hands batches to one consumer.

    When full, incoming points are dropped and counted; the first drop of a burst is logged as a
    warning and the end of the burst (the next put that fits) as an info line with the total.
    """

    def __init__(self, capacity: int, wake_at: int, what: str) -> None:
        if capacity < 1 or wake_at < 1:
            raise ValueError("queue capacity and wake_at must be at least 1")
        self._capacity = capacity
        self._wake_at = wake_at
        self._what = what
        self._items: deque[Point] = deque()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._urgent = 0
        self._closing = False
        self._dropped = 0
        self._burst = 0

    def put(self, points: Sequence[Point]) -> None:
        """Append points; those that do not fit are dropped and counted."""
        if not points:
            return
        burst_started = burst_ended = 0
        with self._cond:
            room = self._capacity - len(self._items)
            accepted = points if len(points) <= room else points[: max(room, 0)]
            self._items.extend(accepted)
            lost = len(points) - len(accepted)
            if lost:
                self._dropped += lost
                if self._burst == 0:
                    burst_started = lost
                self._burst += lost
            elif self._burst:
                burst_ended, self._burst = self._burst, 0
            if len(self._items) >= self._wake_at or self._urgent:
                self._cond.notify_all()
        # Log outside the lock, and only at the edges of a burst.
        if burst_started:
            log.warning(
                "%s queue full (%d points): dropping new points until it drains",
                self._what,
                self._capacity,
            )
        if burst_ended:
            log.info("%s queue accepts points again; %d were dropped", self._what, burst_ended)

    def take(self, max_n: int, wait_s: float) -> list[Point]:
        """Up to max_n oldest points, waiting up to wait_s for a full batch (or a flush/close).

        The points count as in flight until done() is called with their number.
        """
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    len(self._items) >= self._wake_at
                    or self._closing
                    or (self._urgent > 0 and len(self._items) > 0)
                ),
                timeout=max(wait_s, 0.0),
            )
            n = min(max_n, len(self._items))
            batch = [self._items.popleft() for _ in range(n)]
            self._in_flight += n
            return batch

    def done(self, n: int) -> None:
        """The consumer has finished with n points it took (stored, parked or dropped)."""
        with self._cond:
            self._in_flight -= n
            self._cond.notify_all()

    def urgent(self, on: bool) -> None:
        """While a flush waits, hand out partial batches at once."""
        with self._cond:
            self._urgent += 1 if on else -1
            self._cond.notify_all()

    def close(self) -> None:
        """Stop waiting in take(): the consumer is shutting down."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def count_dropped(self, n: int) -> None:
        """Count points the consumer had to give up (taken but never stored)."""
        with self._cond:
            self._dropped += n

    @property
    def pending(self) -> int:
        """Points queued or in flight."""
        with self._cond:
            return len(self._items) + self._in_flight

    @property
    def depth(self) -> int:
        """Points queued (not yet taken)."""
        with self._cond:
            return len(self._items)

    @property
    def dropped(self) -> int:
        """Points dropped so far."""
        with self._cond:
            return self._dropped
