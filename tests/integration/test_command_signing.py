"""Forged and replayed door commands against a real gate process, reported to a real gateway.

The broker here is open (anonymous publishing allowed), as the outside probe found the demo's:
the broker is not the gate's only defence. Everything is real: mosquitto, a `dormguard gate`
process with the real face engine, a `dormguard gateway` process on SQLite files, and the
attacker is a plain MQTT client.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import cv2
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from contracts.gallery_crypto import encrypt_gallery, load_key
from contracts.models import (
    CardSwipe,
    Command,
    CommandResult,
    GalleryAck,
    GalleryUpdate,
    SecurityEvent,
    utc_now,
)
from contracts.signing import MessageSigner, generate_private_key_text, parse_private_key
from contracts.topics import GateAddress, GateChannel, gate_topic
from gateway.db.schema import AlertRow
from tests.broker import Broker, Collector
from tests.gatekit import gate_config, make_gallery, spawn_gate, write_key
from tests.gatewayproc import (
    BUILDING,
    GATE,
    SITE,
    Publisher,
    gateway_config,
    spawn_gateway,
    wait_until,
    write_config,
)
from tests.keys import TEST_SIGNER, command_auth
from tests.photos import noise_frame

pytestmark = [pytest.mark.slow, pytest.mark.broker]

ADDRESS = GateAddress(SITE, BUILDING, GATE)
COMMAND_TOPIC = gate_topic(ADDRESS, GateChannel.COMMAND)
OTHER_GATE_TOPIC = gate_topic(GateAddress(SITE, BUILDING, "g2"), GateChannel.COMMAND)
ORIGINATOR = f"gate:{SITE}/{BUILDING}/{GATE}"


def unlock(correlation_id: str, **fields: object) -> Command:
    return Command.model_validate(
        {
            "producer": f"gateway:{SITE}",
            "correlation_id": correlation_id,
            "command": "unlock",
            "duration_s": 1.0,
            "reason": "test",
            **fields,
        }
    )


@dataclass
class Site:
    tmp: Path
    broker: Broker
    collector: Collector
    attacker: Publisher
    gate_config: Path
    gate_log: Path
    gateway_db: Path
    gateway_log: Path
    gate: subprocess.Popen[bytes] | None = None
    gateway: subprocess.Popen[bytes] | None = None

    def start_gate(self, **overrides: object) -> None:
        """(Re)start the gate process and wait until it answers a signed ping."""
        if overrides:
            self.gate_config = gate_config(
                self.tmp,
                port=self.broker.port,
                source={"kind": "folder", "target": str(self.tmp / "camera"), "fps": 2},
                key_file=self.tmp / "gallery.key",
                gallery_path=self.tmp / "gallery.bin",
                site=SITE,
                building=BUILDING,
                gate={"id": GATE, "direction": "in"},
                **overrides,
            )
        self.gate = spawn_gate(self.gate_config, self.gate_log)
        ping_id = f"ping-{time.monotonic_ns()}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ping = Command(producer="gateway", correlation_id=ping_id, command="ping")
            self.attacker.publish(COMMAND_TOPIC, TEST_SIGNER.sign(COMMAND_TOPIC, ping))
            if self.result(ping_id, timeout=1.0) is not None:
                return
            assert self.gate.poll() is None, self.gate_log.read_text()[-3000:]
        raise AssertionError("gate did not answer: " + self.gate_log.read_text()[-3000:])

    def kill_gate(self) -> None:
        assert self.gate is not None
        os.kill(self.gate.pid, signal.SIGKILL)
        self.gate.wait(10)
        self.gate = None

    def send(self, payload: bytes, topic: str = COMMAND_TOPIC) -> None:
        self.attacker.publish(topic, payload)

    def result(self, correlation_id: str, timeout: float = 15.0) -> CommandResult | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for topic, payload, _ in self.collector.snapshot():
                if topic.endswith("/command/result"):
                    result = CommandResult.model_validate_json(payload)
                    if result.correlation_id == correlation_id:
                        return result
            time.sleep(0.05)
        return None

    def security_events(self) -> list[SecurityEvent]:
        return [
            SecurityEvent.model_validate_json(payload)
            for topic, payload, _ in self.collector.snapshot()
            if topic.endswith("/security")
        ]

    def attack_alert(self) -> AlertRow | None:
        engine = create_engine(f"sqlite:///{self.gateway_db}")
        try:
            with Session(engine) as session:
                return session.scalars(
                    select(AlertRow).where(
                        AlertRow.type == "command_attack", AlertRow.originator == ORIGINATOR
                    )
                ).first()
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("signing")
    broker = Broker(tmp / "mosquitto")
    broker.start()
    camera = tmp / "camera"
    camera.mkdir()
    cv2.imwrite(str(camera / "empty.jpg"), noise_frame(1))
    write_key(tmp / "gallery.key")
    gw_dir = tmp / "gateway"
    gw_dir.mkdir()
    gateway_cfg = write_config(gw_dir / "gateway.yaml", gateway_config(gw_dir, broker.port))
    collector = Collector(broker.port, f"dorm/{SITE}/{BUILDING}/gate/{GATE}/#").start()
    attacker = Publisher(broker.port, client_id="anonymous-attacker")
    state = Site(
        tmp,
        broker,
        collector,
        attacker,
        gate_config=tmp / "gate.yaml",
        gate_log=tmp / "gate.log",
        gateway_db=gw_dir / "gateway.db",
        gateway_log=gw_dir / "gateway.log",
    )
    state.gateway = spawn_gateway(gateway_cfg, state.gateway_log)
    try:
        wait_until(lambda: state.gateway_db.exists(), 30, "the gateway database")
        state.start_gate(command_auth=command_auth())
        yield state
    finally:
        for proc in (state.gate, state.gateway):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        attacker.stop()
        collector.stop()
        broker.stop()


def door_unlocks(site: Site) -> int:
    return site.gate_log.read_text().count("door unlocked")


def test_forged_unlocks_are_refused_by_a_real_gate_and_raise_an_alert(site: Site) -> None:
    """Unsigned, self-signed, altered and other-gate unlocks from an anonymous client: the door
    stays shut, each is answered 'refused', reported as a SecurityEvent and, at the gateway,
    raises the critical command_attack alert."""
    before_unlocks = door_unlocks(site)
    before_events = len(site.security_events())
    intruder = MessageSigner(parse_private_key(generate_private_key_text()))
    altered = json.loads(TEST_SIGNER.sign(COMMAND_TOPIC, unlock("forged-altered")))
    altered["duration_s"] = 3600.0
    forged = {
        "forged-unsigned": unlock("forged-unsigned").to_bytes(),
        "forged-own-key": intruder.sign(COMMAND_TOPIC, unlock("forged-own-key")),
        "forged-altered": json.dumps(altered).encode(),
        "forged-other-gate": TEST_SIGNER.sign(OTHER_GATE_TOPIC, unlock("forged-other-gate")),
    }
    for payload in forged.values():
        site.send(payload)
    details = {}
    for correlation_id in forged:
        result = site.result(correlation_id)
        assert result is not None, site.gate_log.read_text()[-3000:]
        assert not result.ok
        details[correlation_id] = result.detail
    assert "no signature" in details["forged-unsigned"]
    assert "does not trust" in details["forged-own-key"]
    assert "does not match" in details["forged-altered"]
    assert "does not match" in details["forged-other-gate"]
    assert door_unlocks(site) == before_unlocks, "a forged command opened the door"

    events = site.security_events()[before_events:]
    assert sorted(e.kind for e in events) == [
        "bad_signature",
        "bad_signature",
        "unknown_key",
        "unsigned",
    ]
    assert {(e.target, e.command) for e in events} == {("command", "unlock")}

    wait_until(lambda: site.attack_alert() is not None, 20, "the command_attack alert")
    alert = site.attack_alert()
    assert alert is not None
    assert alert.severity == 4  # critical
    wait_until(
        lambda: (a := site.attack_alert()) is not None and a.count >= 4,
        20,
        "every forged command counted on the alert",
    )


def test_a_replayed_unlock_is_refused_even_after_the_gate_is_killed(site: Site) -> None:
    """A captured, validly signed unlock opens the door once; the same bytes sent again are
    refused as a replay, also after kill -9 and a restart of the gate (nonces are on disk)."""
    captured = TEST_SIGNER.sign(COMMAND_TOPIC, unlock("genuine-1"))
    unlocks = door_unlocks(site)
    site.send(captured)
    first = site.result("genuine-1")
    assert first is not None and first.ok, site.gate_log.read_text()[-3000:]
    assert "unlocked" in first.detail
    wait_until(lambda: door_unlocks(site) == unlocks + 1, 10, "the door to unlock")

    wait_until(
        lambda: site.security_events() == [] or site.attack_alert() is not None,
        20,
        "earlier attacks to be stored at the gateway",
    )
    earlier = site.attack_alert()
    counted = earlier.count if earlier is not None else 0
    before = len(site.collector.snapshot())
    site.send(captured)
    wait_until(
        lambda: any(
            t.endswith("/command/result")
            and CommandResult.model_validate_json(p).correlation_id == "genuine-1"
            for t, p, _ in site.collector.snapshot()[before:]
        ),
        15,
        "the answer to the replay",
    )
    replies = [
        CommandResult.model_validate_json(p)
        for t, p, _ in site.collector.snapshot()[before:]
        if t.endswith("/command/result")
    ]
    replay = next(r for r in replies if r.correlation_id == "genuine-1")
    assert not replay.ok and "replayed" in replay.detail

    wait_until(
        lambda: (a := site.attack_alert()) is not None and a.count > counted,
        20,
        "the replay counted on the command_attack alert",
    )

    site.kill_gate()
    site.start_gate()
    unlocks = door_unlocks(site)
    before_events = len(site.security_events())
    site.send(captured)
    wait_until(
        lambda: any(e.kind == "replayed" for e in site.security_events()[before_events:]),
        15,
        "the replay after the restart to be reported",
    )
    assert door_unlocks(site) == unlocks, "a replay opened the door after a restart"


def test_a_stale_signed_unlock_is_refused_but_is_no_attack(site: Site) -> None:
    """Queued through an outage, a genuine command may arrive late: refused, not an alarm."""
    before_events = len(site.security_events())
    old = unlock("stale-1", ts=utc_now() - timedelta(minutes=5))
    site.send(TEST_SIGNER.sign(COMMAND_TOPIC, old))
    result = site.result("stale-1")
    assert result is not None and not result.ok
    assert "stale" in result.detail
    time.sleep(0.5)
    assert site.security_events()[before_events:] == []


def test_a_command_dated_in_the_future_is_refused_as_an_attack(site: Site) -> None:
    """Pre-signed for later use (or a gateway clock far ahead): refused and reported."""
    ahead = unlock("future-1", ts=utc_now() + timedelta(minutes=10))
    site.send(TEST_SIGNER.sign(COMMAND_TOPIC, ahead))
    result = site.result("future-1")
    assert result is not None and not result.ok
    wait_until(
        lambda: any(e.kind == "future_dated" for e in site.security_events()),
        10,
        "the future-dated command to be reported",
    )


def test_key_rotation_on_a_real_gate(site: Site) -> None:
    """Rotation as docs/operations.md describes it: the gate trusts old and new keys, then only
    the new one; commands by the retired key are refused."""
    new = MessageSigner(parse_private_key(generate_private_key_text()))
    site.kill_gate()
    site.start_gate(
        command_auth=command_auth(trusted_keys=[TEST_SIGNER.public_key, new.public_key])
    )
    site.send(new.sign(COMMAND_TOPIC, unlock("rotate-new")))
    site.send(TEST_SIGNER.sign(COMMAND_TOPIC, unlock("rotate-old")))
    for correlation_id in ("rotate-new", "rotate-old"):
        result = site.result(correlation_id)
        assert result is not None and result.ok, (correlation_id, result)

    site.kill_gate()
    # The harness pings with the test key, so the gate keeps trusting it here; the retired key
    # is a third one that was trusted before and is not any more.
    retired = MessageSigner(parse_private_key(generate_private_key_text()))
    site.start_gate(command_auth=command_auth(trusted_keys=[TEST_SIGNER.public_key]))
    site.send(retired.sign(COMMAND_TOPIC, unlock("rotate-retired")))
    result = site.result("rotate-retired")
    assert result is not None and not result.ok
    assert "does not trust" in result.detail
    site.send(new.sign(COMMAND_TOPIC, unlock("rotate-dropped")))
    dropped = site.result("rotate-dropped")
    assert dropped is not None and not dropped.ok, "a key removed from the gate still works"


def test_a_gallery_forged_with_the_right_gallery_key_is_refused(site: Site) -> None:
    """Whoever holds the shared gallery key (any gate's disk) could build a valid gallery that
    admits anyone; without the gateway's signature the gate refuses to install it."""
    key = load_key(key_file=site.tmp / "gallery.key", key_env=None)
    everyone = make_gallery(version=99)
    update = GalleryUpdate(
        producer=f"gateway:{SITE}",
        version=99,
        correlation_id="forged-gallery",
        blob_b64=base64.b64encode(encrypt_gallery(everyone, key)).decode(),
    )
    topic = gate_topic(ADDRESS, GateChannel.GALLERY)
    before = len(site.security_events())
    site.send(update.to_bytes(), topic)
    site.send(
        MessageSigner(parse_private_key(generate_private_key_text())).sign(topic, update), topic
    )
    wait_until(lambda: len(site.security_events()) >= before + 2, 15, "two refused galleries")
    events = site.security_events()[before:]
    assert sorted((e.target, e.kind) for e in events) == [
        ("gallery", "unknown_key"),
        ("gallery", "unsigned"),
    ]

    def refused_acks() -> list[GalleryAck]:
        acks = [
            GalleryAck.model_validate_json(p)
            for t, p, _ in site.collector.snapshot()
            if t.endswith("/gallery/ack")
        ]
        return [a for a in acks if a.correlation_id == "forged-gallery"]

    # The gate reports the attack first, then answers: wait for both answers too.
    wait_until(lambda: len(refused_acks()) >= 2, 15, "both refused galleries answered")
    refused = refused_acks()
    assert len(refused) == 2 and not any(a.applied for a in refused)
    assert all(a.version != 99 for a in refused), "the forged version was installed"


def test_command_results_between_access_events_leave_no_gap_at_the_gateway(site: Site) -> None:
    """Access events, command results and gallery acks share the gate's outbox sequence: the
    gateway must see one gap-free stream (it raised a false event_gap for every command)."""
    before = len(site.collector.snapshot())
    card = gate_topic(ADDRESS, GateChannel.CARD)
    site.send(CardSwipe(producer="reader", card_uid="DEADBEEF01").to_bytes(), card)
    ping = Command(producer="gateway", correlation_id="gap-ping", command="ping")
    site.send(TEST_SIGNER.sign(COMMAND_TOPIC, ping))
    assert site.result("gap-ping") is not None
    site.send(CardSwipe(producer="reader", card_uid="DEADBEEF02").to_bytes(), card)
    wait_until(
        lambda: (
            sum(1 for t, _, _ in site.collector.snapshot()[before:] if t.endswith("/event")) >= 2
        ),
        15,
        "two access events",
    )
    seqs = [
        json.loads(p)["seq"]
        for t, p, _ in site.collector.snapshot()[before:]
        if t.endswith(("/event", "/command/result"))
    ]
    assert sorted(seqs) == list(range(min(seqs), min(seqs) + 3)), seqs
    time.sleep(1.0)  # the gateway's batch
    engine = create_engine(f"sqlite:///{site.gateway_db}")
    try:
        with Session(engine) as session:
            gaps = session.scalars(select(AlertRow).where(AlertRow.type == "event_gap")).all()
    finally:
        engine.dispose()
    assert [g.detail for g in gaps] == []
