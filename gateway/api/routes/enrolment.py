"""Face enrolment: consent, photo upload, erasure and gallery delivery status.

Photos and templates never leave the gateway through this API: responses carry counts, quality
figures and states only. Every route answers 503 when enrolment is not configured.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Query, UploadFile, status
from pydantic import Field

from gateway.api.common import In, Out, PageLimit, conflict, not_found, unavailable
from gateway.api.deps import ServicesDep, require
from gateway.auth.roles import CurrentUser, Role
from gateway.enrolment import (
    FACE_ACCESS,
    ConsentRecord,
    ConsentRequiredError,
    DeliveryStatus,
    EnrolmentService,
    EnrolReport,
    ErasureReport,
    ErasureStatus,
    FaceOptedOutError,
    PersonNotFoundError,
    PhotoResult,
    Publication,
)

router = APIRouter(tags=["enrolment"])

Admin = Annotated[CurrentUser, require()]
AdminOrAuditor = Annotated[CurrentUser, require(Role.AUDITOR)]

MAX_PHOTOS_PER_REQUEST = 20


def get_enrolment(services: ServicesDep) -> EnrolmentService:
    """The enrolment service; 503 when the gateway runs without an enrolment section."""
    if services.enrolment is None:
        unavailable(
            "face enrolment is not configured on this gateway: add an 'enrolment' section "
            "(gallery_key, ...) to the gateway configuration and restart"
        )
    return services.enrolment


Enrolment = Annotated[EnrolmentService, Depends(get_enrolment)]


# --- request and response models -------------------------------------------------------------


class ConsentIn(In):
    purpose: str = Field(default=FACE_ACCESS, min_length=1, max_length=64)
    granted: bool
    evidence: str = Field(
        default="", max_length=2000, description="where the signed form is, who witnessed it"
    )


class ConsentOut(Out):
    id: int
    person_id: str
    purpose: str
    granted: bool
    recorded_at: datetime
    recorded_by: str
    evidence: str
    withdrawn_at: datetime | None


class PublicationOut(Out):
    version: int
    delivered: list[str] = Field(description="gates whose gallery the broker holds")
    pending: list[str] = Field(description="gates whose gallery waits for the broker (retried)")
    failed: list[str] = Field(description="gates whose gallery could not be built")
    problems: list[str] = Field(description="people or templates left out, and why")


class ErasureOut(Out):
    id: int
    person_id: str
    requested_at: datetime
    requested_by: str
    gallery_version: int | None
    completed_at: datetime | None = Field(description="set once every gate confirmed it")
    unconfirmed_gates: list[str]


class ErasureReportOut(Out):
    erasure: ErasureOut
    templates_deleted: int
    photos_deleted: int
    publication: PublicationOut


class ConsentResultOut(Out):
    consent: ConsentOut
    erasure: ErasureReportOut | None = Field(
        description="the erasure a withdrawal of face_access consent started"
    )


class PhotoOut(Out):
    name: str
    ok: bool
    error: str | None
    size_bytes: int
    width: int | None
    height: int | None
    faces: int | None
    face_px: int | None = Field(description="shorter side of the face box")
    sharpness: float | None = Field(description="variance of the Laplacian over the face")
    template_id: int | None


class EnrolReportOut(Out):
    person_id: str
    accepted: int
    rejected: int
    templates_total: int
    photos: list[PhotoOut]
    publication: PublicationOut | None


class DeliveryOut(Out):
    gate_key: str
    version: int
    correlation_id: str
    state: str = Field(description="pending, sent, applied, refused, failed or superseded")
    sent_at: datetime = Field(description="last attempt to hand it to the broker")
    acked_at: datetime | None
    error: str | None
    erased_person_ids: list[str]
    confirmed_version: int | None = Field(description="newest version the gate applied")


class EnrolmentStatusOut(Out):
    person_id: str
    known: bool
    face_opt_out: bool
    face_consent: bool
    templates: int
    photos_kept: int
    consents: list[ConsentOut]
    deliveries: list[DeliveryOut]
    erasures: list[ErasureOut]
    pending_erasures: int


def _consent_out(record: ConsentRecord) -> ConsentOut:
    return ConsentOut.model_validate(record)


def _publication_out(publication: Publication) -> PublicationOut:
    return PublicationOut(
        version=publication.version,
        delivered=list(publication.delivered),
        pending=list(publication.pending),
        failed=list(publication.failed),
        problems=list(publication.problems),
    )


def _erasure_out(erasure: ErasureStatus) -> ErasureOut:
    return ErasureOut(
        id=erasure.id,
        person_id=erasure.person_id,
        requested_at=erasure.requested_at,
        requested_by=erasure.requested_by,
        gallery_version=erasure.gallery_version,
        completed_at=erasure.completed_at,
        unconfirmed_gates=list(erasure.unconfirmed_gates),
    )


def _erasure_report_out(report: ErasureReport) -> ErasureReportOut:
    return ErasureReportOut(
        erasure=_erasure_out(report.erasure),
        templates_deleted=report.templates_deleted,
        photos_deleted=report.photos_deleted,
        publication=_publication_out(report.publication),
    )


def _photo_out(photo: PhotoResult) -> PhotoOut:
    return PhotoOut.model_validate(photo)


def _delivery_out(delivery: DeliveryStatus) -> DeliveryOut:
    return DeliveryOut(
        gate_key=delivery.gate_key,
        version=delivery.version,
        correlation_id=delivery.correlation_id,
        state=delivery.state,
        sent_at=delivery.sent_at,
        acked_at=delivery.acked_at,
        error=delivery.error,
        erased_person_ids=list(delivery.erased_person_ids),
        confirmed_version=delivery.confirmed_version,
    )


def _report_out(report: EnrolReport) -> EnrolReportOut:
    return EnrolReportOut(
        person_id=report.person_id,
        accepted=report.accepted,
        rejected=report.rejected,
        templates_total=report.templates_total,
        photos=[_photo_out(p) for p in report.photos],
        publication=None if report.publication is None else _publication_out(report.publication),
    )


def _photo_name(upload: UploadFile, index: int) -> str:
    """The uploaded file's own name (no client path), or its position when it has none."""
    name = PurePath((upload.filename or "").replace("\\", "/")).name.strip()
    return name[:200] or f"photo #{index + 1}"


# --- routes ----------------------------------------------------------------------------------


@router.post("/api/people/{person_id}/consent", response_model=ConsentResultOut)
def record_consent(
    person_id: str, body: ConsentIn, admin: Admin, enrolment: Enrolment
) -> ConsentResultOut:
    """Record a consent decision; withdrawing face_access erases the person's face data."""
    try:
        result = enrolment.record_consent(
            person_id, body.purpose, body.granted, body.evidence, admin.username
        )
    except PersonNotFoundError as exc:
        not_found(str(exc))
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return ConsentResultOut(
        consent=_consent_out(result.consent),
        erasure=None if result.erasure is None else _erasure_report_out(result.erasure),
    )


@router.post("/api/people/{person_id}/photos", response_model=EnrolReportOut)
def upload_photos(
    person_id: str,
    files: Annotated[list[UploadFile], File(description="one or more face photos (JPEG, PNG)")],
    admin: Admin,
    enrolment: Enrolment,
    services: ServicesDep,
) -> EnrolReportOut:
    """Enrol a person's face from photos; 422 names each photo and its problem if none is usable.

    Photos that pass are stored as encrypted templates (the photo itself only when configured)
    and a new gallery version goes to the gates; the report lists every photo's outcome.
    """
    if not files:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "no photo uploaded")
    if len(files) > MAX_PHOTOS_PER_REQUEST:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{len(files)} photos uploaded; at most {MAX_PHOTOS_PER_REQUEST} per request",
        )
    limit = services.config.enrolment.max_photo_bytes if services.config.enrolment else None
    photos: list[tuple[str, bytes]] = []
    for index, upload in enumerate(files):
        # Read at most one byte past the limit: enough to refuse an oversized photo by name.
        data = upload.file.read(-1 if limit is None else limit + 1)
        photos.append((_photo_name(upload, index), data))
    try:
        report = enrolment.enrol(person_id, photos, admin.username)
    except PersonNotFoundError as exc:
        not_found(str(exc))
    except (ConsentRequiredError, FaceOptedOutError) as exc:
        conflict(str(exc))
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    out = _report_out(report)
    if report.accepted == 0:
        errors = "; ".join(p.error or p.name for p in report.photos)
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            {
                "message": f"no photo could be enrolled: {errors}",
                "photos": [p.model_dump(mode="json") for p in out.photos],
            },
        )
    return out


@router.delete(
    "/api/people/{person_id}/face",
    response_model=ErasureReportOut,
    status_code=status.HTTP_202_ACCEPTED,
)
def erase_face(person_id: str, admin: Admin, enrolment: Enrolment) -> ErasureReportOut:
    """Erase a person's face data here and on every gate (202: complete once all gates confirm)."""
    try:
        report = enrolment.erase(person_id, admin.username)
    except PersonNotFoundError as exc:
        not_found(str(exc))
    return _erasure_report_out(report)


@router.get("/api/people/{person_id}/enrolment", response_model=EnrolmentStatusOut)
def enrolment_status(
    person_id: str, _user: AdminOrAuditor, enrolment: Enrolment
) -> EnrolmentStatusOut:
    """Templates, consent history, each gate's newest delivery and the erasures of a person."""
    try:
        state = enrolment.status(person_id)
    except PersonNotFoundError as exc:
        not_found(str(exc))
    return EnrolmentStatusOut(
        person_id=state.person_id,
        known=state.known,
        face_opt_out=state.face_opt_out,
        face_consent=state.face_consent,
        templates=state.templates,
        photos_kept=state.photos_kept,
        consents=[_consent_out(c) for c in state.consents],
        deliveries=[_delivery_out(d) for d in state.deliveries],
        erasures=[_erasure_out(e) for e in state.erasures],
        pending_erasures=len(state.pending_erasures),
    )


class PublishIn(In):
    reason: str = Field(min_length=1, max_length=200, description="why (kept in the audit)")


@router.post(
    "/api/gallery/publish",
    response_model=PublicationOut,
    status_code=status.HTTP_202_ACCEPTED,
)
def publish_gallery(body: PublishIn, user: Admin, enrolment: Enrolment) -> PublicationOut:
    """Send every gate a new gallery version now, e.g. after a signing-key rotation."""
    return _publication_out(enrolment.publish_galleries(body.reason, user.username))


@router.get("/api/gallery/deliveries", response_model=list[DeliveryOut])
def gallery_deliveries(
    _user: AdminOrAuditor,
    enrolment: Enrolment,
    gate_key: Annotated[
        str | None, Query(max_length=200, description="site/building/gate_id")
    ] = None,
    limit: PageLimit = 100,
) -> list[DeliveryOut]:
    """Gallery deliveries to the gates, newest version first."""
    return [_delivery_out(d) for d in enrolment.deliveries(gate_key, limit)]
