"""Wrong-match feedback: "this is not X" on an access event becomes an impostor example of X.

A guard or admin reports a face-decided access event (docs/decisions/0014): the report is
recorded and chained (gateway/audit.py), and the gate that made the event is asked, by a signed
``send_probe`` command, for the probe encoding behind it. The gate answers with the probe sealed
under the gallery key; it is stored sealed under the template key as an impostor example of X
(``impostor_examples``), and a new gallery version carries X's examples to every gate that holds
X's templates. Erasure of X's face data deletes them (gateway/enrolment/erasure.py).
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from contracts.gallery_crypto import open_probe
from contracts.models import CommandResult
from gateway.audit import seal_report
from gateway.commands import BrokerUnavailableError, CommandService, UnknownGateError
from gateway.db.schema import AccessRecord, ImpostorExample, WrongMatchReport
from gateway.enrolment.consent import face_eligible
from gateway.enrolment.errors import EnrolmentError, PersonNotFoundError
from gateway.enrolment.queries import find_person, reports_of
from gateway.enrolment.reports import WrongMatchStatus, report_from_row
from gateway.enrolment.sealing import encrypt_impostor

if TYPE_CHECKING:
    from gateway.enrolment.service import EnrolmentService
    from gateway.ports import Clock

log = logging.getLogger(__name__)

REQUESTED, STORED, FAILED, ERASED = "requested", "stored", "failed", "erased"

# A gate answers a command within seconds or not at all (offline past the command's 60 s
# freshness, or a gate too old to know send_probe): after this the report is failed, and may be
# made again.
ANSWER_TIMEOUT = timedelta(minutes=5)


class EventNotFoundError(LookupError):
    """No access event with that id in the access log."""


class NotReportableError(EnrolmentError):
    """The event cannot be reported as a wrong match (not by face, nobody matched, reported)."""


class WrongMatchService:
    """Records wrong-match reports, fetches the probe from the gate, stores impostor examples."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        commands: CommandService,
        enrolment: EnrolmentService,
        gallery_key: bytes,
        template_key: bytes,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._commands = commands
        self._enrolment = enrolment
        self._gallery_key = gallery_key
        self._template_key = template_key

    def report(self, event_id: str, actor: str, note: str = "") -> WrongMatchStatus:
        """Report an access event as a wrong match and ask its gate for the probe.

        EventNotFoundError, NotReportableError (not by face, no person, already reported),
        PersonNotFoundError. A gate that cannot be reached leaves the report ``failed`` with the
        reason; a failed report may be made again.
        """
        now = self._clock()
        with self._sessions.begin() as session:
            event = session.scalar(select(AccessRecord).where(AccessRecord.event_id == event_id))
            if event is None:
                raise EventNotFoundError(f"no access event {event_id!r} in the access log")
            if event.method != "face" or event.person_id is None:
                raise NotReportableError(
                    f"access event {event_id} was not decided by a face match to a person "
                    f"(method {event.method}, person {event.person_id or 'none'}): "
                    "only a face matched to someone can be a wrong match"
                )
            person_id = event.person_id
            find_person(session, person_id)
            row = session.scalar(
                select(WrongMatchReport).where(WrongMatchReport.event_id == event_id)
            )
            if row is not None and row.state != FAILED:
                raise NotReportableError(
                    f"access event {event_id} was already reported as a wrong match "
                    f"(report {row.id}, {row.state})"
                )
            if row is None:
                row = WrongMatchReport(
                    event_id=event_id,
                    person_id=person_id,
                    gate_key=f"{event.site}/{event.building}/{event.gate_id}",
                    event_ts=event.ts,
                    reported_by=actor,
                    reported_at=now,
                    note=note[:200],
                )
                seal_report(session, row)
                session.add(row)
            row.state = REQUESTED
            row.detail = None
            row.correlation_id = uuid.uuid4().hex  # before sending: the answer may come first
            row.updated_at = now
            session.flush()
            report_id, gate_key, correlation_id = row.id, row.gate_key, row.correlation_id
        log.warning(
            "wrong-match report %s: event %s at %s is not person %s (by %s)",
            report_id,
            event_id,
            gate_key,
            person_id,
            actor,
        )
        try:
            self._commands.request_probe(
                gate_key, event_id, f"wrong-match report {report_id}", actor, correlation_id
            )
        except (UnknownGateError, BrokerUnavailableError) as exc:
            self._fail(report_id, f"the gate could not be asked for the probe: {exc}")
        return self.get(report_id)

    def on_command_result(self, gate_key: str, result: CommandResult) -> None:
        """A gate's answer: store the probe it handed over as an impostor example, or fail."""
        with self._sessions() as session:
            row = session.scalar(
                select(WrongMatchReport).where(
                    WrongMatchReport.correlation_id == result.correlation_id
                )
            )
            if row is None:
                return  # not a probe request of ours
            report_id, state, person_id = row.id, row.state, row.person_id
            event_id, expected_gate = row.event_id, row.gate_key
        if gate_key != expected_gate:
            log.warning("probe for report %s arrived from %s (ignored)", report_id, gate_key)
            return
        if state != REQUESTED:
            log.info("probe for report %s arrived in state %s (ignored)", report_id, state)
            return
        if not result.ok or result.probe_b64 is None:
            self._fail(report_id, f"the gate did not hand over the probe: {result.detail}")
            return
        try:
            sealed = base64.b64decode(result.probe_b64, validate=True)
            probe = open_probe(sealed, event_id, self._gallery_key)
        except (binascii.Error, ValueError) as exc:
            self._fail(report_id, f"the gate's probe is unusable: {exc}")
            return
        with self._sessions.begin() as session:
            row = session.get_one(WrongMatchReport, report_id)
            if row.state != REQUESTED:
                return  # erased meanwhile
            if person_id not in face_eligible(session):
                row.state = FAILED
                row.detail = f"person {person_id} has no face data any more: nothing to correct"
                row.updated_at = self._clock()
                return
            session.add(
                ImpostorExample(
                    report_id=report_id,
                    person_id=person_id,
                    example_enc=encrypt_impostor(probe, person_id, self._template_key),
                    created_at=self._clock(),
                )
            )
            row.state = STORED
            row.detail = "impostor example stored; it goes to the gates with the next gallery"
            row.updated_at = self._clock()
        log.warning(
            "wrong-match report %s: impostor example of person %s stored", report_id, person_id
        )
        publication = self._enrolment.publish_galleries(
            f"wrong-match report {report_id}: impostor example of {person_id}", "system"
        )
        with self._sessions.begin() as session:
            row = session.get_one(WrongMatchReport, report_id)
            if row.state == STORED:
                row.detail = f"impostor example in gallery version {publication.version}"

    def expire_unanswered(self) -> int:
        """Fail the reports whose gate has not answered within ANSWER_TIMEOUT; how many."""
        now = self._clock()
        with self._sessions.begin() as session:
            stale = list(
                session.scalars(
                    select(WrongMatchReport).where(
                        WrongMatchReport.state == REQUESTED,
                        WrongMatchReport.updated_at < now - ANSWER_TIMEOUT,
                    )
                )
            )
            for row in stale:
                row.state = FAILED
                row.detail = (
                    f"gate {row.gate_key} did not answer within "
                    f"{ANSWER_TIMEOUT.total_seconds():.0f} s (offline, or too old for send_probe)"
                )
                row.updated_at = now
        for row in stale:
            log.warning("wrong-match report %s failed: %s", row.id, row.detail)
        return len(stale)

    def get(self, report_id: int) -> WrongMatchStatus:
        """One report as the API shows it."""
        with self._sessions() as session:
            return report_from_row(WrongMatchStatus, session.get_one(WrongMatchReport, report_id))

    def of_person(self, person_id: str) -> tuple[WrongMatchStatus, ...]:
        """The reports that named a person, newest first."""
        with self._sessions() as session:
            return reports_of(session, person_id)

    def _fail(self, report_id: int, detail: str) -> None:
        log.warning("wrong-match report %s failed: %s", report_id, detail)
        with self._sessions.begin() as session:
            row = session.get_one(WrongMatchReport, report_id)
            if row.state == REQUESTED:
                row.state = FAILED
                row.detail = detail
                row.updated_at = self._clock()


__all__ = [
    "EventNotFoundError",
    "NotReportableError",
    "PersonNotFoundError",
    "WrongMatchService",
    "reports_of",
]
