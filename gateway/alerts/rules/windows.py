"""Sliding windows: how many events of one key (a gate, a person) fall within a span of time."""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta


class SlidingWindow:
    """Event times of one key; says how many fall in any span-long window around a new one."""

    def __init__(self, span: timedelta) -> None:
        self.span = span
        self.entries: list[tuple[datetime, str]] = []  # sorted by time
        self.ids: set[str] = set()
        self.touched: datetime | None = None  # gateway time of the last add

    def add(self, at: datetime, event_id: str, now: datetime) -> int:
        """Add one event; return the most events in a window containing it (0: duplicate)."""
        self.touched = now
        if event_id in self.ids:
            return 0
        self.ids.add(event_id)
        bisect.insort(self.entries, (at, event_id))
        times = [t for t, _ in self.entries]
        k = bisect.bisect_left(times, at)
        best = 0
        for i in range(bisect.bisect_left(times, at - self.span), k + 1):
            j = bisect.bisect_right(times, times[i] + self.span) - 1
            if j >= k:
                best = max(best, j - i + 1)
        self._forget_before(times[-1] - self.span)
        return best

    def idle_since(self, before: datetime) -> bool:
        """Whether nothing was added since ``before`` (gateway time)."""
        return self.touched is None or self.touched < before

    def _forget_before(self, cutoff: datetime) -> None:
        while self.entries and self.entries[0][0] < cutoff:
            _, old_id = self.entries.pop(0)
            self.ids.discard(old_id)


class WindowsByKey:
    """One sliding window of the same span per key, forgotten once idle for a whole span."""

    def __init__(self, span_s: float) -> None:
        self.span = timedelta(seconds=span_s)
        self._windows: dict[str, SlidingWindow] = {}

    def add(self, key: str, at: datetime, event_id: str, now: datetime) -> int:
        """Add one event to the key's window; the most events in a window containing it."""
        window = self._windows.setdefault(key, SlidingWindow(self.span))
        return window.add(at, event_id, now)

    def forget_idle(self, now: datetime) -> None:
        """Drop the windows nothing was added to within the last span (gateway time)."""
        for key, window in list(self._windows.items()):
            if window.idle_since(now - window.span):
                del self._windows[key]
