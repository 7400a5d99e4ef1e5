"""Commands to gates (unlock, hold open, lock, ...): publish, record, and match the answers.

A command is recorded before it is published, so the gate's answer (which may arrive before the
publish call returns) always finds its row. Every command carries a fresh correlation id; the
gate answers on its COMMAND_RESULT topic and the ingest hands that to ``on_result``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from contracts.models import Command, CommandResult
from contracts.signing import MessageSigner
from contracts.topics import GateAddress, GateChannel, gate_topic
from gateway.db.schema import Gate, GateCommand
from gateway.ports import Clock, Publisher

log = logging.getLogger(__name__)

# What an operator may send (POST /api/gates/{gate}/command); send_probe is only sent by the
# wrong-match reports (request_probe).
CommandName = Literal["unlock", "lock", "hold_open", "release", "ping"]

# A fire evacuation keeps every door of the building unlocked until a guard releases it. The
# gate re-locks by itself when the hold runs out, so the hold is long (the contract allows up to
# 24 h); "release" (POST /api/gates/{gate}/command) ends it early.
FIRE_ALARM_HOLD_S = 12 * 3600.0


class UnknownGateError(LookupError):
    """No gate with that key is known to the gateway."""


class BrokerUnavailableError(ConnectionError):
    """The command cannot be sent now: no broker link, the broker refused it, or no signing key."""


class CommandView(BaseModel):
    """One command and, once the gate answered, its result."""

    correlation_id: str
    gate_key: str
    command: str
    reason: str
    issued_by: str
    issued_at: datetime
    ok: bool | None
    detail: str | None
    result_at: datetime | None

    @classmethod
    def of(cls, row: GateCommand) -> CommandView:
        return cls.model_validate(row, from_attributes=True)


class GateDispatch(BaseModel):
    """What happened to one gate's command in a building-wide action (fire alarm)."""

    gate_key: str
    sent: bool
    correlation_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Target:
    gate_key: str
    address: GateAddress


class CommandService:
    """Publishes gate commands through the gateway's MQTT link and records them."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        publisher: Publisher | None,
        signer: MessageSigner | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._publisher = publisher
        self._signer = signer

    def issue(
        self,
        gate_key: str,
        command: CommandName,
        duration_s: float | None,
        reason: str,
        user: str,
    ) -> CommandView:
        """Send one command to one gate (QoS 1); UnknownGateError or BrokerUnavailableError."""
        publisher = self._require_publisher()
        target = self._target(gate_key)
        return self._send(publisher, target, command, duration_s, reason, user)

    def request_probe(
        self, gate_key: str, event_id: str, reason: str, user: str, correlation_id: str
    ) -> CommandView:
        """Ask a gate for the sealed probe of one of its access events (a wrong-match report).

        The caller records ``correlation_id`` first, since the answer may come back before this
        returns. UnknownGateError or BrokerUnavailableError; the answer comes to ``on_result``.
        """
        publisher = self._require_publisher()
        target = self._target(gate_key)
        return self._send(
            publisher, target, "send_probe", None, reason, user, event_id, correlation_id
        )

    def fire_alarm(self, building: str, user: str) -> list[GateDispatch]:
        """Hold every gate of the building open for an evacuation; the status of each gate.

        Gates that cannot be reached now are reported, not skipped silently; the others are
        still opened. UnknownGateError when the building has no gates, BrokerUnavailableError
        when no command could be published at all.
        """
        publisher = self._require_publisher()
        with self._sessions() as session:
            gates = list(
                session.scalars(
                    select(Gate).where(Gate.building == building).order_by(Gate.gate_key)
                )
            )
        if not gates:
            raise UnknownGateError(f"no gates known in building {building!r}")
        log.warning("FIRE ALARM in building %s: opening %d gates", building, len(gates))
        results: list[GateDispatch] = []
        for gate in gates:
            try:
                target = _Target(gate.gate_key, GateAddress(gate.site, gate.building, gate.gate_id))
                view = self._send(
                    publisher, target, "hold_open", FIRE_ALARM_HOLD_S, "fire alarm", user
                )
            except (BrokerUnavailableError, ValueError) as exc:
                results.append(GateDispatch(gate_key=gate.gate_key, sent=False, error=str(exc)))
                continue
            results.append(
                GateDispatch(gate_key=gate.gate_key, sent=True, correlation_id=view.correlation_id)
            )
        if not any(r.sent for r in results):
            raise BrokerUnavailableError(
                f"fire alarm for {building}: no gate could be commanded: "
                + "; ".join(f"{r.gate_key}: {r.error}" for r in results)
            )
        return results

    def on_result(self, gate_key: str, result: CommandResult) -> None:
        """Store a gate's answer to one of our commands (called by the ingest)."""
        with self._sessions.begin() as session:
            row = session.get(GateCommand, result.correlation_id)
            if row is None:
                log.warning(
                    "command result for an unknown correlation id from %s (ignored)", gate_key
                )
                return
            if row.gate_key != gate_key:
                log.warning(
                    "command result for %s arrived from %s (ignored)", row.gate_key, gate_key
                )
                return
            row.ok = result.ok
            row.detail = result.detail
            row.result_at = result.ts
        log.info("gate %s answered %s: ok=%s %s", gate_key, row.command, result.ok, result.detail)

    def get(self, correlation_id: str) -> CommandView | None:
        """One recorded command, or None."""
        with self._sessions() as session:
            row = session.get(GateCommand, correlation_id)
            return None if row is None else CommandView.of(row)

    def recent(self, gate_key: str, limit: int = 50) -> list[CommandView]:
        """The newest commands sent to a gate."""
        with self._sessions() as session:
            rows = session.scalars(
                select(GateCommand)
                .where(GateCommand.gate_key == gate_key)
                .order_by(GateCommand.issued_at.desc())
                .limit(limit)
            )
            return [CommandView.of(r) for r in rows]

    # --- internals ------------------------------------------------------------------------

    def _require_publisher(self) -> Publisher:
        if self._signer is None:
            raise BrokerUnavailableError(
                "no command_signing key is configured: gates refuse unsigned commands"
            )
        if self._publisher is None:
            raise BrokerUnavailableError(
                "no MQTT connection to the gates: the gateway runs without a broker link"
            )
        return self._publisher

    def _target(self, gate_key: str) -> _Target:
        with self._sessions() as session:
            gate = session.get(Gate, gate_key)
            if gate is None:
                raise UnknownGateError(f"no gate {gate_key!r}")
            return _Target(gate.gate_key, GateAddress(gate.site, gate.building, gate.gate_id))

    def _send(
        self,
        publisher: Publisher,
        target: _Target,
        command: CommandName | Literal["send_probe"],
        duration_s: float | None,
        reason: str,
        user: str,
        probe_event_id: str | None = None,
        correlation_id: str | None = None,
    ) -> CommandView:
        now = self._clock()
        message = Command(
            producer=f"gateway:{target.address.site}",
            ts=now,
            correlation_id=correlation_id or uuid.uuid4().hex,
            command=command,
            duration_s=duration_s,
            reason=reason,
            probe_event_id=probe_event_id,
        )
        with self._sessions.begin() as session:
            row = GateCommand(
                correlation_id=message.correlation_id,
                gate_key=target.gate_key,
                command=command,
                reason=reason[:200],
                issued_by=user,
                issued_at=now,
            )
            session.add(row)
        topic = gate_topic(target.address, GateChannel.COMMAND)
        assert self._signer is not None  # checked by _require_publisher
        try:
            publisher.publish(topic, self._signer.sign(topic, message), qos=1, retain=False)
        except ConnectionError as exc:
            with self._sessions.begin() as session:
                failed = session.get(GateCommand, message.correlation_id)
                if failed is not None and failed.ok is None:
                    failed.ok = False
                    failed.detail = f"not sent: {exc}"
                    failed.result_at = self._clock()
            log.error("command %s to %s not sent: %s", command, target.gate_key, exc)
            raise BrokerUnavailableError(
                f"the MQTT broker did not take the {command} command for {target.gate_key}: {exc}"
            ) from exc
        log.warning(
            "command %s sent to %s by %s (%s)", command, target.gate_key, user, reason or "-"
        )
        return CommandView.of(row)
