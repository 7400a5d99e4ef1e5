"""Each gate's gallery built, sealed, signed and handed to the broker (retained, QoS 1).

Only the people who may use a gate and the templates of those with face consent go into its
gallery (gateway/enrolment/galleries.py); each attempt is recorded on the delivery row.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from contracts.access import Direction, GateInfo, Person
from contracts.gallery_crypto import encrypt_gallery
from contracts.models import GalleryUpdate
from contracts.signing import MessageSigner
from contracts.topics import GateAddress, GateChannel, gate_topic
from gateway.db.schema import FaceTemplate, GalleryDelivery, Gate, ImpostorExample
from gateway.db.schema import Person as PersonRow
from gateway.enrolment.consent import face_eligible
from gateway.enrolment.deliveries import (
    NOT_AT_BROKER,
    add_version,
    in_new_version,
    latest_deliveries,
)
from gateway.enrolment.galleries import gate_gallery, person_from_row
from gateway.enrolment.queries import site_gates
from gateway.enrolment.reports import Publication
from gateway.enrolment.sealing import SealedDataError, decrypt_impostor, decrypt_template

if TYPE_CHECKING:
    from gateway.ports import Clock, Publisher

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """People, decrypted templates and impostor examples at one moment, for gate galleries."""

    people: dict[str, Person]
    templates: list[tuple[str, npt.NDArray[np.float32]]]
    problems: list[str]
    impostors: list[tuple[str, npt.NDArray[np.float32]]]


class GallerySender:
    """Creates gallery versions and sends each gate its gallery of a version."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        site: str,
        publisher: Publisher | None,
        signer: MessageSigner | None,
        gallery_key: bytes,
        template_key: bytes,
        producer: str,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._site = site
        self._publisher = publisher
        self._signer = signer
        self._gallery_key = gallery_key
        self._template_key = template_key
        self._producer = producer
        # Held from creating a version to sending it, so the broker's retained message is
        # always the newest (re-entrant: a retry may publish a new version).
        self.lock = threading.RLock()

    def publish(self, reason: str, actor: str, erased: Iterable[str] = ()) -> Publication:
        """Create a new gallery version and send each gate its gallery (retained, QoS 1)."""
        erased_ids = sorted(set(erased))
        with self.lock:
            version = in_new_version(
                self._sessions,
                self._clock,
                lambda session, now: add_version(
                    session, self._site, reason, actor, erased_ids, now
                ),
            )
            return self.send_version(version)

    def send_version(self, version: int) -> Publication:
        """Send every delivery of a version; log where it went."""
        with self._sessions() as session:
            ids = list(
                session.scalars(
                    select(GalleryDelivery.id).where(GalleryDelivery.version == version)
                )
            )
        publication = self.send(ids)
        if not ids:
            publication = Publication(version, (), (), (), publication.problems)
        log.info(
            "gallery version %s: delivered to %d gate(s), pending %d, failed %d",
            version,
            len(publication.delivered),
            len(publication.pending),
            len(publication.failed),
        )
        return publication

    def send(self, ids: Sequence[int]) -> Publication:
        """Build, encrypt and publish the gallery of each delivery; record the outcome."""
        with self._sessions() as session:
            snapshot = self._snapshot(session)
            deliveries = list(
                session.scalars(select(GalleryDelivery).where(GalleryDelivery.id.in_(ids)))
            )
            gates = {g.gate_key: g for g in site_gates(session, self._site)}
            newest = {key: d.version for key, d in latest_deliveries(session).items()}
        now = self._clock()
        delivered: list[str] = []
        pending: list[str] = []
        failed: list[str] = []
        version = 0
        for delivery in sorted(deliveries, key=lambda d: d.gate_key):
            version = max(version, delivery.version)
            if newest.get(delivery.gate_key, delivery.version) > delivery.version:
                continue  # superseded: sending it would replace the newer retained gallery
            error = self._deliver(delivery, gates.get(delivery.gate_key), snapshot, now)
            if error is None:
                delivered.append(delivery.gate_key)
            elif error.startswith(NOT_AT_BROKER):
                pending.append(delivery.gate_key)
            else:
                failed.append(delivery.gate_key)
            with self._sessions.begin() as session:
                row = session.get(GalleryDelivery, delivery.id)
                if row is not None and row.acked_at is None:
                    row.sent_at = self._clock()
                    row.error = error
        return Publication(
            version, tuple(delivered), tuple(pending), tuple(failed), tuple(snapshot.problems)
        )

    def _deliver(
        self, delivery: GalleryDelivery, gate: Gate | None, snapshot: Snapshot, now: datetime
    ) -> str | None:
        """Send one delivery; returns None when the broker has it, else the reason."""
        if gate is None:
            return f"gate {delivery.gate_key} is no longer in the gates table"
        try:
            address = GateAddress(gate.site, gate.building, gate.gate_id)
            info = GateInfo(gate.site, gate.building, gate.gate_id, Direction(gate.direction))
            gallery = gate_gallery(
                delivery.version,
                snapshot.people,
                snapshot.templates,
                info,
                now,
                snapshot.impostors,
            )
            blob = encrypt_gallery(gallery, self._gallery_key)
        except ValueError as exc:
            log.error("gallery for gate %s not built: %s", delivery.gate_key, exc)
            return f"cannot build the gallery for gate {delivery.gate_key}: {exc}"
        update = GalleryUpdate(
            producer=self._producer,
            version=delivery.version,
            correlation_id=delivery.correlation_id,
            blob_b64=base64.b64encode(blob).decode("ascii"),
        )
        if self._signer is None:
            return "no command_signing key is configured: gates refuse unsigned galleries"
        topic = gate_topic(address, GateChannel.GALLERY)
        try:
            if self._publisher is None:
                raise ConnectionError("no MQTT publisher configured")
            self._publisher.publish(topic, self._signer.sign(topic, update), qos=1, retain=True)
        except OSError as exc:  # ConnectionError and socket errors: the broker cannot take it now
            log.warning(
                "gallery version %s for gate %s kept for retry: %s",
                delivery.version,
                delivery.gate_key,
                exc,
            )
            return f"{NOT_AT_BROKER}: {exc}"
        except ValueError as exc:  # refused as it is (e.g. too large): re-sending will not help
            log.error(
                "gallery version %s for gate %s refused: %s",
                delivery.version,
                delivery.gate_key,
                exc,
            )
            return f"the broker client refused the gallery for gate {delivery.gate_key}: {exc}"
        log.info(
            "gallery version %s sent to gate %s: %d people, %d templates, %d impostor examples, "
            "correlation_id=%s",
            delivery.version,
            delivery.gate_key,
            len(gallery.people),
            len(gallery.template_owners),
            len(gallery.impostor_owners),
            delivery.correlation_id,
        )
        return None

    def _snapshot(self, session: Session) -> Snapshot:
        people: dict[str, Person] = {}
        problems: list[str] = []
        for row in session.scalars(select(PersonRow).order_by(PersonRow.person_id)):
            try:
                people[row.person_id] = person_from_row(row)
            except ValueError as exc:
                problems.append(f"left out of every gallery: {exc}")
        eligible = set(people) & face_eligible(session)
        templates = self._unsealed(
            session.scalars(select(FaceTemplate).order_by(FaceTemplate.id)),
            eligible,
            lambda t: decrypt_template(t.template_enc, t.person_id, self._template_key),
            "template",
            problems,
        )
        impostors = self._unsealed(
            session.scalars(select(ImpostorExample).order_by(ImpostorExample.id)),
            eligible,
            lambda e: decrypt_impostor(e.example_enc, e.person_id, self._template_key),
            "impostor example",
            problems,
        )
        for problem in problems:
            log.error("gallery: %s", problem)
        return Snapshot(people, templates, problems, impostors)

    @staticmethod
    def _unsealed(
        rows: Iterable[Any],
        eligible: set[str],
        open_row: Callable[[Any], npt.NDArray[np.float32]],
        what: str,
        problems: list[str],
    ) -> list[tuple[str, npt.NDArray[np.float32]]]:
        """(person_id, encoding) of the rows of eligible people that open; a row that does not
        is left out and named in ``problems``."""
        out: list[tuple[str, npt.NDArray[np.float32]]] = []
        for row in rows:
            if row.person_id not in eligible:
                continue
            try:
                out.append((row.person_id, open_row(row)))
            except SealedDataError as exc:
                problems.append(f"{what} {row.id} left out: {exc}")
        return out
