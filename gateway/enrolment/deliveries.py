"""Gallery versions and their delivery rows: new versions, what is due again, the gates' answers.

One delivery row per gate and version moves through these states (:func:`delivery_state`):

``pending``     not yet at the broker (``error`` says why); ``retry_pending`` re-sends it.
``sent``        the broker has it (retained, QoS 1); waiting for the gate's acknowledgement.
``applied``     the gate acknowledged it and uses this version (or a newer one).
``refused``     the gate acknowledged it without installing it (``error`` gives its reason).
``failed``      it could not be built or addressed (``error``); only a new version helps.
``superseded``  a newer version was addressed to the gate before this one was acknowledged.

``sent_at`` is the time of the last attempt to hand the delivery to the broker.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from contracts.models import GalleryAck
from gateway.db.schema import GalleryDelivery, GalleryVersion, Gate
from gateway.enrolment.queries import site_gates
from gateway.enrolment.reports import DeliveryStatus, report_from_row

log = logging.getLogger(__name__)

Made = TypeVar("Made")

NOT_AT_BROKER = "not at the broker yet"

_VERSION_ATTEMPTS = 5  # concurrent replicas may pick the same version number; retry with the next


def delivery_state(delivery: GalleryDelivery, *, latest: bool) -> str:
    """The state of a delivery row (see the module docstring); latest: the gate's newest."""
    if delivery.acked_at is not None:
        return "applied" if delivery.applied else "refused"
    if not latest:
        return "superseded"
    if delivery.error is None:
        return "sent"
    if delivery.error.startswith(NOT_AT_BROKER):
        return "pending"
    return "failed"


def delivery_status(
    delivery: GalleryDelivery, latest: bool, confirmed: Mapping[str, int]
) -> DeliveryStatus:
    """A delivery row as the API shows it, with the newest version its gate confirmed."""
    return report_from_row(
        DeliveryStatus,
        delivery,
        state=delivery_state(delivery, latest=latest),
        erased_person_ids=tuple(delivery.erased_person_ids or ()),
        confirmed_version=confirmed.get(delivery.gate_key),
    )


def latest_deliveries(session: Session) -> dict[str, GalleryDelivery]:
    """The newest delivery of each gate."""
    newest = (
        select(GalleryDelivery.gate_key, func.max(GalleryDelivery.version).label("version"))
        .group_by(GalleryDelivery.gate_key)
        .subquery()
    )
    rows = session.scalars(
        select(GalleryDelivery).join(
            newest,
            (GalleryDelivery.gate_key == newest.c.gate_key)
            & (GalleryDelivery.version == newest.c.version),
        )
    )
    return {d.gate_key: d for d in rows}


def confirmed_versions(session: Session) -> dict[str, int]:
    """The newest version each gate acknowledged applying."""
    rows = session.execute(
        select(GalleryDelivery.gate_key, func.max(GalleryDelivery.version))
        .where(GalleryDelivery.applied.is_(True))
        .group_by(GalleryDelivery.gate_key)
    )
    return {key: int(version) for key, version in rows}


def new_delivery(
    gate_key: str, version: int, now: datetime, why_pending: str, erased: list[str]
) -> GalleryDelivery:
    """A delivery row not yet at the broker, with a fresh correlation id."""
    return GalleryDelivery(
        gate_key=gate_key,
        version=version,
        correlation_id=uuid.uuid4().hex,
        sent_at=now,
        acked_at=None,
        applied=None,
        error=f"{NOT_AT_BROKER}: {why_pending}",
        erased_person_ids=erased,
    )


def in_new_version(
    sessions: sessionmaker[Session],
    clock: Callable[[], datetime],
    work: Callable[[Session, datetime], Made],
) -> Made:
    """Run work(session, now), which adds a version, in a transaction; retry version collisions."""
    for attempt in range(_VERSION_ATTEMPTS):
        try:
            with sessions.begin() as session:
                made = work(session, clock())
            return made
        except IntegrityError:
            # Another gateway replica took the same version number first.
            if attempt == _VERSION_ATTEMPTS - 1:
                raise
            log.warning("gallery version taken by another writer; retrying with the next")
    raise AssertionError("unreachable")


def add_version(
    session: Session, site: str, reason: str, actor: str, erased: list[str], now: datetime
) -> int:
    """Add the next gallery version and one pending delivery per gate; returns the version."""
    ours = session.scalar(select(func.max(GalleryVersion.version))) or 0
    # A gate refuses versions not above the one it holds (e.g. one built offline).
    held = session.scalar(select(func.max(Gate.gallery_version)).where(Gate.site == site))
    version = max(ours, held or 0) + 1
    session.add(
        GalleryVersion(
            version=version,
            created_at=now,
            created_by=actor,
            reason=reason[:200],
            erased_person_ids=erased,
        )
    )
    for gate in site_gates(session, site):
        session.add(new_delivery(gate.gate_key, version, now, "not sent yet", erased))
    session.flush()
    return version


def due_deliveries(
    session: Session,
    site: str,
    now: datetime,
    *,
    retry_after: timedelta,
    resend_unacked_after: timedelta,
) -> tuple[list[int], list[str]]:
    """Deliveries to send again (ids), and gates that hold a newer version from elsewhere.

    A gate new to the gates table gets a delivery of the newest version.
    """
    due: list[int] = []
    stale: list[str] = []
    newest = session.scalar(select(func.max(GalleryVersion.version)))
    if newest is None:
        return [], []
    latest = latest_deliveries(session)
    for gate in site_gates(session, site):
        delivery = latest.get(gate.gate_key)
        if delivery is None:
            row = new_delivery(gate.gate_key, newest, now, "new gate", [])
            session.add(row)
            session.flush()
            due.append(row.id)
            continue
        if delivery.acked_at is not None:
            held = gate.gallery_version
            if not delivery.applied and held is not None and held >= delivery.version:
                stale.append(gate.gate_key)
            continue
        if delivery.error is None:
            wait = resend_unacked_after  # at the broker, the gate is silent
        elif delivery.error.startswith(NOT_AT_BROKER):
            wait = retry_after
        else:
            continue  # could not be built: only a new version helps
        if now - delivery.sent_at >= wait:
            due.append(delivery.id)
    return due, stale


def record_ack(session: Session, gate_key: str, ack: GalleryAck, now: datetime) -> bool:
    """Record a gate's answer to a gallery update; False when it answers no delivery of its own."""
    gate = session.get(Gate, gate_key)
    if gate is not None:
        gate.gallery_version = ack.version
    delivery = session.scalar(
        select(GalleryDelivery).where(GalleryDelivery.correlation_id == ack.correlation_id)
    )
    if delivery is None:
        log.warning(
            "gallery ack from %s for unknown correlation_id %s (version %s) ignored",
            gate_key,
            ack.correlation_id,
            ack.version,
        )
        return False
    if delivery.gate_key != gate_key:
        log.warning(
            "gallery ack from %s for a delivery to %s ignored (correlation_id %s)",
            gate_key,
            delivery.gate_key,
            ack.correlation_id,
        )
        return False
    applied = ack.applied and ack.version >= delivery.version
    delivery.acked_at = now
    delivery.applied = applied
    if ack.error:
        delivery.error = ack.error[:2000]
    elif applied:
        delivery.error = None
    elif ack.applied:
        delivery.error = f"the gate reports version {ack.version}, not {delivery.version}"
    else:
        delivery.error = "refused by the gate without a reason"
    level = logging.INFO if applied else logging.WARNING
    log.log(
        level,
        "gallery version %s at gate %s: applied=%s gate_version=%s error=%s",
        delivery.version,
        gate_key,
        applied,
        ack.version,
        delivery.error,
    )
    return True
