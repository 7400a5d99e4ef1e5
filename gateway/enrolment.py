"""Face enrolment with consent, per-gate gallery publication and erasure confirmed by every gate.

What is stored (see docs/privacy.md):

- ``face_templates.template_enc``: ``b"DGT1" + nonce(12) + AES-256-GCM(128 little-endian
  float32)`` under the template key, with ``b"DGT1\\0" + person_id`` as associated data, so a
  template copied onto another person's row does not open.
- ``enrolment_photos.photo_enc`` (only with ``keep_photos``): ``b"DGP1" + nonce + AES-GCM(photo)``
  the same way, deleted by :meth:`EnrolmentService.purge_expired_photos` after the retention.
- consents (kept after erasure, as the record of what was agreed and withdrawn), erasures, gallery
  versions and one delivery row per gate and version.

A gallery version is global; each gate gets its own gallery at that version holding only the
people who may use that gate (:func:`contracts.access.may_use_gate`) and the templates of those
among them with
granted ``face_access`` consent who did not opt out of face recognition.

Delivery rows move through these states (:func:`delivery_state`):

``pending``     not yet at the broker (``error`` says why); ``retry_pending`` re-sends it.
``sent``        the broker has it (retained, QoS 1); waiting for the gate's acknowledgement.
``applied``     the gate acknowledged it and uses this version (or a newer one).
``refused``     the gate acknowledged it without installing it (``error`` gives its reason).
``failed``      it could not be built or addressed (``error``); only a new version helps.
``superseded``  a newer version was addressed to the gate before this one was acknowledged.

``sent_at`` is the time of the last attempt to hand the delivery to the broker.

An erasure deletes the person's templates and photos in the same transaction that creates the
gallery version leaving them out and its delivery rows, so a crash or a broker outage can delay
but never lose it; it is complete once every gate has applied that version or a newer one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from contracts.access import Direction, GateInfo, Person, may_use_gate
from contracts.credentials import normalize_card_uid
from contracts.gallery import EMBEDDING_DIM, FORMAT, Gallery, gallery_from_json
from contracts.gallery_crypto import encrypt_gallery
from contracts.models import GalleryAck, GalleryUpdate
from contracts.signing import MessageSigner
from contracts.topics import GateAddress, GateChannel, gate_topic
from edge.gate.enrol import measure_photo, quality_problem
from edge.gate.faces import FaceEngine, decode_image
from gateway.config import EnrolmentSettings
from gateway.db.schema import (
    Consent,
    EnrolmentPhoto,
    Erasure,
    FaceTemplate,
    GalleryDelivery,
    GalleryVersion,
    Gate,
)
from gateway.db.schema import Person as PersonRow
from gateway.services import Clock, Publisher

log = logging.getLogger(__name__)

FACE_ACCESS = "face_access"
TEMPLATE_MAGIC = b"DGT1"
PHOTO_MAGIC = b"DGP1"
KEY_SIZE = 32
NOT_AT_BROKER = "not at the broker yet"

_NONCE_SIZE = 12
_TAG_SIZE = 16
_TEMPLATE_BYTES = EMBEDDING_DIM * 4
_VERSION_ATTEMPTS = 5  # concurrent replicas may pick the same version number; retry with the next


# --- errors ----------------------------------------------------------------------------------


class EnrolmentError(Exception):
    """Enrolment cannot go ahead; the message says why."""


class PersonNotFoundError(EnrolmentError, LookupError):
    """No such person in the people table."""


class ConsentRequiredError(EnrolmentError):
    """The person has not granted (or has withdrawn) consent to face recognition."""


class FaceOptedOutError(EnrolmentError):
    """The person chose card/PIN instead of face recognition."""


class SealedDataError(ValueError):
    """A sealed template or photo does not open: wrong key, wrong person, or tampered."""


# --- encryption at rest ----------------------------------------------------------------------


def _aead(key: bytes) -> AESGCM:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        size = len(key) if isinstance(key, bytes) else type(key).__name__
        raise ValueError(f"encryption key must be {KEY_SIZE} bytes, got {size}")
    return AESGCM(key)


def _associated_data(magic: bytes, person_id: str) -> bytes:
    return magic + b"\x00" + person_id.encode("utf-8")


def _seal(magic: bytes, plaintext: bytes, person_id: str, key: bytes) -> bytes:
    nonce = os.urandom(_NONCE_SIZE)
    sealed = _aead(key).encrypt(nonce, plaintext, _associated_data(magic, person_id))
    return magic + nonce + sealed


def _open(magic: bytes, blob: bytes, person_id: str, key: bytes, what: str) -> bytes:
    header = len(magic) + _NONCE_SIZE
    if len(blob) < header + _TAG_SIZE or blob[: len(magic)] != magic:
        raise SealedDataError(f"{what} of person {person_id!r} is not a sealed dormguard {what}")
    try:
        return _aead(key).decrypt(
            blob[len(magic) : header], blob[header:], _associated_data(magic, person_id)
        )
    except InvalidTag:
        raise SealedDataError(
            f"{what} of person {person_id!r} does not open: wrong key, wrong person or tampered"
        ) from None


def encrypt_template(encoding: npt.ArrayLike, person_id: str, key: bytes) -> bytes:
    """Seal a 128-d encoding for storage, bound to its person (AES-256-GCM)."""
    vector = np.asarray(encoding, dtype="<f4")
    if vector.shape != (EMBEDDING_DIM,):
        raise ValueError(f"a template has {EMBEDDING_DIM} values, got shape {vector.shape}")
    if not np.isfinite(vector).all():
        raise ValueError("a template must not contain NaN or infinite values")
    return _seal(TEMPLATE_MAGIC, vector.tobytes(), person_id, key)


def decrypt_template(blob: bytes, person_id: str, key: bytes) -> npt.NDArray[np.float32]:
    """Open a sealed template; SealedDataError for a wrong key, wrong person or tampering."""
    raw = _open(TEMPLATE_MAGIC, blob, person_id, key, "template")
    if len(raw) != _TEMPLATE_BYTES:
        raise SealedDataError(
            f"template of person {person_id!r} holds {len(raw)} bytes, not {_TEMPLATE_BYTES}"
        )
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def encrypt_photo(data: bytes, person_id: str, key: bytes) -> bytes:
    """Seal an enrolment photo for storage, bound to its person (AES-256-GCM)."""
    return _seal(PHOTO_MAGIC, data, person_id, key)


def decrypt_photo(blob: bytes, person_id: str, key: bytes) -> bytes:
    """Open a sealed enrolment photo; SealedDataError when it does not open."""
    return _open(PHOTO_MAGIC, blob, person_id, key, "photo")


# --- pure gallery rules ----------------------------------------------------------------------


def gate_gallery(
    version: int,
    people: Mapping[str, Person],
    templates: Sequence[tuple[str, npt.NDArray[np.float32]]],
    gate: GateInfo,
    now: datetime,
) -> Gallery:
    """The gallery of one gate: the people who may use it and the templates of those people."""
    allowed = {pid: p for pid, p in people.items() if may_use_gate(p, gate, now)}
    rows = [(pid, encoding) for pid, encoding in templates if pid in allowed]
    if rows:
        encodings = np.stack([encoding for _, encoding in rows]).astype(np.float32)
    else:
        encodings = np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    return Gallery(
        version=version,
        people=allowed,
        template_owners=tuple(pid for pid, _ in rows),
        encodings=encodings,
    )


def person_from_row(row: PersonRow) -> Person:
    """The gate's view of a people-table row, validated as the gate will read it.

    ValueError names the person and the field. Windows may leave out ``days`` (every day).
    """
    try:
        obj = {
            "person_id": row.person_id,
            "status": row.status,
            "kind": row.kind,
            "buildings": sorted(set(_str_list(row.buildings, "buildings"))),
            "gates": sorted(set(_str_list(row.gates, "gates"))),
            "windows": [_window_obj(w) for w in row.windows or []],
            "valid_from": None if row.valid_from is None else row.valid_from.isoformat(),
            "valid_until": None if row.valid_until is None else row.valid_until.isoformat(),
            "card_uids": sorted({_card(c, i) for i, c in enumerate(_str_list(row.cards, "cards"))}),
            "pin_hash": row.pin_hash or None,
        }
        document = {"format": FORMAT, "version": 0, "people": [obj], "templates": []}
        gallery = gallery_from_json(json.dumps(document).encode("utf-8"))
    except ValueError as exc:
        detail = str(exc).replace("people[0].", "").replace("people[0]: ", "")
        raise ValueError(f"person {row.person_id!r}: {detail}") from None
    return gallery.people[row.person_id]


def _str_list(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: expected a list of strings")
    return value


def _window_obj(value: object) -> object:
    if isinstance(value, dict) and "days" not in value:
        return {"days": list(range(7)), **value}
    return value


def _card(value: str, index: int) -> str:
    try:
        return normalize_card_uid(value)
    except ValueError as exc:
        raise ValueError(f"cards[{index}]: {exc}") from None


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


# --- reports ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhotoResult:
    """What became of one uploaded photo, with its quality figures."""

    name: str
    ok: bool
    error: str | None
    size_bytes: int
    width: int | None = None
    height: int | None = None
    faces: int | None = None
    face_px: int | None = None
    sharpness: float | None = None
    template_id: int | None = None


@dataclass(frozen=True, slots=True)
class Publication:
    """A gallery version and where it went: gate keys by outcome, people left out and why."""

    version: int
    delivered: tuple[str, ...]
    pending: tuple[str, ...]
    failed: tuple[str, ...]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EnrolReport:
    """The outcome of one enrolment request: per photo, the template count, the publication."""

    person_id: str
    photos: tuple[PhotoResult, ...]
    templates_total: int
    publication: Publication | None

    @property
    def accepted(self) -> int:
        return sum(1 for p in self.photos if p.ok)

    @property
    def rejected(self) -> int:
        return sum(1 for p in self.photos if not p.ok)


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    id: int
    person_id: str
    purpose: str
    granted: bool
    recorded_at: datetime
    recorded_by: str
    evidence: str
    withdrawn_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """One delivery row and its state, with the newest version the gate confirmed applying."""

    gate_key: str
    version: int
    correlation_id: str
    state: str
    sent_at: datetime
    acked_at: datetime | None
    error: str | None
    erased_person_ids: tuple[str, ...]
    confirmed_version: int | None


@dataclass(frozen=True, slots=True)
class ErasureStatus:
    id: int
    person_id: str
    requested_at: datetime
    requested_by: str
    gallery_version: int | None
    completed_at: datetime | None
    unconfirmed_gates: tuple[str, ...]

    @property
    def pending(self) -> bool:
        return self.completed_at is None


@dataclass(frozen=True, slots=True)
class ErasureReport:
    erasure: ErasureStatus
    templates_deleted: int
    photos_deleted: int
    publication: Publication


@dataclass(frozen=True, slots=True)
class ConsentResult:
    consent: ConsentRecord
    erasure: ErasureReport | None


@dataclass(frozen=True, slots=True)
class EnrolmentStatus:
    person_id: str
    known: bool  # the person is in the people table (history outlives the row)
    face_opt_out: bool
    face_consent: bool
    templates: int
    photos_kept: int
    consents: tuple[ConsentRecord, ...]
    deliveries: tuple[DeliveryStatus, ...]  # the newest delivery of each gate
    erasures: tuple[ErasureStatus, ...]  # newest first

    @property
    def pending_erasures(self) -> tuple[ErasureStatus, ...]:
        return tuple(e for e in self.erasures if e.pending)


class EnrolmentEngine(FaceEngine, Protocol):
    """A face engine whose models load in start()."""

    def start(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """People and decrypted templates at one moment, for building gate galleries."""

    people: dict[str, Person]
    templates: list[tuple[str, npt.NDArray[np.float32]]]
    problems: list[str]


@dataclass(frozen=True, slots=True)
class _Examined:
    result: PhotoResult
    data: bytes
    sha256: str
    encoding: npt.NDArray[np.float32]


# --- the service -----------------------------------------------------------------------------


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
        self._signer = signer
        self._clock = clock
        self._settings = settings
        self._site = site
        self._engine = face_engine
        self._publisher = publisher
        self._gallery_key = gallery_key
        self._template_key = template_key
        self._retry_after = timedelta(seconds=retry_after_s)
        self._resend_unacked_after = timedelta(seconds=resend_unacked_after_s)
        self._producer = producer or f"dormguard-gateway-{site}"
        # One publication at a time, so the broker's retained message is always the newest.
        self._publish_lock = threading.RLock()
        self._engine_lock = threading.Lock()

    def start(self) -> None:
        """Check the keys and load the face models."""
        _aead(self._gallery_key)
        _aead(self._template_key)
        self._engine.start()

    # ------------------------------------------------------------------ consent

    def record_consent(
        self, person_id: str, purpose: str, granted: bool, evidence: str, actor: str
    ) -> ConsentResult:
        """Record a consent decision; withdrawing face_access erases the person's face data."""
        purpose = purpose.strip()
        if not purpose or len(purpose) > 64:
            raise ValueError("purpose must be 1-64 characters, e.g. 'face_access'")
        with self._sessions.begin() as session:
            self._person(session, person_id)
            now = self._clock()
            had_face_consent = purpose == FACE_ACCESS and bool(
                session.scalar(
                    select(func.count())
                    .select_from(Consent)
                    .where(Consent.person_id == person_id, Consent.purpose == FACE_ACCESS)
                    .where(Consent.granted.is_(True))
                )
            )
            if not granted:
                for active in session.scalars(
                    select(Consent).where(
                        Consent.person_id == person_id,
                        Consent.purpose == purpose,
                        Consent.granted.is_(True),
                        Consent.withdrawn_at.is_(None),
                    )
                ):
                    active.withdrawn_at = now
            row = Consent(
                person_id=person_id,
                purpose=purpose,
                granted=granted,
                recorded_by=actor,
                recorded_at=now,
                evidence=evidence,
                withdrawn_at=None,
            )
            session.add(row)
            session.flush()
            record = _consent_record(row)
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
            self._check_may_enrol(session, person_id)
            known = set(
                session.scalars(
                    select(FaceTemplate.photo_sha256).where(FaceTemplate.person_id == person_id)
                )
            )
        results: list[PhotoResult] = []
        accepted: dict[int, _Examined] = {}  # by position in results
        for name, data in photos:
            examined = self._examine(name, data, known)
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
            total = _count(session, FaceTemplate, FaceTemplate.person_id == person_id)
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

    def _check_may_enrol(self, session: Session, person_id: str) -> None:
        person = self._person(session, person_id)
        if person.face_opt_out:
            raise FaceOptedOutError(
                f"person {person_id!r} opted out of face recognition and uses card or PIN; "
                "no face is enrolled"
            )
        consent = _current_consent(session, person_id, FACE_ACCESS)
        if consent is None or not consent.granted:
            state = "was withdrawn" if consent is not None else "has not been recorded"
            raise ConsentRequiredError(
                f"consent to face recognition ({FACE_ACCESS!r}) for person {person_id!r} "
                f"{state}; record it first (POST /api/people/{person_id}/consent)"
            )

    def _examine(self, name: str, data: bytes, known: set[str]) -> _Examined | PhotoResult:
        """Check one photo and encode its face; a PhotoResult alone means it was refused."""
        size = len(data)
        limit = self._settings.max_photo_bytes
        if size == 0:
            return PhotoResult(name, False, f"{name}: empty file", size)
        if size > limit:
            return PhotoResult(
                name, False, f"{name}: larger than the limit of {limit} bytes per photo", size
            )
        try:
            image = decode_image(data, where=name)
        except ValueError as exc:
            return PhotoResult(name, False, str(exc), size)
        height, width = (int(n) for n in image.shape[:2])
        with self._engine_lock:
            detection = self._engine.detect(image)
            quality = measure_photo(image, detection)
            problem = quality_problem(
                quality,
                min_face_px=self._settings.min_face_px,
                min_sharpness=self._settings.min_sharpness,
            )
            encodings: list[np.ndarray] = []
            if not problem:
                encodings = self._engine.encode(detection.rgb, detection.boxes[:1])
        figures: dict[str, Any] = {
            "width": width,
            "height": height,
            "faces": quality.faces,
            "face_px": quality.face_px,
            "sharpness": None if quality.sharpness is None else round(quality.sharpness, 1),
        }
        digest = hashlib.sha256(data).hexdigest()
        if not problem and not encodings:
            problem = "the face could not be encoded"
        if not problem and digest in known:
            problem = "this photo is already enrolled for this person"
        if problem:
            return PhotoResult(name, False, f"{name}: {problem}", size, **figures)
        encoding = np.asarray(encodings[0], dtype=np.float32)
        if encoding.shape != (EMBEDDING_DIM,) or not np.isfinite(encoding).all():
            return PhotoResult(
                name, False, f"{name}: the face encoding is invalid", size, **figures
            )
        return _Examined(PhotoResult(name, True, None, size, **figures), data, digest, encoding)

    def _store(self, person_id: str, accepted: list[_Examined], actor: str) -> list[int]:
        """Store the templates (and photos when configured); returns the template ids."""
        ids: list[int] = []
        with self._sessions.begin() as session:
            # Consent may have been withdrawn while the photos were being examined.
            self._check_may_enrol(session, person_id)
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
        erased_ids = sorted(set(erased))
        with self._publish_lock:
            version = self._in_new_version(
                lambda session, now: self._add_version(session, reason, actor, erased_ids, now)
            )
            return self._send_version(version)

    def retry_pending(self) -> int:
        """Re-send what the broker or a gate has not taken yet; returns how many were sent.

        Deliveries not at the broker are retried after ``retry_after_s``; deliveries at the broker
        but unacknowledged are re-published after ``resend_unacked_after_s`` (the broker may have
        lost its retained messages); gates new to the gates table get the newest version. A gate
        that refused a delivery because it holds a newer version from elsewhere gets a new version.
        """
        with self._publish_lock:
            due, stale_gates = self._due_deliveries(self._clock())
            if stale_gates:
                publication = self.publish_galleries(
                    "gate(s) hold a newer version from elsewhere: " + ", ".join(stale_gates),
                    "system",
                )
                return len(publication.delivered)
            sent = 0
            if due:
                sent = len(self._send_deliveries(due).delivered)
        with self._sessions.begin() as session:
            self._complete_erasures(session, self._clock())
        return sent

    def _due_deliveries(self, now: datetime) -> tuple[list[int], list[str]]:
        due: list[int] = []
        stale: list[str] = []
        with self._sessions.begin() as session:
            newest = session.scalar(select(func.max(GalleryVersion.version)))
            if newest is None:
                return [], []
            latest = _latest_deliveries(session)
            for gate in self._gates(session):
                delivery = latest.get(gate.gate_key)
                if delivery is None:
                    row = GalleryDelivery(
                        gate_key=gate.gate_key,
                        version=newest,
                        correlation_id=uuid.uuid4().hex,
                        sent_at=now,
                        acked_at=None,
                        applied=None,
                        error=f"{NOT_AT_BROKER}: new gate",
                        erased_person_ids=[],
                    )
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
                    wait = self._resend_unacked_after  # at the broker, the gate is silent
                elif delivery.error.startswith(NOT_AT_BROKER):
                    wait = self._retry_after
                else:
                    continue  # could not be built: only a new version helps
                if now - delivery.sent_at >= wait:
                    due.append(delivery.id)
        return due, stale

    def _in_new_version(self, work: Callable[[Session, datetime], int]) -> int:
        """Run work(session, now) -> version in a transaction, retrying version collisions."""
        for attempt in range(_VERSION_ATTEMPTS):
            try:
                with self._sessions.begin() as session:
                    version: int = work(session, self._clock())
                return version
            except IntegrityError:
                # Another gateway replica took the same version number first.
                if attempt == _VERSION_ATTEMPTS - 1:
                    raise
                log.warning("gallery version taken by another writer; retrying with the next")
        raise AssertionError("unreachable")

    def _add_version(
        self, session: Session, reason: str, actor: str, erased: list[str], now: datetime
    ) -> int:
        """Add the next gallery version and one pending delivery per gate; returns the version."""
        ours = session.scalar(select(func.max(GalleryVersion.version))) or 0
        # A gate refuses versions not above the one it holds (e.g. one built offline).
        held = session.scalar(select(func.max(Gate.gallery_version)).where(Gate.site == self._site))
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
        for gate in self._gates(session):
            session.add(
                GalleryDelivery(
                    gate_key=gate.gate_key,
                    version=version,
                    correlation_id=uuid.uuid4().hex,
                    sent_at=now,
                    acked_at=None,
                    applied=None,
                    error=f"{NOT_AT_BROKER}: not sent yet",
                    erased_person_ids=erased,
                )
            )
        session.flush()
        return version

    def _send_version(self, version: int) -> Publication:
        with self._sessions() as session:
            ids = list(
                session.scalars(
                    select(GalleryDelivery.id).where(GalleryDelivery.version == version)
                )
            )
        publication = self._send_deliveries(ids)
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

    def _send_deliveries(self, ids: Sequence[int]) -> Publication:
        """Build, encrypt and publish the gallery of each delivery; record the outcome."""
        with self._sessions() as session:
            snapshot = self._snapshot(session)
            deliveries = list(
                session.scalars(select(GalleryDelivery).where(GalleryDelivery.id.in_(ids)))
            )
            gates = {g.gate_key: g for g in self._gates(session)}
            newest = {key: d.version for key, d in _latest_deliveries(session).items()}
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
        self, delivery: GalleryDelivery, gate: Gate | None, snapshot: _Snapshot, now: datetime
    ) -> str | None:
        """Send one delivery; returns None when the broker has it, else the reason."""
        if gate is None:
            return f"gate {delivery.gate_key} is no longer in the gates table"
        try:
            address = GateAddress(gate.site, gate.building, gate.gate_id)
            info = GateInfo(gate.site, gate.building, gate.gate_id, Direction(gate.direction))
            gallery = gate_gallery(delivery.version, snapshot.people, snapshot.templates, info, now)
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
            "gallery version %s sent to gate %s: %d people, %d templates, correlation_id=%s",
            delivery.version,
            delivery.gate_key,
            len(gallery.people),
            len(gallery.template_owners),
            delivery.correlation_id,
        )
        return None

    def _snapshot(self, session: Session) -> _Snapshot:
        people: dict[str, Person] = {}
        problems: list[str] = []
        for row in session.scalars(select(PersonRow).order_by(PersonRow.person_id)):
            try:
                people[row.person_id] = person_from_row(row)
            except ValueError as exc:
                problems.append(f"left out of every gallery: {exc}")
        faces = _face_eligible(session)
        templates: list[tuple[str, npt.NDArray[np.float32]]] = []
        for template in session.scalars(select(FaceTemplate).order_by(FaceTemplate.id)):
            if template.person_id not in people or template.person_id not in faces:
                continue
            try:
                encoding = decrypt_template(
                    template.template_enc, template.person_id, self._template_key
                )
            except SealedDataError as exc:
                problems.append(f"template {template.id} left out: {exc}")
                continue
            templates.append((template.person_id, encoding))
        for problem in problems:
            log.error("gallery: %s", problem)
        return _Snapshot(people, templates, problems)

    def on_gallery_ack(self, gate_key: str, ack: GalleryAck) -> None:
        """Record a gate's answer to a gallery update; complete erasures every gate confirmed."""
        with self._sessions.begin() as session:
            now = self._clock()
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
                return
            if delivery.gate_key != gate_key:
                log.warning(
                    "gallery ack from %s for a delivery to %s ignored (correlation_id %s)",
                    gate_key,
                    delivery.gate_key,
                    ack.correlation_id,
                )
                return
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
            self._complete_erasures(session, now)

    # ------------------------------------------------------------------ erasure

    def erase(self, person_id: str, actor: str, *, reason: str = "requested") -> ErasureReport:
        """Delete a person's templates and photos and push galleries without them to every gate."""
        counts: dict[str, int] = {}

        def work(session: Session, now: datetime) -> int:
            self._person(session, person_id)
            counts["templates"] = _count(session, FaceTemplate, FaceTemplate.person_id == person_id)
            counts["photos"] = _count(
                session, EnrolmentPhoto, EnrolmentPhoto.person_id == person_id
            )
            session.execute(delete(FaceTemplate).where(FaceTemplate.person_id == person_id))
            session.execute(delete(EnrolmentPhoto).where(EnrolmentPhoto.person_id == person_id))
            erasure = Erasure(
                person_id=person_id,
                requested_by=actor,
                requested_at=now,
                gallery_version=None,
                completed_at=None,
            )
            session.add(erasure)
            version = self._add_version(
                session, f"erasure of {person_id}: {reason}", actor, [person_id], now
            )
            erasure.gallery_version = version
            session.flush()
            counts["erasure_id"] = erasure.id
            return version

        with self._publish_lock:
            publication = self._send_version(self._in_new_version(work))
        with self._sessions.begin() as session:
            self._complete_erasures(session, self._clock())
            status = self._erasure_status(session, session.get_one(Erasure, counts["erasure_id"]))
        log.info(
            "erasure %s of person %s (%s) by %s: %d template(s), %d photo(s) deleted; "
            "gallery version %s to %d gate(s)",
            status.id,
            person_id,
            reason,
            actor,
            counts["templates"],
            counts["photos"],
            status.gallery_version,
            len(publication.delivered) + len(publication.pending) + len(publication.failed),
        )
        return ErasureReport(status, counts["templates"], counts["photos"], publication)

    def _complete_erasures(self, session: Session, now: datetime) -> None:
        pending = list(
            session.scalars(
                select(Erasure).where(
                    Erasure.completed_at.is_(None), Erasure.gallery_version.is_not(None)
                )
            )
        )
        if not pending:
            return
        gate_keys = [g.gate_key for g in self._gates(session)]
        confirmed = _confirmed_versions(session)
        for erasure in pending:
            version = erasure.gallery_version or 0
            if all(confirmed.get(key, 0) >= version for key in gate_keys):
                erasure.completed_at = now
                log.info(
                    "erasure %s of person %s confirmed by all %d gate(s) (version %s or newer)",
                    erasure.id,
                    erasure.person_id,
                    len(gate_keys),
                    version,
                )

    def _erasure_status(self, session: Session, erasure: Erasure) -> ErasureStatus:
        unconfirmed: tuple[str, ...] = ()
        if erasure.completed_at is None:
            confirmed = _confirmed_versions(session)
            version = erasure.gallery_version or 0
            unconfirmed = tuple(
                g.gate_key for g in self._gates(session) if confirmed.get(g.gate_key, 0) < version
            )
        return ErasureStatus(
            id=erasure.id,
            person_id=erasure.person_id,
            requested_at=erasure.requested_at,
            requested_by=erasure.requested_by,
            gallery_version=erasure.gallery_version,
            completed_at=erasure.completed_at,
            unconfirmed_gates=unconfirmed,
        )

    # ------------------------------------------------------------------ retention, status

    def purge_expired_photos(self) -> int:
        """Delete kept enrolment photos past their retention; returns how many."""
        with self._sessions.begin() as session:
            now = self._clock()
            expired = EnrolmentPhoto.expires_at <= now
            count = _count(session, EnrolmentPhoto, expired)
            if count:
                session.execute(delete(EnrolmentPhoto).where(expired))
        if count:
            log.info("photo retention: %d enrolment photo(s) deleted", count)
        return count

    def status(self, person_id: str) -> EnrolmentStatus:
        """Templates, consents, the newest delivery per gate and the erasures of one person."""
        with self._sessions() as session:
            person = session.get(PersonRow, person_id)
            consents = tuple(
                _consent_record(c)
                for c in session.scalars(
                    select(Consent).where(Consent.person_id == person_id).order_by(Consent.id)
                )
            )
            erasures = list(
                session.scalars(
                    select(Erasure)
                    .where(Erasure.person_id == person_id)
                    .order_by(Erasure.id.desc())
                )
            )
            if person is None and not consents and not erasures:
                raise PersonNotFoundError(f"no person {person_id!r}")
            current = _current_consent(session, person_id, FACE_ACCESS)
            latest = _latest_deliveries(session)
            confirmed = _confirmed_versions(session)
            deliveries = tuple(
                _delivery_status(latest[g.gate_key], True, confirmed)
                for g in self._gates(session)
                if g.gate_key in latest
            )
            return EnrolmentStatus(
                person_id=person_id,
                known=person is not None,
                face_opt_out=bool(person is not None and person.face_opt_out),
                face_consent=current is not None and current.granted,
                templates=_count(session, FaceTemplate, FaceTemplate.person_id == person_id),
                photos_kept=_count(session, EnrolmentPhoto, EnrolmentPhoto.person_id == person_id),
                consents=consents,
                deliveries=deliveries,
                erasures=tuple(self._erasure_status(session, e) for e in erasures),
            )

    def deliveries(self, gate_key: str | None = None, limit: int = 100) -> list[DeliveryStatus]:
        """Gallery deliveries, newest version first, optionally of one gate."""
        with self._sessions() as session:
            query = select(GalleryDelivery).order_by(
                GalleryDelivery.version.desc(), GalleryDelivery.gate_key
            )
            if gate_key is not None:
                query = query.where(GalleryDelivery.gate_key == gate_key)
            latest = {d.id for d in _latest_deliveries(session).values()}
            confirmed = _confirmed_versions(session)
            return [
                _delivery_status(d, d.id in latest, confirmed)
                for d in session.scalars(query.limit(max(1, min(limit, 1000))))
            ]

    # ------------------------------------------------------------------ helpers

    def _person(self, session: Session, person_id: str) -> PersonRow:
        person = session.get(PersonRow, person_id)
        if person is None:
            raise PersonNotFoundError(f"no person {person_id!r}")
        return person

    def _gates(self, session: Session) -> list[Gate]:
        return list(
            session.scalars(select(Gate).where(Gate.site == self._site).order_by(Gate.gate_key))
        )


def _count(session: Session, table: type[Any], *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def _current_consent(session: Session, person_id: str, purpose: str) -> Consent | None:
    return session.scalar(
        select(Consent)
        .where(Consent.person_id == person_id, Consent.purpose == purpose)
        .order_by(Consent.id.desc())
        .limit(1)
    )


def _face_eligible(session: Session) -> set[str]:
    """People whose newest face_access decision is a grant and who did not opt out."""
    newest: dict[str, Consent] = {}
    for consent in session.scalars(
        select(Consent).where(Consent.purpose == FACE_ACCESS).order_by(Consent.id)
    ):
        newest[consent.person_id] = consent
    granted = {pid for pid, c in newest.items() if c.granted and c.withdrawn_at is None}
    opted_out = set(
        session.scalars(select(PersonRow.person_id).where(PersonRow.face_opt_out.is_(True)))
    )
    return granted - opted_out


def _latest_deliveries(session: Session) -> dict[str, GalleryDelivery]:
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


def _confirmed_versions(session: Session) -> dict[str, int]:
    """The newest version each gate acknowledged applying."""
    rows = session.execute(
        select(GalleryDelivery.gate_key, func.max(GalleryDelivery.version))
        .where(GalleryDelivery.applied.is_(True))
        .group_by(GalleryDelivery.gate_key)
    )
    return {key: int(version) for key, version in rows}


def _delivery_status(
    delivery: GalleryDelivery, latest: bool, confirmed: Mapping[str, int]
) -> DeliveryStatus:
    return DeliveryStatus(
        gate_key=delivery.gate_key,
        version=delivery.version,
        correlation_id=delivery.correlation_id,
        state=delivery_state(delivery, latest=latest),
        sent_at=delivery.sent_at,
        acked_at=delivery.acked_at,
        error=delivery.error,
        erased_person_ids=tuple(delivery.erased_person_ids or ()),
        confirmed_version=confirmed.get(delivery.gate_key),
    )


def _consent_record(row: Consent) -> ConsentRecord:
    return ConsentRecord(
        id=row.id,
        person_id=row.person_id,
        purpose=row.purpose,
        granted=row.granted,
        recorded_at=row.recorded_at,
        recorded_by=row.recorded_by,
        evidence=row.evidence,
        withdrawn_at=row.withdrawn_at,
    )
