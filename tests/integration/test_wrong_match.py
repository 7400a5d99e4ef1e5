"""The gateway's side of wrong-match feedback on a real broker and a real SQLite file.

The gate's answer is the message a gate sends (a CommandResult with the probe sealed by
``seal_probe``, as edge/gate/commands.py does); the whole path with a real gate process is
tests/integration/test_wrong_match_gate.py. Rules: a report asks the right gate for the right
event with a signed command, an answer becomes a sealed impostor example that the next gallery
carries; every refusal says why; answers from elsewhere, late or damaged change nothing; erasure
takes the examples; the reports' hash chain shows tampering.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, func, select, update

from contracts.gallery_crypto import seal_probe
from contracts.models import Command, CommandResult
from contracts.signing import MessageVerifier
from gateway.audit import chain_head, seal, verify_report_chain
from gateway.commands import CommandService
from gateway.db import open_engine
from gateway.db.schema import AccessRecord, ImpostorExample, WrongMatchReport
from gateway.enrolment.errors import PersonNotFoundError
from gateway.enrolment.wrong_match import (
    EventNotFoundError,
    NotReportableError,
    WrongMatchService,
)
from tests.broker import Broker, Collector
from tests.integration.test_enrolment import (
    BrokerPublisher,
    World,
    gallery_updates,
    make_world,
    open_update,
    photo_bytes,
)
from tests.keys import TEST_SIGNER, command_auth

pytestmark = pytest.mark.broker

PERSON = "s-obama"


@dataclass
class Site:
    world: World
    service: WrongMatchService
    commands: Collector
    galleries: Collector

    @property
    def gate_key(self) -> str:
        return f"{self.world.site}/b1/g1"

    def access(self, *, method: str = "face", person_id: str | None = PERSON) -> str:
        """One access-log row of gate b1/g1, chained like the ingest does; its event id."""
        event_id = uuid.uuid4().hex
        now = self.world.clock()
        with self.world.sessions.begin() as session:
            row = AccessRecord(
                event_id=event_id,
                ts=now,
                received_at=now,
                site=self.world.site,
                building="b1",
                gate_id="g1",
                direction="in",
                decision="granted",
                method=method,
                person_id=person_id,
                reason="granted",
                flags=[],
                faces_in_view=1,
            )
            seal(row, chain_head(session))
            session.add(row)
        return event_id

    def sent_command(self, count: int = 1) -> Command:
        """The newest command the gate would have received (after ``count`` in all)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            seen = self.commands.snapshot()
            if len(seen) >= count:
                topic, payload, _ = seen[count - 1]
                MessageVerifier.from_texts(command_auth()["trusted_keys"]).verify(topic, payload)
                return Command.model_validate_json(payload)
            time.sleep(0.05)
        raise AssertionError("no command reached the gate's topic")

    def answer(self, command: Command, probe: np.ndarray | None, *, gate_key: str = "") -> None:
        """What the gate sends back: the probe sealed for its event, or a refusal."""
        assert command.probe_event_id is not None
        key = self.world.gallery_key
        sealed = None if probe is None else seal_probe(probe, command.probe_event_id, key)
        result = CommandResult(
            producer="gate:x",
            correlation_id=command.correlation_id,
            ok=sealed is not None,
            detail="probe" if sealed is not None else "no probe kept for event",
            probe_b64=None if sealed is None else base64.b64encode(sealed).decode(),
        )
        self.service.on_command_result(gate_key or self.gate_key, result)

    def report_row(self, report_id: int) -> WrongMatchReport:
        with self.world.sessions() as session:
            return session.get_one(WrongMatchReport, report_id)

    def engine(self) -> Engine:
        return open_engine(f"sqlite:///{self.world.db_path}")

    def examples(self) -> int:
        with self.world.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(ImpostorExample)) or 0)


@pytest.fixture
def site(tmp_path: Path, broker: Broker, photos: Path) -> Iterator[Site]:
    publisher = BrokerPublisher(broker.port).start()
    world = make_world(tmp_path, publisher)
    world.add_gate("b1", "g1")
    world.add_gate("b2", "g1")  # a gate the person may not use: gets no example
    world.add_person(PERSON)
    world.consent(PERSON)
    world.service.enrol(PERSON, [photo_bytes(photos, "obama.jpg")], "admin")
    commands = CommandService(world.sessions, world.clock, publisher, TEST_SIGNER)
    service = WrongMatchService(
        world.sessions, world.clock, commands, world.service, world.gallery_key, world.template_key
    )
    command_topic = f"dorm/{world.site}/+/gate/+/command"
    gallery_topic = f"dorm/{world.site}/+/gate/+/gallery"
    command_collector = Collector(broker.port, command_topic, client_id=f"c-{uuid.uuid4().hex[:8]}")
    gallery_collector = Collector(broker.port, gallery_topic, client_id=f"g-{uuid.uuid4().hex[:8]}")
    command_collector.start()
    gallery_collector.start()
    try:
        yield Site(world, service, command_collector, gallery_collector)
    finally:
        command_collector.stop()
        gallery_collector.stop()
        publisher.stop()


def test_a_report_asks_its_gate_for_the_probe_and_the_answer_becomes_a_sealed_example(
    site: Site,
) -> None:
    event_id = site.access()
    report = site.service.report(event_id, "guard-li", "visitor, not Obama")
    assert (report.state, report.person_id, report.gate_key) == ("requested", PERSON, site.gate_key)
    command = site.sent_command()
    assert (command.command, command.probe_event_id) == ("send_probe", event_id)
    assert site.commands.snapshot()[0][0] == f"dorm/{site.world.site}/b1/gate/g1/command"

    probe = np.random.default_rng(1).standard_normal(128).astype(np.float32)
    site.answer(command, probe)
    row = site.report_row(report.id)
    assert row.state == "stored" and row.detail is not None and "gallery version" in row.detail
    assert site.examples() == 1
    assert probe.tobytes() not in site.world.db_bytes()  # sealed at rest

    def carried() -> dict[str, tuple[str, ...]]:
        newest = gallery_updates(site.galleries)
        opened = {t: open_update(u, site.world.gallery_key) for t, u in newest.items()}
        return {t.split("/")[2]: g.impostor_owners for t, g in opened.items()}

    deadline = time.monotonic() + 10
    while carried().get("b1") != (PERSON,) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert carried() == {"b1": (PERSON,), "b2": ()}
    (listed,) = site.world.service.status(PERSON).wrong_matches
    assert (listed.event_id, listed.reported_by, listed.state) == (event_id, "guard-li", "stored")
    assert verify_report_chain(site.engine()).ok


def test_what_cannot_be_reported_is_refused_with_the_reason(site: Site) -> None:
    with pytest.raises(EventNotFoundError, match=r"no access event 'f+' in the access log"):
        site.service.report("f" * 32, "guard-li")
    with pytest.raises(NotReportableError, match="method card"):
        site.service.report(site.access(method="card"), "guard-li")
    with pytest.raises(NotReportableError, match="person none"):
        site.service.report(site.access(person_id=None), "guard-li")
    with pytest.raises(PersonNotFoundError):
        site.service.report(site.access(person_id="s-gone"), "guard-li")
    event_id = site.access()
    site.service.report(event_id, "guard-li")
    with pytest.raises(NotReportableError, match="already reported"):
        site.service.report(event_id, "guard-wang")


def test_a_refused_or_damaged_answer_fails_the_report_which_may_then_be_made_again(
    site: Site,
) -> None:
    event_id = site.access()
    first = site.service.report(event_id, "guard-li")
    site.answer(site.sent_command(1), None)
    failed = site.report_row(first.id)
    assert failed.state == "failed" and "did not hand over the probe" in (failed.detail or "")

    again = site.service.report(event_id, "guard-li")
    assert (again.id, again.state) == (first.id, "requested")
    command = site.sent_command(2)
    other = site.access()
    # A probe sealed for another event does not open for this one.
    forged = CommandResult(
        producer="gate:x",
        correlation_id=command.correlation_id,
        ok=True,
        probe_b64=base64.b64encode(
            seal_probe(np.ones(128), other, site.world.gallery_key)
        ).decode(),
    )
    site.service.on_command_result(site.gate_key, forged)
    row = site.report_row(first.id)
    assert row.state == "failed" and "another event's" in (row.detail or "")
    assert site.examples() == 0


def test_answers_from_another_gate_or_after_an_erasure_change_nothing(site: Site) -> None:
    event_id = site.access()
    report = site.service.report(event_id, "guard-li")
    command = site.sent_command()
    site.answer(command, np.ones(128, np.float32), gate_key=f"{site.world.site}/b2/g1")
    assert site.report_row(report.id).state == "requested"

    site.world.service.erase(PERSON, "admin")
    assert site.report_row(report.id).state == "erased"
    site.answer(command, np.ones(128, np.float32))
    assert site.report_row(report.id).state == "erased" and site.examples() == 0


def test_erasure_deletes_the_examples_and_no_gallery_carries_them_after(site: Site) -> None:
    event_id = site.access()
    report = site.service.report(event_id, "guard-li")
    site.answer(site.sent_command(), np.ones(128, np.float32))
    assert site.examples() == 1
    erased = site.world.service.erase(PERSON, "admin")
    assert site.examples() == 0
    row = site.report_row(report.id)
    assert row.state == "erased" and "erased with the face data" in (row.detail or "")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        newest = gallery_updates(site.galleries)
        if all(u.version >= (erased.erasure.gallery_version or 0) for u in newest.values()):
            break
        time.sleep(0.05)
    for newest in gallery_updates(site.galleries).values():
        assert open_update(newest, site.world.gallery_key).impostor_owners == ()


def test_a_report_with_no_broker_link_fails_at_once_saying_why(site: Site) -> None:
    world = site.world
    unlinked = WrongMatchService(
        world.sessions,
        world.clock,
        CommandService(world.sessions, world.clock, None, TEST_SIGNER),
        world.service,
        world.gallery_key,
        world.template_key,
    )
    report = unlinked.report(site.access(), "guard-li")
    assert report.state == "failed"
    assert report.detail is not None and "no MQTT connection to the gates" in report.detail


def test_the_reports_hash_chain_shows_a_changed_report(site: Site) -> None:
    for _ in range(3):
        site.service.report(site.access(), "guard-li")
    engine = site.engine()
    assert verify_report_chain(engine).rows == 3 and verify_report_chain(engine).ok
    with site.world.sessions.begin() as session:
        second = session.scalars(select(WrongMatchReport.id).order_by(WrongMatchReport.id)).all()[1]
        session.execute(
            update(WrongMatchReport)
            .where(WrongMatchReport.id == second)
            .values(reported_by="someone-else")
        )
    broken = verify_report_chain(engine)
    assert (broken.ok, broken.first_bad_id) == (False, second)
    assert "content does not match" in broken.problem


def test_a_report_the_gate_never_answers_fails_after_the_timeout(site: Site) -> None:
    report = site.service.report(site.access(), "guard-li")
    site.world.clock.advance(minutes=4)
    assert site.service.expire_unanswered() == 0
    site.world.clock.advance(minutes=2)
    assert site.service.expire_unanswered() == 1
    row = site.report_row(report.id)
    assert row.state == "failed" and "did not answer within 300 s" in (row.detail or "")


def test_the_api_refuses_a_malformed_event_id_and_answers_503_without_enrolment(
    tmp_path: Path,
) -> None:
    from gateway.auth.roles import Role
    from tests.gatewaykit import gateway_client, login

    with gateway_client(tmp_path) as (client, _services):
        guard = login(client, Role.GUARD)
        bad = client.post("/api/access/not%20an%20id!/wrong-match", headers=guard)
        assert bad.status_code == 422, bad.text
        unknown_field = client.post(
            f"/api/access/{'a' * 32}/wrong-match", headers=guard, json={"comment": "x"}
        )
        assert unknown_field.status_code == 422, unknown_field.text
        off = client.post(f"/api/access/{'a' * 32}/wrong-match", headers=guard, json={})
        assert off.status_code == 503 and "needs face enrolment" in off.json()["detail"]
