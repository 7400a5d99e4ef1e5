"""Sequence rule: events missing from a gate's outbox sequence (event_gap).

``on_seq`` remembers the last ``seq`` per gate; a jump raises event_gap with the missing
ranges, a late (older) ``seq`` is not a gap and fills a missing range; when every missing event
has arrived the alert is cleared. With a grace period (``event_gap_grace_s``: replicas commit a
gate's events in any order) a gap is raised by ``tick`` only once it stayed unfilled that long;
one filled in time raises nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from gateway.alerts.originators import location
from gateway.alerts.rules.report import Reporter
from gateway.alerts.types import AlertType, JsonDict, Signal

_MAX_MISSING_RANGES = 200


class SequenceRules:
    """Gap detection on each gate's outbox sequence numbers."""

    def __init__(self, reporter: Reporter) -> None:
        self._report = reporter
        self.config = reporter.config
        self._last_seq: dict[str, int] = {}
        self._missing: dict[str, list[tuple[int, int]]] = {}  # gate -> missing seq ranges
        self._gap_since: dict[str, datetime] = {}  # gate -> when its unreported gap appeared
        self._grace = timedelta(seconds=self.config.event_gap_grace_s or 0.0)

    def restore_seq(self, originator: str, last_seq: int) -> None:
        """Seed a gate's last sequence number (from SQL at start): gaps across restarts show."""
        self._last_seq[originator] = last_seq

    def on_seq(self, originator: str, seq: int | None, now: datetime) -> list[Signal]:
        """Gap detection on a gate's outbox sequence (every message from its outbox carries it)."""
        if seq is None:
            return []
        last = self._last_seq.get(originator)
        if last is None:
            self._last_seq[originator] = seq
            return []
        missing = self._missing.get(originator, [])
        if seq <= last:
            if not _fill(missing, seq):
                return []  # a duplicate or an event we were not missing
            if missing:
                return []
            del self._missing[originator]
            if self._gap_since.pop(originator, None) is not None:
                return []  # filled within the grace period: nothing was reported
            return self._gap_signal("clear", originator, [], now)
        self._last_seq[originator] = seq
        if seq == last + 1:
            return []
        missing.append((last + 1, seq - 1))
        del missing[:-_MAX_MISSING_RANGES]
        self._missing[originator] = missing
        if self._grace and not self._report.last_reported(AlertType.EVENT_GAP, originator):
            self._gap_since.setdefault(originator, now)
            return []
        return self._gap_signal("raise", originator, missing, now)

    def tick(self, now: datetime) -> list[Signal]:
        """Raise the gaps that stayed unfilled for the grace period."""
        signals: list[Signal] = []
        for originator, since in list(self._gap_since.items()):
            if now - since >= self._grace:
                del self._gap_since[originator]
                signals += self._gap_signal("raise", originator, self._missing[originator], now)
        return signals

    def _gap_signal(
        self,
        action: Literal["raise", "clear"],
        originator: str,
        missing: list[tuple[int, int]],
        now: datetime,
    ) -> list[Signal]:
        if not self.config.is_enabled(AlertType.EVENT_GAP):
            return []
        site, building, gate_id = location(originator)
        count = sum(hi - lo + 1 for lo, hi in missing)
        if action == "clear":
            title = f"Missing events from gate {gate_id} have arrived"
        else:
            title = f"{count} event(s) missing from gate {gate_id}"
        detail: JsonDict = {
            "gate_id": gate_id,
            "missing": [[lo, hi] for lo, hi in missing],
            "missing_count": count,
        }
        self._report.remember(AlertType.EVENT_GAP, originator, action == "raise" or None)
        return [
            Signal(
                action,
                AlertType.EVENT_GAP,
                originator,
                site,
                building,
                self.config.severity_of(AlertType.EVENT_GAP),
                title,
                detail,
                now,
            )
        ]


def _fill(missing: list[tuple[int, int]], seq: int) -> bool:
    """Remove seq from the missing ranges; whether it was missing."""
    for i, (lo, hi) in enumerate(missing):
        if lo <= seq <= hi:
            rest = [(a, b) for a, b in ((lo, seq - 1), (seq + 1, hi)) if a <= b]
            missing[i : i + 1] = rest
            return True
    return False
