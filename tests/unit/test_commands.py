"""Gateway commands at the gate: only signed, fresh, unseen commands move the door; all answered."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts.access import Direction, GateInfo
from contracts.models import Command, CommandResult, SecurityEvent
from contracts.signing import (
    MessageSigner,
    MessageVerifier,
    generate_private_key_text,
    parse_private_key,
)
from edge.gate.commands import CommandHandler
from edge.gate.replay import FreshnessRule, NonceLedger
from edge.gate.reporting import GateReporter
from edge.mqtt import ReceivedMessage
from tests.gatekit import RecordingOutbox

NOW = datetime(2024, 3, 6, 4, 0, tzinfo=UTC)
GATE = GateInfo("campus1", "b1", "g1", Direction.IN)
TOPIC = "dorm/campus1/b1/gate/g1/command"
SIGNER = MessageSigner(parse_private_key(generate_private_key_text()))
STRANGER = MessageSigner(parse_private_key(generate_private_key_text()))


class Door:
    def __init__(self) -> None:
        self.actions: list[tuple[str, float | None]] = []

    def unlock(self, duration_s: float) -> None:
        self.actions.append(("unlock", duration_s))

    def lock(self) -> None:
        self.actions.append(("lock", None))


Gate = tuple[CommandHandler, RecordingOutbox, Door]


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    outbox, door = RecordingOutbox(), Door()
    handler = CommandHandler(
        MessageVerifier.from_texts([SIGNER.public_key]),
        NonceLedger(tmp_path / "nonces.sqlite"),
        FreshnessRule(max_age_s=60.0, max_future_s=30.0),
        GateReporter("gate:campus1/b1/g1", GATE, outbox),  # type: ignore[arg-type]
        unlock=door.unlock,
        lock=door.lock,
        open_time_s=3.0,
        wall=lambda: NOW,
    )
    handler.start()
    yield handler, outbox, door
    handler.stop()


def _message(payload: bytes) -> ReceivedMessage:
    return ReceivedMessage(TOPIC, payload, 1, False)


def _command(command: str = "unlock", *, ts: datetime = NOW, **fields: object) -> Command:
    return Command(producer="gateway", correlation_id="c1", command=command, ts=ts, **fields)  # type: ignore[arg-type]


def _results(outbox: RecordingOutbox) -> list[tuple[bool, str]]:
    return [(m.ok, m.detail) for m in outbox.parsed() if isinstance(m, CommandResult)]


def _attacks(outbox: RecordingOutbox) -> list[str]:
    return [m.kind for m in outbox.parsed() if isinstance(m, SecurityEvent)]


@pytest.mark.parametrize(
    ("command", "fields", "action", "detail"),
    [
        ("unlock", {}, ("unlock", 3.0), "unlocked for 3s"),
        ("unlock", {"duration_s": 8.0}, ("unlock", 8.0), "unlocked for 8s"),
        ("hold_open", {}, ("unlock", 3600.0), "held open for 3600s"),
        ("lock", {}, ("lock", None), "locked"),
        ("release", {}, ("lock", None), "locked"),
    ],
)
def test_a_signed_fresh_command_is_carried_out_and_answered(
    gate: Gate,
    command: str,
    fields: dict[str, object],
    action: tuple[str, float | None],
    detail: str,
) -> None:
    handler, outbox, door = gate
    handler.on_command(_message(SIGNER.sign(TOPIC, _command(command, **fields))))
    assert door.actions == [action]
    assert _results(outbox) == [(True, detail)]
    assert _attacks(outbox) == []


def test_ping_is_answered_without_moving_the_door(
    gate: Gate,
) -> None:
    handler, outbox, door = gate
    handler.on_command(_message(SIGNER.sign(TOPIC, _command("ping"))))
    assert (door.actions, _results(outbox)) == ([], [(True, "pong")])


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (_command().to_bytes(), "unsigned"),
        (STRANGER.sign(TOPIC, _command()), "unknown_key"),
        (SIGNER.sign("dorm/campus1/b1/gate/g2/command", _command()), "bad_signature"),
    ],
    ids=["unsigned", "signed-by-a-stranger", "signed-for-another-gate"],
)
def test_a_forged_command_is_refused_and_reported_as_an_attack(
    gate: Gate, payload: bytes, kind: str
) -> None:
    handler, outbox, door = gate
    handler.on_command(_message(payload))
    assert door.actions == []
    [(ok, detail)] = _results(outbox)
    assert not ok and detail.startswith("refused:")
    assert _attacks(outbox) == [kind]


def test_a_replayed_command_is_refused_as_an_attack(
    gate: Gate,
) -> None:
    handler, outbox, door = gate
    signed = SIGNER.sign(TOPIC, _command())
    handler.on_command(_message(signed))
    handler.on_command(_message(signed))
    assert door.actions == [("unlock", 3.0)]
    assert [ok for ok, _ in _results(outbox)] == [True, False]
    assert _attacks(outbox) == ["replayed"]


def test_a_stale_command_is_refused_quietly(gate: Gate) -> None:
    """An unlock queued during an outage must not open the door later; it is no attack."""
    handler, outbox, door = gate
    old = _command(ts=NOW - timedelta(seconds=61))
    handler.on_command(_message(SIGNER.sign(TOPIC, old)))
    assert door.actions == []
    assert _results(outbox) == [(False, "stale command (61s old), ignored")]
    assert _attacks(outbox) == []


def test_a_command_dated_beyond_the_clock_skew_is_refused_as_an_attack(
    gate: Gate,
) -> None:
    handler, outbox, door = gate
    ahead = _command(ts=NOW + timedelta(seconds=31))
    handler.on_command(_message(SIGNER.sign(TOPIC, ahead)))
    assert door.actions == []
    assert _results(outbox) == [(False, "refused: dated 31 s ahead of the gate's clock")]
    assert _attacks(outbox) == ["future_dated"]


def test_a_malformed_command_is_rejected_and_counted_without_an_answer(
    gate: Gate,
) -> None:
    handler, outbox, door = gate
    handler.on_command(_message(b'{"command": "explode"}'))
    assert (door.actions, outbox.sent) == ([], [])
    assert handler.reporter.rejected == 1
