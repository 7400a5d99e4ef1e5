"""What the API, the WebSocket and /metrics show of alerts and silences (response models)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from gateway.alerts.lifecycle import AlertState
from gateway.alerts.types import AlertType, Severity


class AlertView(BaseModel):
    """One alert as the API and the WebSocket show it."""

    id: int
    type: AlertType
    originator: str
    site: str
    building: str
    severity: int = Field(description="1 info, 2 warning, 3 major, 4 critical")
    severity_name: str
    title: str
    detail: dict[str, Any]
    state: AlertState
    condition_active: bool = Field(description="the condition still holds (momentary: false)")
    count: int
    first_at: datetime
    last_at: datetime
    annunciated_at: datetime
    acked_by: str | None
    acked_at: datetime | None
    assignee: str | None
    cleared_by: str | None = Field(description="null on a cleared alert: cleared automatically")
    cleared_at: datetime | None
    escalation_level: int
    escalated_at: datetime | None
    silenced: bool
    needs_review: bool = Field(description="cleared before anyone acknowledged it")
    updated_at: datetime


class HistoryEntry(BaseModel):
    at: datetime
    action: str
    actor: str | None
    text: str


class CommentView(BaseModel):
    at: datetime
    author: str
    text: str


class NotificationView(BaseModel):
    """One notification of an alert (WeCom, DingTalk, Feishu, e-mail, webhook)."""

    channel: str
    kind: Literal["raise", "escalation", "clear"]
    status: Literal["queued", "retrying", "sent", "failed", "cancelled"] = Field(
        description="cancelled: an escalation whose alert was acknowledged before it was due"
    )
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="when it is tried next (pending only)")
    sent_at: datetime | None


class AlertDetailView(AlertView):
    history: list[HistoryEntry] = Field(description="every change, oldest first")
    comments: list[CommentView] = Field(description="guards' notes, oldest first")
    notifications: list[NotificationView] = Field(description="notices sent or due, oldest first")


class SilenceView(BaseModel):
    id: int
    originator: str
    types: list[AlertType]
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime
    active: bool


class HandoverView(BaseModel):
    """What a guard coming on shift needs to know."""

    generated_at: datetime
    since: datetime
    open_count: int
    unacknowledged_count: int
    silenced_count: int
    escalated_count: int
    unassigned_count: int
    oldest_open_age_s: float | None
    open_by_severity: dict[str, list[AlertView]] = Field(description="most severe first")
    needs_review: list[AlertView]
    cleared_since: list[AlertView]
    by_type: dict[str, int]


@dataclass(frozen=True, slots=True)
class AlertStats:
    """Open alerts for /metrics."""

    open_by_severity: dict[Severity, int]
    unacknowledged: int
