"""Face enrolment: consent, photo upload, erasure and gallery delivery status.

Photos and templates never leave the gateway through this API: responses carry counts, quality
figures and states only. Every route answers 503 when enrolment is not configured.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Query, UploadFile, status
from pydantic import BeforeValidator, Field

from gateway.api.common import In, Out, PageLimit, conflict, not_found, unavailable
from gateway.api.deps import ServicesDep, require
from gateway.auth.roles import CurrentUser, Role
from gateway.enrolment.consent import FACE_ACCESS
from gateway.enrolment.errors import (
    ConsentRequiredError,
    FaceOptedOutError,
    PersonNotFoundError,
)
from gateway.enrolment.reports import (
    ConsentRecord,
    ConsentResult,
    DeliveryStatus,
    ErasureReport,
    ErasureStatus,
    PhotoResult,
    Publication,
    WrongMatchStatus,
)
from gateway.enrolment.service import EnrolmentService

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
# Most answers are the service's reports as they are (gateway/enrolment/reports.py).


class ConsentIn(In):
    purpose: str = Field(default=FACE_ACCESS, min_length=1, max_length=64)
    granted: bool
    evidence: str = Field(
        default="", max_length=2000, description="where the signed form is, who witnessed it"
    )


class EnrolReportOut(Out):
    person_id: str
    accepted: int
    rejected: int
    templates_total: int
    photos: list[PhotoResult]
    publication: Publication | None


class EnrolmentStatusOut(Out):
    """A person's enrolment state (EnrolmentStatus) with its pending erasures counted."""

    person_id: str
    known: bool
    face_opt_out: bool
    face_consent: bool
    templates: int
    photos_kept: int
    consents: list[ConsentRecord]
    deliveries: list[DeliveryStatus]
    erasures: list[ErasureStatus]
    pending_erasures: Annotated[int, BeforeValidator(len)]  # the service lists them
    wrong_matches: list[WrongMatchStatus] = Field(
        description="reports that an access event matched this person wrongly, newest first "
        "(never the encoding)"
    )


def _photo_name(upload: UploadFile, index: int) -> str:
    """The uploaded file's own name (no client path), or its position when it has none."""
    name = PurePath((upload.filename or "").replace("\\", "/")).name.strip()
    return name[:200] or f"photo #{index + 1}"


# --- routes ----------------------------------------------------------------------------------


@router.post("/api/people/{person_id}/consent", response_model=ConsentResult)
def record_consent(
    person_id: str, body: ConsentIn, admin: Admin, enrolment: Enrolment
) -> ConsentResult:
    """Record a consent decision; withdrawing face_access erases the person's face data."""
    try:
        result = enrolment.record_consent(
            person_id, body.purpose, body.granted, body.evidence, admin.username
        )
    except PersonNotFoundError as exc:
        not_found(str(exc))
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return result


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
    out = EnrolReportOut.model_validate(report)
    if report.accepted == 0:
        errors = "; ".join(p.error or p.name for p in report.photos)
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            {
                "message": f"no photo could be enrolled: {errors}",
                "photos": out.model_dump(mode="json")["photos"],
            },
        )
    return out


@router.delete(
    "/api/people/{person_id}/face",
    response_model=ErasureReport,
    status_code=status.HTTP_202_ACCEPTED,
)
def erase_face(person_id: str, admin: Admin, enrolment: Enrolment) -> ErasureReport:
    """Erase a person's face data here and on every gate (202: complete once all gates confirm)."""
    try:
        report = enrolment.erase(person_id, admin.username)
    except PersonNotFoundError as exc:
        not_found(str(exc))
    return report


@router.get("/api/people/{person_id}/enrolment", response_model=EnrolmentStatusOut)
def enrolment_status(
    person_id: str, _user: AdminOrAuditor, enrolment: Enrolment
) -> EnrolmentStatusOut:
    """Templates, consent history, each gate's newest delivery, the erasures and the wrong-match
    reports of a person."""
    try:
        state = enrolment.status(person_id)
    except PersonNotFoundError as exc:
        not_found(str(exc))
    return EnrolmentStatusOut.model_validate(state)


class PublishIn(In):
    reason: str = Field(min_length=1, max_length=200, description="why (kept in the audit)")


@router.post(
    "/api/gallery/publish",
    response_model=Publication,
    status_code=status.HTTP_202_ACCEPTED,
)
def publish_gallery(body: PublishIn, user: Admin, enrolment: Enrolment) -> Publication:
    """Send every gate a new gallery version now, e.g. after a signing-key rotation."""
    return enrolment.publish_galleries(body.reason, user.username)


@router.get("/api/gallery/deliveries", response_model=list[DeliveryStatus])
def gallery_deliveries(
    _user: AdminOrAuditor,
    enrolment: Enrolment,
    gate_key: Annotated[
        str | None, Query(max_length=200, description="site/building/gate_id")
    ] = None,
    limit: PageLimit = 100,
) -> list[DeliveryStatus]:
    """Gallery deliveries to the gates, newest version first."""
    return enrolment.deliveries(gate_key, limit)
