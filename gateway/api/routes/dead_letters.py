"""Messages the ingest refused, with the reason (admins and auditors)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field
from sqlalchemy import select

from gateway.api.common import Out, PageLimit, PageOffset, UtcDatetime
from gateway.api.deps import SessionDep, require
from gateway.attributes import from_attributes
from gateway.auth.roles import CurrentUser, Role
from gateway.db.schema import DeadLetter

router = APIRouter(prefix="/api/dead-letters", tags=["dead letters"])

Reader = Annotated[CurrentUser, require(Role.AUDITOR)]

PREVIEW_BYTES = 512


class DeadLetterOut(Out):
    id: int
    received_at: datetime
    topic: str
    reason: str
    payload_size: int
    payload_preview: str = Field(
        description=f"the first {PREVIEW_BYTES} bytes as text; invalid UTF-8, control "
        "characters and < > & are backslash-escaped, so it is safe to show as-is"
    )
    truncated: bool


def preview(payload: bytes, limit: int = PREVIEW_BYTES) -> str:
    """Printable, HTML-inert text of a payload's start (bytes that are not text as \\xNN)."""
    text = payload[:limit].decode("utf-8", errors="backslashreplace")
    out: list[str] = []
    for char in text:
        code = ord(char)
        unsafe = char in "<>&\u2028\u2029" or (code < 0x20 and char not in "\n\t")
        if unsafe or 0x7F <= code < 0xA0:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


@router.get("", response_model=list[DeadLetterOut])
def list_dead_letters(
    _user: Reader,
    session: SessionDep,
    topic: Annotated[str | None, Query(max_length=512, description="topic starts with")] = None,
    since: UtcDatetime | None = None,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> list[DeadLetterOut]:
    """Refused messages, newest first."""
    query = select(DeadLetter)
    if topic:
        escaped = topic.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(DeadLetter.topic.like(f"{escaped}%", escape="\\"))
    if since is not None:
        query = query.where(DeadLetter.received_at >= since)
    query = query.order_by(DeadLetter.received_at.desc(), DeadLetter.id.desc())
    return [
        from_attributes(
            DeadLetterOut,
            row,
            payload_preview=preview(row.payload),
            truncated=row.payload_size > PREVIEW_BYTES,
        )
        for row in session.scalars(query.offset(offset).limit(limit))
    ]
