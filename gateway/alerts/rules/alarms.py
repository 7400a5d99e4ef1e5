"""Edge alarm rule: a gate's heartbeat reports alarms, a disabled face path or a bad camera."""

from __future__ import annotations

import re
from datetime import datetime

from contracts.models import Heartbeat
from gateway.alerts.originators import describe
from gateway.alerts.rules.report import Reporter
from gateway.alerts.types import AlertType, Signal

_DIGITS = re.compile(r"\d+")


class AlarmRules:
    """edge_alarm while a gate's heartbeats carry alarms; cleared by one without."""

    def __init__(self, reporter: Reporter) -> None:
        self._report = reporter

    def on_heartbeat(
        self,
        ev: Heartbeat,
        site: str,
        building: str,
        now: datetime,
        *,
        originator: str | None = None,
    ) -> list[Signal]:
        """Raise edge_alarm while a gate reports alarms (incl. face path or camera down)."""
        who = ev.producer if originator is None else originator
        alarms = list(ev.alarms)
        if ev.face_path == "disabled":
            alarms.append(f"face recognition disabled: {ev.face_path_detail or 'no detail'}")
        if not ev.source_healthy:
            alarms.append(f"camera unhealthy: {ev.source_detail or 'no detail'}")
        at = min(ev.ts, now)
        if not alarms:
            return self._report.condition(
                AlertType.EDGE_ALARM,
                who,
                None,
                site,
                building,
                f"{describe(who)}: alarms cleared",
                {"alarms": []},
                at,
            )
        # Alarm texts carry changing numbers ("outbox full: 812 message(s) ..."): re-raise only
        # when the kinds of alarm change, not on every heartbeat.
        key = frozenset(_DIGITS.sub("#", a.split(":", 1)[0]) for a in alarms)
        return self._report.condition(
            AlertType.EDGE_ALARM,
            who,
            key,
            site,
            building,
            f"{describe(who)}: {alarms[0]}"
            + (f" (+{len(alarms) - 1} more)" if len(alarms) > 1 else ""),
            {
                "alarms": alarms,
                "outbox_depth": ev.outbox_depth,
                "face_path": ev.face_path,
                "source_healthy": ev.source_healthy,
            },
            at,
        )
