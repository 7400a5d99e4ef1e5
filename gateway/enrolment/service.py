"""The enrolment service: consent, photos to templates, galleries to the gates, erasure, retention.

What is stored and how long is docs/privacy.md; each step is its own module in this package.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from contracts.models import GalleryAck
from contracts.signing import MessageSigner
from gateway.config import EnrolmentSettings
from gateway.db.schema import EnrolmentPhoto, Erasure, FaceTemplate, GalleryDelivery
from gateway.db.schema import Person as PersonRow
from gateway.enrolment.consent import (
    FACE_ACCESS,
    add_consent,
    check_may_enrol,
    consent_history,
    current_consent,
)
from gateway.enrolment.deliveries import (
    confirmed_versions,
    delivery_status,
    due_deliveries,
    in_new_version,
    latest_deliveries,
    record_ack,
)
from gateway.enrolment.erasure import (
    complete_erasures,
    erase_face_data,
    erasure_status,
    erasures_of,
)
from gateway.enrolment.errors import PersonNotFoundError
from gateway.enrolment.photos import EnrolmentEngine, Examined, PhotoExaminer
from gateway.enrolment.queries import count_rows, reports_of, site_gates
from gateway.enrolment.reports import (
    ConsentResult,
    DeliveryStatus,
    EnrolmentStatus,
    EnrolReport,
    ErasureReport,
    PhotoResult,
    Publication,
)
from gateway.enrolment.sealing import cipher, encrypt_photo, encrypt_template
from gateway.enrolment.sender import GallerySender

if TYPE_CHECKING:
    from gateway.ports import Clock, Publisher

log = logging.getLogger(__name__)


class EnrolmentService:
    """Consent, enrolment from photos, gallery publication to the gates, erasure, retention."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        settings: EnrolmentSettings,
        site: str,
        face_engine: EnrolmentEngine,
        publisher: Publisher | None,
        gallery_key: bytes,
        template_key: bytes,
        *,
        retry_after_s: float = 10.0,
        resend_unacked_after_s: float = 300.0,
        producer: str | None = None,
        signer: MessageSigner | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._settings = settings
        self._site = site
        self._gallery_key = gallery_key
        self._template_key = template_key
        self._retry_after = timedelta(seconds=retry_after_s)
        self._resend_unacked_after = timedelta(seconds=resend_unacked_after_s)
        self._photos = PhotoExaminer(face_engine, settings)
        self._galleries = GallerySender(
            sessions,
            clock,
            site,
            publisher,
            signer,
            gallery_key,
            template_key,
            producer or f"dormguard-gateway-{site}",
        )

    def start(self) -> None:
        """Check the keys and load the face models."""
        cipher(self._gallery_key)
        cipher(self._template_key)
        self._photos.start()

    # ------------------------------------------------------------------ consent

    def record_consent(
        self, person_id: str, purpose: str, granted: bool, evidence: str, actor: str
    ) -> ConsentResult:
        """Record a consent decision; withdrawing face_access erases the person's face data."""
        purpose = purpose.strip()
        if not purpose or len(purpose) > 64:
            raise ValueError("purpose must be 1-64 characters, e.g. 'face_access'")
        with self._sessions.begin() as session:
            record, had_face_consent = add_consent(
                session, person_id, purpose, granted, evidence, actor, self._clock()
            )
        log.info(
            "consent recorded: person=%s purpose=%s granted=%s by=%s",
            person_id,
            purpose,
            granted,
            actor,
        )
        erasure = None
        if purpose == FACE_ACCESS and not granted and had_face_consent:
            # Without a past grant nothing can have been enrolled, so there is nothing to erase.
            erasure = self.erase(person_id, actor, reason="face_access consent withdrawn")
        return ConsentResult(record, erasure)

    # ------------------------------------------------------------------ enrolment

    def enrol(self, person_id: str, photos: Sequence[tuple[str, bytes]], actor: str) -> EnrolReport:
        """Turn photos into encrypted templates and push a new gallery version to the gates."""
        if not photos:
            raise ValueError("no photos given: send at least one photo")
        with self._sessions() as session:
            check_may_enrol(session, person_id)
            known = set(
                session.scalars(
                    select(FaceTemplate.photo_sha256).where(FaceTemplate.person_id == person_id)
                )
            )
        results: list[PhotoResult] = []
        accepted: dict[int, Examined] = {}  # by position in results
        for name, data in photos:
            examined = self._photos.examine(name, data, known)
            if isinstance(examined, PhotoResult):
                results.append(examined)
                continue
            known.add(examined.sha256)
            accepted[len(results)] = examined
            results.append(examined.result)
        if accepted:
            template_ids = self._store(person_id, list(accepted.values()), actor)
            for position, template_id in zip(accepted, template_ids, strict=True):
                results[position] = replace(results[position], template_id=template_id)
        with self._sessions() as session:
            total = count_rows(session, FaceTemplate, FaceTemplate.person_id == person_id)
        log.info(
            "enrolment: person=%s accepted=%d rejected=%d templates=%d by=%s",
            person_id,
            len(accepted),
            len(results) - len(accepted),
            total,
            actor,
        )
        publication = None
        if accepted:
            publication = self.publish_galleries(
                f"enrolment of {person_id}: {len(accepted)} new template(s)", actor
            )
        return EnrolReport(person_id, tuple(results), total, publication)

    def _store(self, person_id: str, accepted: list[Examined], actor: str) -> list[int]:
        """Store the templates (and photos when configured); returns the template ids."""
        ids: list[int] = []
        with self._sessions.begin() as session:
            # Consent may have been withdrawn while the photos were being examined.
            check_may_enrol(session, person_id)
            now = self._clock()
            for item in accepted:
                template = FaceTemplate(
                    person_id=person_id,
                    template_enc=encrypt_template(item.encoding, person_id, self._template_key),
                    photo_sha256=item.sha256,
                    quality={
                        "width": item.result.width,
                        "height": item.result.height,
                        "face_px": item.result.face_px,
                        "sharpness": item.result.sharpness,
                    },
                    created_at=now,
                    created_by=actor,
                )
                session.add(template)
                if self._settings.keep_photos:
                    session.add(
                        EnrolmentPhoto(
                            person_id=person_id,
                            photo_enc=encrypt_photo(item.data, person_id, self._template_key),
                            created_at=now,
                            expires_at=now + timedelta(days=self._settings.photo_retention_days),
                        )
                    )
                session.flush()
                ids.append(template.id)
        return ids

    # ------------------------------------------------------------------ galleries

    def publish_galleries(self, reason: str, actor: str, erased: Iterable[str] = ()) -> Publication:
        """Create a new gallery version and send each gate its gallery (retained, QoS 1)."""
        return self._galleries.publish(reason, actor, erased)

    def retry_pending(self) -> int:
        """Re-send what the broker or a gate has not taken yet; returns how many were sent.

        Deliveries not at the broker are retried after ``retry_after_s``; deliveries at the broker
        but unacknowledged are re-published after ``resend_unacked_after_s`` (the broker may have
        lost its retained messages); gates new to the gates table get the newest version. A gate
        that refused a delivery because it holds a newer version from elsewhere gets a new version.
        """
        with self._galleries.lock:
            with self._sessions.begin() as session:
                due, stale_gates = due_deliveries(
                    session,
                    self._site,
                    self._clock(),
                    retry_after=self._retry_after,
                    resend_unacked_after=self._resend_unacked_after,
                )
            if stale_gates:
                publication = self.publish_galleries(
                    "gate(s) hold a newer version from elsewhere: " + ", ".join(stale_gates),
                    "system",
                )
                return len(publication.delivered)
            sent = 0
            if due:
                sent = len(self._galleries.send(due).delivered)
        with self._sessions.begin() as session:
            complete_erasures(session, self._site, self._clock())
        return sent

    def on_gallery_ack(self, gate_key: str, ack: GalleryAck) -> None:
        """Record a gate's answer to a gallery update; complete erasures every gate confirmed."""
        with self._sessions.begin() as session:
            now = self._clock()
            if record_ack(session, gate_key, ack, now):
                complete_erasures(session, self._site, now)

    # ------------------------------------------------------------------ erasure

    def erase(self, person_id: str, actor: str, *, reason: str = "requested") -> ErasureReport:
        """Delete a person's templates and photos and push galleries without them to every gate."""
        with self._galleries.lock:
            erased = in_new_version(
                self._sessions,
                self._clock,
                lambda session, now: erase_face_data(
                    session, self._site, person_id, actor, reason, now
                ),
            )
            publication = self._galleries.send_version(erased.version)
        with self._sessions.begin() as session:
            complete_erasures(session, self._site, self._clock())
            status = erasure_status(
                session, self._site, session.get_one(Erasure, erased.erasure_id)
            )
        log.info(
            "erasure %s of person %s (%s) by %s: %d template(s), %d photo(s) deleted; "
            "gallery version %s to %d gate(s)",
            status.id,
            person_id,
            reason,
            actor,
            erased.templates,
            erased.photos,
            status.gallery_version,
            len(publication.delivered) + len(publication.pending) + len(publication.failed),
        )
        return ErasureReport(status, erased.templates, erased.photos, publication)

    # ------------------------------------------------------------------ retention, status

    def purge_expired_photos(self) -> int:
        """Delete kept enrolment photos past their retention; returns how many."""
        with self._sessions.begin() as session:
            now = self._clock()
            expired = EnrolmentPhoto.expires_at <= now
            count = count_rows(session, EnrolmentPhoto, expired)
            if count:
                session.execute(delete(EnrolmentPhoto).where(expired))
        if count:
            log.info("photo retention: %d enrolment photo(s) deleted", count)
        return count

    def status(self, person_id: str) -> EnrolmentStatus:
        """Templates, consents, the newest delivery per gate, the erasures and the wrong-match
        reports of one person."""
        with self._sessions() as session:
            person = session.get(PersonRow, person_id)
            consents = consent_history(session, person_id)
            erasures = erasures_of(session, self._site, person_id)
            if person is None and not consents and not erasures:
                raise PersonNotFoundError(f"no person {person_id!r}")
            current = current_consent(session, person_id, FACE_ACCESS)
            latest = latest_deliveries(session)
            confirmed = confirmed_versions(session)
            deliveries = tuple(
                delivery_status(latest[g.gate_key], True, confirmed)
                for g in site_gates(session, self._site)
                if g.gate_key in latest
            )
            return EnrolmentStatus(
                person_id=person_id,
                known=person is not None,
                face_opt_out=bool(person is not None and person.face_opt_out),
                face_consent=current is not None and current.granted,
                templates=count_rows(session, FaceTemplate, FaceTemplate.person_id == person_id),
                photos_kept=count_rows(
                    session, EnrolmentPhoto, EnrolmentPhoto.person_id == person_id
                ),
                consents=consents,
                deliveries=deliveries,
                erasures=erasures,
                wrong_matches=reports_of(session, person_id),
            )

    def deliveries(self, gate_key: str | None = None, limit: int = 100) -> list[DeliveryStatus]:
        """Gallery deliveries, newest version first, optionally of one gate."""
        with self._sessions() as session:
            query = select(GalleryDelivery).order_by(
                GalleryDelivery.version.desc(), GalleryDelivery.gate_key
            )
            if gate_key is not None:
                query = query.where(GalleryDelivery.gate_key == gate_key)
            latest = {d.id for d in latest_deliveries(session).values()}
            confirmed = confirmed_versions(session)
            return [
                delivery_status(d, d.id in latest, confirmed)
                for d in session.scalars(query.limit(max(1, min(limit, 1000))))
            ]
