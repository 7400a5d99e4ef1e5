"""Access rules: unknown faces and presentation attacks at a gate, repeated denials of a
person, entries after curfew.

Window and incident times are the event's own ``ts`` (never later than ``now``), so a burst
replayed from an edge outbox after an outage is judged by when it happened. unknown_face is
deliberately *not* cleared when the window passes without more unknown faces: quiet afterwards
does not mean the person went away (they may have followed someone in), and a second burst
should count on the open alert, not make a new one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from contracts.access import Flag, Reason
from contracts.models import AccessEvent
from gateway.alerts.originators import gate_originator, person_originator
from gateway.alerts.rules.report import Reporter
from gateway.alerts.rules.windows import WindowsByKey
from gateway.alerts.types import AlertType, Signal


class AccessRules:
    """Incidents from granted and denied access events (tailgating: see DoorRules)."""

    def __init__(self, reporter: Reporter) -> None:
        self._report = reporter
        self.config = reporter.config
        self._unknown = WindowsByKey(self.config.unknown_face_window_s)  # per gate originator
        self._denials = WindowsByKey(self.config.repeated_denial_window_s)  # per person id
        self._attacks = WindowsByKey(self.config.presentation_attack_window_s)  # per gate

    def on_access(self, ev: AccessEvent, now: datetime) -> list[Signal]:
        """Unknown faces, repeated denials and late entries from one access event."""
        at = min(ev.ts, now)
        signals: list[Signal] = []
        if ev.decision == "denied":
            if ev.reason == Reason.PRESENTATION_ATTACK:
                signals += self._presentation_attack(ev, at, now)
            elif ev.person_id is None and ev.reason in self.config.unknown_face_reasons:
                gate = gate_originator(ev.site, ev.building, ev.gate_id)
                signals += self._unknown_face(ev, gate, at, now)
            elif ev.person_id is not None:
                signals += self._repeated_denial(ev, ev.person_id, at, now)
        elif Flag.AFTER_CURFEW in ev.flags and ev.person_id is not None:
            signals += self._report.incident(
                AlertType.AFTER_CURFEW,
                person_originator(ev.person_id),
                ev.site,
                ev.building,
                f"Late entry after curfew: {ev.person_id} at gate {ev.gate_id}",
                {
                    "person_id": ev.person_id,
                    "gate_id": ev.gate_id,
                    "method": ev.method,
                    "event_id": ev.event_id,
                },
                at,
            )
        return signals

    def tick(self, now: datetime) -> None:
        """Forget the windows of gates and people quiet for a whole window."""
        self._unknown.forget_idle(now)
        self._denials.forget_idle(now)
        self._attacks.forget_idle(now)

    def _presentation_attack(self, ev: AccessEvent, at: datetime, now: datetime) -> list[Signal]:
        """Faces refused by the gate's liveness check: someone holds up photos or a screen."""
        gate = gate_originator(ev.site, ev.building, ev.gate_id)
        count = self._attacks.add(gate, at, ev.event_id, now)
        if count < self.config.presentation_attack_count:
            return []
        shown = f" showing {ev.person_id}" if ev.person_id else ""
        title = f"Photo or screen held up to gate {ev.gate_id}{shown} ({count} times)"
        detail = {
            "gate_id": ev.gate_id,
            "direction": ev.direction,
            "count": count,
            "window_s": self.config.presentation_attack_window_s,
            "person_id": ev.person_id,  # whose face the photo showed
            "event_id": ev.event_id,
        }
        return self._report.incident(
            AlertType.PRESENTATION_ATTACK, gate, ev.site, ev.building, title, detail, at
        )

    def _unknown_face(
        self, ev: AccessEvent, gate: str, at: datetime, now: datetime
    ) -> list[Signal]:
        count = self._unknown.add(gate, at, ev.event_id, now)
        if count < self.config.unknown_face_count:
            return []
        if self.config.unknown_face_count == 1:
            title = f"Unknown face at gate {ev.gate_id}"
        else:
            span = _minutes(self._unknown.span)
            title = f"{count} unknown faces within {span} at gate {ev.gate_id}"
        detail = {
            "gate_id": ev.gate_id,
            "direction": ev.direction,
            "count": count,
            "window_s": self.config.unknown_face_window_s,
            "reason": ev.reason,
            "faces_in_view": ev.faces_in_view,
            "event_id": ev.event_id,
        }
        return self._report.incident(
            AlertType.UNKNOWN_FACE, gate, ev.site, ev.building, title, detail, at
        )

    def _repeated_denial(
        self, ev: AccessEvent, person_id: str, at: datetime, now: datetime
    ) -> list[Signal]:
        count = self._denials.add(person_id, at, ev.event_id, now)
        if count < self.config.repeated_denial_count:
            return []
        detail = {
            "person_id": person_id,
            "count": count,
            "window_s": self.config.repeated_denial_window_s,
            "last_reason": ev.reason,
            "method": ev.method,
            "gate_id": ev.gate_id,
            "event_id": ev.event_id,
        }
        span = _minutes(self._denials.span)
        title = f"{person_id} denied {count} times within {span} ({ev.reason})"
        return self._report.incident(
            AlertType.REPEATED_DENIAL,
            person_originator(person_id),
            ev.site,
            ev.building,
            title,
            detail,
            at,
        )


def _minutes(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds % 60 == 0:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
