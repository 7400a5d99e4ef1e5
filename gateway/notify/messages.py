"""What a notice says: title, plain text, Markdown and JSON of an alert or a digest (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from gateway.alerts.lifecycle import AlertRecord
from gateway.notify.routing import NoticeKind

_HEADINGS: dict[str, str] = {
    "raise": "Alert",
    "escalation": "Not acknowledged",
    "clear": "Cleared",
    "digest": "Daily digest",
}


@dataclass(frozen=True, slots=True)
class Message:
    """One notice as the channels send it."""

    kind: str
    title: str
    text: str
    markdown: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        """The outbox row's payload."""
        return {
            "kind": self.kind,
            "title": self.title,
            "text": self.text,
            "markdown": self.markdown,
            "data": self.data,
        }

    @classmethod
    def of_payload(cls, payload: dict[str, Any]) -> Message:
        """Read back what :meth:`to_payload` stored."""
        return cls(
            kind=str(payload.get("kind", "")),
            title=str(payload.get("title", "")),
            text=str(payload.get("text", "")),
            markdown=str(payload.get("markdown", "")),
            data=dict(payload.get("data") or {}),
        )


def alert_data(rec: AlertRecord) -> dict[str, Any]:
    """The alert as plain JSON (the generic webhook's body)."""
    return {
        "id": rec.id,
        "type": rec.type.value,
        "originator": rec.originator,
        "site": rec.site,
        "building": rec.building,
        "severity": int(rec.severity),
        "severity_name": rec.severity.name.lower(),
        "title": rec.title,
        "state": rec.state.value,
        "count": rec.count,
        "first_at": rec.first_at.isoformat(),
        "last_at": rec.last_at.isoformat(),
        "acked_by": rec.acked_by,
        "cleared_by": rec.cleared_by,
        "detail": rec.detail,
    }


def _local(moment: datetime, zone: tzinfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def alert_message(kind: NoticeKind, rec: AlertRecord, zone: tzinfo) -> Message:
    """The notice about one alert (raise, escalation or clear)."""
    severity = rec.severity.name.lower()
    heading = _HEADINGS[kind]
    title = f"[{severity}] {heading}: {rec.title}"
    where = f"{rec.site}/{rec.building}" if rec.building else rec.site
    lines = [
        f"type: {rec.type.value}",
        f"where: {where} ({rec.originator})",
        f"since: {_local(rec.first_at, zone)}" + (f", {rec.count} times" if rec.count > 1 else ""),
        f"alert #{rec.id}",
    ]
    if kind == "clear":
        lines.append(f"cleared by: {rec.cleared_by or 'the system (condition ended)'}")
    text = "\n".join([title, *lines])
    markdown = "\n".join([f"### {title}", *(f"- {line}" for line in lines)])
    return Message(kind, title, text, markdown, {"kind": kind, "alert": alert_data(rec)})


def digest_message(name: str, day: str, records: Sequence[AlertRecord], zone: tzinfo) -> Message:
    """One day's list of alerts (e.g. welfare warnings for counsellors)."""
    title = f"{_HEADINGS['digest']} {name} {day}: {len(records)} alert(s)"
    lines = [
        f"{_local(r.first_at, zone)} [{r.severity.name.lower()}] {r.title} ({r.state.value})"
        for r in records
    ] or ["nothing to report"]
    text = "\n".join([title, *lines])
    markdown = "\n".join([f"### {title}", *(f"- {line}" for line in lines)])
    data = {
        "kind": "digest",
        "digest": name,
        "day": day,
        "alerts": [alert_data(r) for r in records],
    }
    return Message("digest", title, text, markdown, data)


_APPLIANCE_NAMES: dict[str, tuple[str, str]] = {
    "washer": ("洗衣机", "washer"),
    "dryer": ("烘干机", "dryer"),
    "water_dispenser": ("饮水机", "water dispenser"),
    "hair_dryer": ("吹风机", "hair dryer"),
}


def watch_message(
    watch_kind: str, person_id: str, watch_id: int, device: dict[str, str], at: datetime
) -> Message:
    """The notice a student asked for: their machine finished, or a machine became free.

    ``device`` holds the appliance's device_key, building, room, device_id and kind. The text
    is in Chinese and English (the student page's two languages); ``data.person_id`` lets a
    campus app route it to the student.
    """
    zh, en = _APPLIANCE_NAMES.get(device["kind"], (device["kind"], device["kind"]))
    place = f"{device['building']} {device['room']} {device['device_id']}"
    if watch_kind == "finished":
        title = f"{zh}已完成 / Your {en} has finished: {place}"
    else:
        title = f"{zh}空闲 / A {en} is free: {place}"
    text = f"{title}\n{at.isoformat(timespec='seconds')}"
    data = {
        "kind": "watch",
        "watch": {"id": watch_id, "kind": watch_kind, "person_id": person_id},
        "person_id": person_id,
        "device": dict(device),
        "at": at.isoformat(),
    }
    return Message("watch", title, text, f"### {title}", data)
