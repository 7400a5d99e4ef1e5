"""The tamper-evident access log: every row's hash covers its content and the previous hash.

Changing, deleting or reordering any stored row breaks the chain from that row on, and
``dormguard audit verify`` reports the first row that no longer matches. The wrong-match reports
(who said which access event was not which person) are a second chain of the same kind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from contracts.models import AccessEvent
from gateway.db.schema import AccessRecord, WrongMatchReport

GENESIS = "0" * 64
_CHAIN_LOCK_ID = 0x646F726D  # an arbitrary constant: the chain's PostgreSQL advisory lock
_REPORT_CHAIN_LOCK_ID = 0x646F726E  # the wrong-match reports' chain


def canonical(fields: dict[str, Any]) -> bytes:
    """The bytes a record's hash covers: JSON, sorted keys, no whitespace, RFC 3339 UTC times."""
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


# The chained content of an access event and of its access-log row (everything but the row's
# id, received_at and hashes): the event's fields and the row's columns have the same names.
CHAINED_FIELDS = (
    "event_id",
    "ts",
    "site",
    "building",
    "gate_id",
    "direction",
    "decision",
    "method",
    "person_id",
    "reason",
    "flags",
    "distance",
    "margin",
    "faces_in_view",
    "seq",
)


def record_fields(source: AccessRecord | AccessEvent) -> dict[str, Any]:
    """What the chain hash covers of an access-log row, or of the event it is stored from."""
    fields = {name: getattr(source, name) for name in CHAINED_FIELDS}
    fields["flags"] = list(fields["flags"])
    return fields


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and the record's canonical bytes."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(fields)).hexdigest()


def lock_chain(session: Session) -> None:
    """Serialise writers of the chain for this transaction (call it first in the transaction).

    Two gateways appending at once would otherwise both read the same head and fork the chain.
    PostgreSQL: a transaction-scoped advisory lock. SQLite: a write statement that matches no row
    takes the database's write lock now rather than at the first insert.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK_ID})
    elif dialect == "sqlite":
        session.execute(text("UPDATE access_log SET id = id WHERE 0"))


def chain_head(session: Session) -> str:
    """The newest row's hash (call lock_chain first when other writers may exist)."""
    last = session.scalar(select(AccessRecord.hash).order_by(AccessRecord.id.desc()).limit(1))
    return last or GENESIS


def seal(row: AccessRecord, prev_hash: str) -> str:
    """Set the row's prev_hash and hash; returns the new head."""
    row.prev_hash = prev_hash
    row.hash = chain_hash(prev_hash, record_fields(row))
    return row.hash


# What the wrong-match reports' chain covers: the fields a report never changes (its state does).
REPORT_CHAINED_FIELDS = (
    "event_id",
    "person_id",
    "gate_key",
    "event_ts",
    "reported_by",
    "reported_at",
    "note",
)


def report_fields(row: WrongMatchReport) -> dict[str, Any]:
    """What the chain hash covers of a wrong-match report."""
    return {name: getattr(row, name) for name in REPORT_CHAINED_FIELDS}


def seal_report(session: Session, row: WrongMatchReport) -> None:
    """Chain a new wrong-match report to the newest one (locks the chain for the transaction)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _REPORT_CHAIN_LOCK_ID})
    elif dialect == "sqlite":
        session.execute(text("UPDATE wrong_match_reports SET id = id WHERE 0"))
    last = session.scalar(
        select(WrongMatchReport.hash).order_by(WrongMatchReport.id.desc()).limit(1)
    )
    row.prev_hash = last or GENESIS
    row.hash = chain_hash(row.prev_hash, report_fields(row))


@dataclass(frozen=True, slots=True)
class VerifyReport:
    rows: int
    ok: bool
    first_bad_id: int | None = None
    problem: str = ""


Row = TypeVar("Row", AccessRecord, WrongMatchReport)


def _rows(engine: Engine, model: type[Row], batch: int = 5000) -> Iterator[Row]:
    last_id = 0
    with Session(engine) as session:
        while True:
            chunk = list(
                session.scalars(
                    select(model).where(model.id > last_id).order_by(model.id).limit(batch)
                )
            )
            if not chunk:
                return
            yield from chunk
            last_id = chunk[-1].id
            session.expunge_all()


def _verify(
    engine: Engine, model: type[Row], fields_of: Callable[[Row], dict[str, Any]]
) -> VerifyReport:
    prev = GENESIS
    count = 0
    for row in _rows(engine, model):
        count += 1
        if row.prev_hash != prev:
            return VerifyReport(
                count,
                False,
                row.id,
                "prev_hash does not match the previous row's hash "
                "(a row was deleted, inserted or reordered before this one)",
            )
        if chain_hash(prev, fields_of(row)) != row.hash:
            return VerifyReport(
                count, False, row.id, "content does not match its hash (the row was changed)"
            )
        prev = row.hash
    return VerifyReport(count, True)


def verify_chain(engine: Engine) -> VerifyReport:
    """Recompute every access-log hash in id order; report the first row that does not match."""
    return _verify(engine, AccessRecord, record_fields)


def verify_report_chain(engine: Engine) -> VerifyReport:
    """The same for the wrong-match reports."""
    return _verify(engine, WrongMatchReport, report_fields)
