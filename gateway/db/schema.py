"""The gateway's SQL state: SQLAlchemy 2.0 tables (SQLite by default, PostgreSQL by URL).

Changes to these tables go through an Alembic migration in gateway/db/migrations.
Timestamps are stored UTC-aware (``UtcDateTime``) whatever the backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime}  # noqa: RUF012 - SQLAlchemy reads it


# --- people, users -------------------------------------------------------------------------


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))  # admin guard facilities ... student
    # A student account's own person (its username is the student id); NULL for staff.
    person_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]
    # The old hard lockout's columns: no longer written or read (see LoginThrottle), kept so a
    # rollback to the previous release finds them.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]


class LoginThrottle(Base):
    """Failed logins counted per source address, per account and address, and per account.

    One row per key; ``username`` is '' for an address key and ``address`` '' for an account key
    (not NULL: NULLs never collide in a unique constraint). Usernames are stored lowercased
    whether or not an account has that name, so the throttle behaves the same for both.
    """

    __tablename__ = "login_throttles"
    __table_args__ = (UniqueConstraint("scope", "username", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # address | account_address | account
    username: Mapped[str] = mapped_column(String(64), default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime]
    last_failure_at: Mapped[datetime] = mapped_column(index=True)


class AuthEvent(Base):
    """Audit trail of account security events: login throttling started, a throttle lifted."""

    __tablename__ = "auth_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(32))  # login_throttled | throttle_lifted
    actor: Mapped[str | None] = mapped_column(String(64))  # the admin; None for the gateway
    username: Mapped[str] = mapped_column(String(64), default="")  # '' unless a real account
    address: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ApiToken(Base):
    """Login tokens, stored as SHA-256 digests only (the token itself is shown once)."""

    __tablename__ = "api_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Person(Base):
    __tablename__ = "people"

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    kind: Mapped[str] = mapped_column(String(16), default="student")
    status: Mapped[str] = mapped_column(String(16), default="active")
    buildings: Mapped[list[str]] = mapped_column(JSON, default=list)
    gates: Mapped[list[str]] = mapped_column(JSON, default=list)
    windows: Mapped[list[Any]] = mapped_column(JSON, default=list)
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    cards: Mapped[list[str]] = mapped_column(JSON, default=list)
    pin_hash: Mapped[str | None] = mapped_column(String(256))
    counsellor: Mapped[str | None] = mapped_column(String(64))
    face_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    @classmethod
    def new(cls, person_id: str, now: datetime, **fields: Any) -> Person:
        """A row with every default set in memory (read before the flush): an active student
        of no building unless ``fields`` say otherwise."""
        values: dict[str, Any] = {
            "name": "",
            "kind": "student",
            "status": "active",
            "buildings": [],
            "gates": [],
            "windows": [],
            "cards": [],
            "face_opt_out": False,
            **fields,
        }
        return cls(person_id=person_id, created_at=now, updated_at=now, **values)


class FaceTemplate(Base):
    """One 128-d face template, AES-GCM encrypted with the template key."""

    __tablename__ = "face_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[str] = mapped_column(
        ForeignKey("people.person_id", ondelete="CASCADE"), index=True
    )
    template_enc: Mapped[bytes] = mapped_column(LargeBinary)
    photo_sha256: Mapped[str] = mapped_column(String(64))
    quality: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))


class EnrolmentPhoto(Base):
    """An enrolment photo kept only when configured, encrypted, until ``expires_at``."""

    __tablename__ = "enrolment_photos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[str] = mapped_column(
        ForeignKey("people.person_id", ondelete="CASCADE"), index=True
    )
    photo_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Consent(Base):
    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)  # kept after erasure
    purpose: Mapped[str] = mapped_column(String(64))  # e.g. "face_access"
    granted: Mapped[bool] = mapped_column(Boolean)
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime]
    evidence: Mapped[str] = mapped_column(Text, default="")
    withdrawn_at: Mapped[datetime | None]


class Erasure(Base):
    """An erasure request and, per gate, its confirmation (see GalleryDelivery)."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime]
    gallery_version: Mapped[int | None]
    completed_at: Mapped[datetime | None]


class WrongMatchReport(Base):
    """A guard's or admin's report that an access event matched the wrong person.

    ``state``: requested (the gate was asked for the probe), stored (its impostor example is in
    ``impostor_examples``), failed (``detail`` says why), erased (the example went with the
    person's face data). ``prev_hash``/``hash`` chain the reports (gateway/audit.py) over the
    fields that never change, so a report cannot be altered or removed unnoticed.
    """

    __tablename__ = "wrong_match_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    gate_key: Mapped[str] = mapped_column(String(200))
    event_ts: Mapped[datetime]
    reported_by: Mapped[str] = mapped_column(String(64))
    reported_at: Mapped[datetime]
    note: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    correlation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    updated_at: Mapped[datetime]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ImpostorExample(Base):
    """A probe reported as *not* ``person_id``, sealed with the template key (like templates)."""

    __tablename__ = "impostor_examples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(
        ForeignKey("wrong_match_reports.id", ondelete="CASCADE"), unique=True
    )
    person_id: Mapped[str] = mapped_column(
        ForeignKey("people.person_id", ondelete="CASCADE"), index=True
    )
    example_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


# --- gates, galleries, commands ------------------------------------------------------------


class Gate(Base):
    __tablename__ = "gates"

    gate_key: Mapped[str] = mapped_column(String(200), primary_key=True)  # site/building/gate
    site: Mapped[str] = mapped_column(String(64))
    building: Mapped[str] = mapped_column(String(64), index=True)
    gate_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8), default="in")
    name: Mapped[str] = mapped_column(String(128), default="")
    online: Mapped[bool | None]
    availability_at: Mapped[datetime | None]
    last_heartbeat_at: Mapped[datetime | None]
    heartbeat: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    gallery_version: Mapped[int | None]
    last_seq: Mapped[int | None]


class GalleryVersion(Base):
    __tablename__ = "gallery_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(200))
    erased_person_ids: Mapped[list[str]] = mapped_column(JSON, default=list)


class GalleryDelivery(Base):
    __tablename__ = "gallery_deliveries"
    __table_args__ = (UniqueConstraint("gate_key", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gate_key: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int]
    correlation_id: Mapped[str] = mapped_column(String(64), unique=True)
    sent_at: Mapped[datetime]
    acked_at: Mapped[datetime | None]
    applied: Mapped[bool | None]
    error: Mapped[str | None] = mapped_column(Text)
    erased_person_ids: Mapped[list[str]] = mapped_column(JSON, default=list)


class GateCommand(Base):
    __tablename__ = "gate_commands"

    correlation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    gate_key: Mapped[str] = mapped_column(String(200), index=True)
    command: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200), default="")
    issued_by: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime]
    ok: Mapped[bool | None]
    detail: Mapped[str | None] = mapped_column(Text)
    result_at: Mapped[datetime | None]


# --- events ----------------------------------------------------------------------------------


class AccessRecord(Base):
    """The tamper-evident access log: each row's hash chains to the previous row's."""

    __tablename__ = "access_log"
    __table_args__ = (
        Index("ix_access_log_ts", "ts"),
        # id last: the console pages newest first by (ts, id) from the index alone.
        Index("ix_access_log_person_ts", "person_id", "ts", "id"),
        Index("ix_access_log_gate_ts", "building", "gate_id", "ts", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    ts: Mapped[datetime]
    received_at: Mapped[datetime]
    site: Mapped[str] = mapped_column(String(64))
    building: Mapped[str] = mapped_column(String(64))
    gate_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8))
    decision: Mapped[str] = mapped_column(String(8))
    method: Mapped[str] = mapped_column(String(8))
    person_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    distance: Mapped[float | None] = mapped_column(Float)
    margin: Mapped[float | None] = mapped_column(Float)
    faces_in_view: Mapped[int] = mapped_column(Integer, default=0)
    seq: Mapped[int | None]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class DoorRecord(Base):
    __tablename__ = "door_events"
    __table_args__ = (Index("ix_door_events_gate_ts", "building", "gate_id", "ts"),)

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ts: Mapped[datetime]
    site: Mapped[str] = mapped_column(String(64))
    building: Mapped[str] = mapped_column(String(64))
    gate_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    open_for_s: Mapped[float | None] = mapped_column(Float)
    seq: Mapped[int | None]


class RuleInput(Base):
    """The rule journal: each stored message the alert rules read, in commit order.

    Written in the ingest transaction (after the chain lock, so ids grow in commit order) when
    one elected replica evaluates the rules (gateway/alerts/evaluator.py); that evaluator reads
    it in id order and deletes what it evaluated once older than ``rule_journal_keep_s``.
    """

    __tablename__ = "rule_inputs"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    received_at: Mapped[datetime]
    topic: Mapped[str] = mapped_column(String(512))
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class RuleCursor(Base):
    """How far the elected evaluator has evaluated the journal; moved in the transaction that
    applies the alerts, only by the holder that read it (so two evaluators never both apply)."""

    __tablename__ = "rule_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    holder: Mapped[str] = mapped_column(String(128))
    lease_until: Mapped[datetime]
    updated_at: Mapped[datetime]


class SeenEvent(Base):
    """Event ids already processed (all kinds), to drop at-least-once redeliveries."""

    __tablename__ = "seen_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    # The gateway (MQTT client id) that stored it: its own redeliveries get their points again.
    stored_by: Mapped[str | None] = mapped_column(String(64))


class DeadLetter(Base):
    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    topic: Mapped[str] = mapped_column(String(512))
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # first 64 KiB
    payload_size: Mapped[int]
    reason: Mapped[str] = mapped_column(Text)


class Presence(Base):
    __tablename__ = "presence"

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    building: Mapped[str] = mapped_column(String(64), primary_key=True)
    inside: Mapped[bool]
    since: Mapped[datetime]
    gate_id: Mapped[str] = mapped_column(String(64))
    irregular: Mapped[bool] = mapped_column(Boolean, default=False)


class LateReturn(Base):
    __tablename__ = "late_returns"
    __table_args__ = (Index("ix_late_returns_ts", "ts"),)

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    ts: Mapped[datetime]


# --- devices ---------------------------------------------------------------------------------


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (Index("ix_devices_board", "building", "room", "device_id"),)

    device_key: Mapped[str] = mapped_column(String(260), primary_key=True)  # site/bld/room/dev
    site: Mapped[str] = mapped_column(String(64))
    building: Mapped[str] = mapped_column(String(64), index=True)
    room: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    faults: Mapped[list[str]] = mapped_column(JSON, default=list)
    online: Mapped[bool] = mapped_column(Boolean, default=True)
    since: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DeviceStateRecord(Base):
    __tablename__ = "device_states"
    __table_args__ = (
        Index("ix_device_states_key_ts", "device_key", "ts"),
        Index("ix_device_states_ts", "ts"),  # the retention's delete
    )

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_key: Mapped[str] = mapped_column(String(260))
    ts: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    faults: Mapped[list[str]] = mapped_column(JSON, default=list)
    online: Mapped[bool] = mapped_column(Boolean)
    energy_kwh: Mapped[float | None] = mapped_column(Float)


class Watch(Base):
    """A student's "notify me": when one appliance finishes, or when a kind of appliance is free.

    Fired (``fired_at`` set, a notice written) in the ingest transaction that stores the state
    change, so a restart loses no watch and no replica fires one twice.
    """

    __tablename__ = "watches"
    __table_args__ = (
        Index("ix_watches_device_open", "device_key", "fired_at"),
        Index("ix_watches_building_open", "building", "fired_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[str] = mapped_column(
        ForeignKey("people.person_id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # finished | free
    device_key: Mapped[str | None] = mapped_column(String(260))  # finished: the appliance
    building: Mapped[str] = mapped_column(String(64))
    room: Mapped[str | None] = mapped_column(String(64))  # free: this room only, or any
    device_kind: Mapped[str | None] = mapped_column(String(32))  # free: washer, dryer, ...
    created_at: Mapped[datetime]
    fired_at: Mapped[datetime | None]
    fired_device_key: Mapped[str | None] = mapped_column(String(260))
    cancelled_at: Mapped[datetime | None]


# --- alerts ----------------------------------------------------------------------------------


class AlertRow(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_open", "type", "originator", "state"),
        Index("ix_alerts_state_sev", "state", "severity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    originator: Mapped[str] = mapped_column(String(300))
    site: Mapped[str] = mapped_column(String(64))
    building: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[int]
    title: Mapped[str] = mapped_column(String(300))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16))
    condition_active: Mapped[bool]
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]
    acked_by: Mapped[str | None] = mapped_column(String(64))
    acked_at: Mapped[datetime | None]
    assignee: Mapped[str | None] = mapped_column(String(64))
    cleared_by: Mapped[str | None] = mapped_column(String(64))
    cleared_at: Mapped[datetime | None]
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    escalated_at: Mapped[datetime | None]
    silenced: Mapped[bool] = mapped_column(Boolean, default=False)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime]


class AlertHistory(Base):
    """Every change to an alert (raised, repeated, acknowledged, assigned, escalated, ...)."""

    __tablename__ = "alert_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text, default="")


class SilenceRow(Base):
    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    originator: Mapped[str] = mapped_column(String(300))
    types: Mapped[list[str]] = mapped_column(JSON, default=list)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(String(300))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


# --- notifications -----------------------------------------------------------------------------


class NoticeRow(Base):
    """One notification to send (the durable outbox of gateway/notify).

    Written in the transaction that raises or changes its alert, so a crash between the alert
    and the delivery loses nothing; ``alert_id`` is NULL for a daily digest. ``dedup_key``
    (NULL for raise and clear notices) makes escalations and digests idempotent across ticks
    and replicas.
    """

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int | None] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), index=True
    )
    route: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # raise escalation clear digest
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16))  # queued retrying sent failed cancelled
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
