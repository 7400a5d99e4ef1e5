"""What the enrolment service answers: per photo, per publication, consent, delivery, erasure.

Frozen dataclasses; the API sends most of them as they are (gateway/api/routes/enrolment.py), so
the descriptions below are also those of the OpenAPI document. None carries a template or photo.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

from pydantic import ConfigDict, Field

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    Report = TypeVar("Report", bound=DataclassInstance)

# The API always sends every field, defaults included: its schema says so.
_ALWAYS_SENT = ConfigDict(json_schema_serialization_defaults_required=True)


@dataclass(frozen=True, slots=True)
class PhotoResult:
    """What became of one uploaded photo, with its quality figures."""

    __pydantic_config__ = _ALWAYS_SENT

    name: str
    ok: bool
    error: str | None
    size_bytes: int
    width: int | None = None
    height: int | None = None
    faces: int | None = None
    face_px: Annotated[int | None, Field(description="shorter side of the face box")] = None
    sharpness: Annotated[
        float | None, Field(description="variance of the Laplacian over the face")
    ] = None
    template_id: int | None = None


@dataclass(frozen=True, slots=True)
class Publication:
    """A gallery version and where it went: gate keys by outcome, people left out and why."""

    __pydantic_config__ = _ALWAYS_SENT

    version: int
    delivered: Annotated[tuple[str, ...], Field(description="gates whose gallery the broker holds")]
    pending: Annotated[
        tuple[str, ...], Field(description="gates whose gallery waits for the broker (retried)")
    ]
    failed: Annotated[tuple[str, ...], Field(description="gates whose gallery could not be built")]
    problems: Annotated[
        tuple[str, ...], Field(description="people or templates left out, and why")
    ] = ()


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
    state: Annotated[
        str, Field(description="pending, sent, applied, refused, failed or superseded")
    ]
    sent_at: Annotated[datetime, Field(description="last attempt to hand it to the broker")]
    acked_at: datetime | None
    error: str | None
    erased_person_ids: tuple[str, ...]
    confirmed_version: Annotated[int | None, Field(description="newest version the gate applied")]


@dataclass(frozen=True, slots=True)
class ErasureStatus:
    id: int
    person_id: str
    requested_at: datetime
    requested_by: str
    gallery_version: int | None
    completed_at: Annotated[datetime | None, Field(description="set once every gate confirmed it")]
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
    erasure: Annotated[
        ErasureReport | None,
        Field(description="the erasure a withdrawal of face_access consent started"),
    ]


@dataclass(frozen=True, slots=True)
class WrongMatchStatus:
    """A report that an access event matched this person wrongly, and what became of it."""

    __pydantic_config__ = _ALWAYS_SENT

    id: int
    event_id: str
    person_id: Annotated[str, Field(description="whom the gate took the face for")]
    gate_key: str
    event_ts: datetime
    reported_by: str
    reported_at: datetime
    note: str
    state: Annotated[
        str,
        Field(
            description="requested (the gate was asked for the probe), stored (an impostor "
            "example; the next gallery carries it), failed (see detail) or erased"
        ),
    ]
    detail: str | None
    updated_at: datetime


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
    wrong_matches: tuple[WrongMatchStatus, ...] = ()  # newest first; never the encoding

    @property
    def pending_erasures(self) -> tuple[ErasureStatus, ...]:
        return tuple(e for e in self.erasures if e.pending)


def report_from_row(report: type[Report], row: object, **computed: object) -> Report:
    """A report whose fields are the row's same-named columns, except those given."""
    copied = {f.name: getattr(row, f.name) for f in fields(report) if f.name not in computed}
    return report(**copied, **computed)
