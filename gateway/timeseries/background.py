"""What both time-series writers share: a bounded queue, one background thread, flush and close.

A writer subclass opens its resources in ``start()`` and then calls ``_start_thread``; its thread
takes batches from ``self._queue`` and notifies ``self._progress`` after each step. The base
class answers ``write``, ``flush``, ``close`` and ``stats`` from that and from the counters the
thread keeps (written, rejected, errors, the last error, whether the sink is failing).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from gateway.timeseries._queue import PointQueue
from gateway.timeseries.base import Point, WriterStats

_ERROR_MAX_CHARS = 300


class BackgroundWriter:
    """The queue, thread and counters of a writer; subclasses provide the thread's loop."""

    def __init__(self, what: str, queue_size: int, batch_size: int, close_timeout_s: float) -> None:
        self._what = what
        self._close_timeout_s = close_timeout_s
        self._queue = PointQueue(queue_size, batch_size, what)
        self._progress = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._written = 0
        self._rejected = 0
        self._errors = 0
        self._last_error = ""
        self._failing = False

    # -- for subclasses ------------------------------------------------------------------------

    def _refuse_restart(self) -> None:
        """A writer starts once: a second start, or a start after close, is a bug."""
        if self._thread is not None or self._stop.is_set():
            raise RuntimeError(f"{type(self).__name__} already started (or closed: make a new one)")

    def _start_thread(self, target: Callable[[], None], name: str) -> None:
        self._thread = threading.Thread(target=target, name=name, daemon=True)
        self._thread.start()

    def _record_error(self, text: str) -> None:
        self._errors += 1
        self._last_error = text[:_ERROR_MAX_CHARS]

    def _delivered(self) -> bool:
        """Nothing left to deliver (a writer with a backlog also waits for it)."""
        return self._queue.pending == 0

    def _after_close(self) -> None:
        """Release what start() opened, once the thread has stopped."""

    def _writer_stats(
        self, *, backlog: int = 0, dropped: int = 0, healthy: bool = True
    ) -> WriterStats:
        alive = self._thread is not None and self._thread.is_alive()
        return WriterStats(
            written=self._written,
            pending=self._queue.pending,
            backlog=backlog,
            dropped=self._queue.dropped + dropped,
            rejected=self._rejected,
            errors=self._errors,
            last_error=self._last_error,
            healthy=alive and not self._failing and healthy,
        )

    # -- the writer interface ------------------------------------------------------------------

    def write(self, points: Sequence[Point]) -> None:
        """Queue points for the background thread (never blocks; drops are counted when full)."""
        self._queue.put(points)

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued is delivered, at most timeout seconds."""
        if self._thread is None:
            return self._delivered()
        self._queue.urgent(True)
        try:
            with self._progress:
                return self._progress.wait_for(self._delivered, timeout)
        finally:
            self._queue.urgent(False)

    def close(self) -> None:
        """Deliver what can be delivered within close_timeout_s, then stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self.flush(self._close_timeout_s)
        self._stop.set()
        self._queue.close()
        thread.join(self._close_timeout_s + 5)
        self._thread = None
        self._after_close()

    def stats(self) -> WriterStats:
        """Current counters."""
        return self._writer_stats()
