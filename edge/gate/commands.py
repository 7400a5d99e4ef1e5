"""Commands from the gateway (unlock, hold open, lock, ping, send_probe): verified, then carried
out, answered.

A command must carry the gateway's signature, be fresh and use a nonce never seen before. A
forged, replayed or future-dated one is refused and reported as an attack; a stale one is
refused quietly. Every command, carried out or not, gets a `CommandResult` answer; the answer
to ``send_probe`` carries the sealed probe of the access event named (wrong-match feedback,
docs/decisions/0014).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from datetime import datetime

from contracts.models import Command, CommandResult, utc_now
from contracts.signing import MessageVerifier, SignatureError, Verified
from contracts.topics import GateChannel
from edge.gate.replay import FreshnessRule, NonceLedger, freshness
from edge.gate.reporting import GateReporter
from edge.mqtt import ReceivedMessage

log = logging.getLogger(__name__)

HOLD_OPEN_DEFAULT_S = 3600.0


class CommandHandler:
    """Receives the gate's commands and drives the door through the callbacks it is given."""

    def __init__(
        self,
        verifier: MessageVerifier,
        nonces: NonceLedger,
        rule: FreshnessRule,
        reporter: GateReporter,
        *,
        unlock: Callable[[float], None],
        lock: Callable[[], None],
        open_time_s: float,
        take_probe: Callable[[str], bytes | None] = lambda event_id: None,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.verifier = verifier
        self.nonces = nonces
        self.rule = rule
        self.reporter = reporter
        self.unlock = unlock  # unlock the door for so many seconds
        self.lock = lock
        self.open_time_s = open_time_s  # an unlock without a duration lasts this long
        self.take_probe = take_probe  # the sealed probe of an access event, handed over once
        self.wall = wall

    def start(self) -> None:
        """Open the ledger of used nonces."""
        self.nonces.open()

    def stop(self) -> None:
        self.nonces.close()

    def on_command(self, msg: ReceivedMessage) -> None:
        """A command message: refuse it, or carry it out; answer either way."""
        command = self.reporter.parse(Command, msg, "command")
        if command is None:
            return
        refusal = self._refusal(msg, command)
        if refusal is not None:
            self._answer(command, ok=False, detail=refusal)
            return
        if command.command == "send_probe":
            self._send_probe(command)
            return
        if command.command == "unlock":
            duration = command.duration_s or self.open_time_s
            self.unlock(duration)
            detail = f"unlocked for {duration:.0f}s"
        elif command.command == "hold_open":
            duration = command.duration_s or HOLD_OPEN_DEFAULT_S
            self.unlock(duration)
            detail = f"held open for {duration:.0f}s"
        elif command.command in ("lock", "release"):
            self.lock()
            detail = "locked"
        else:
            detail = "pong"
        log.warning("command %s from gateway (%s): %s", command.command, command.reason, detail)
        self._answer(command, ok=True, detail=detail)

    def _refusal(self, msg: ReceivedMessage, command: Command) -> str | None:
        """Why a command must not be carried out (forged, replayed, stale), or None."""
        try:
            verified: Verified = self.verifier.verify(msg.topic, msg.payload)
        except SignatureError as exc:
            self.reporter.attack("command", exc.problem, str(exc), command.command)
            return f"refused: {exc}"
        verdict, age_s = freshness(command.ts, self.wall(), self.rule)
        if verdict == "stale":
            # A stale unlock must never open a door long after it was meant (e.g. queued during
            # an outage); not an attack by itself, and the gateway re-sends if the need persists.
            log.warning("command %s refused: %.0f s old", command.command, age_s)
            return f"stale command ({age_s:.0f}s old), ignored"
        if verdict == "future_dated":
            detail = f"dated {-age_s:.0f} s ahead of the gate's clock"
            self.reporter.attack("command", "future_dated", detail, command.command)
            return f"refused: {detail}"
        expires = command.ts.timestamp() + self.rule.remember_s
        if not self.nonces.claim(verified.nonce, expires, self.wall().timestamp()):
            detail = "nonce already used: a replayed command"
            self.reporter.attack("command", "replayed", detail, command.command)
            return f"refused: {detail}"
        return None

    def _send_probe(self, command: Command) -> None:
        """Hand over the sealed probe of one access event (it is deleted here)."""
        event_id = command.probe_event_id
        if event_id is None:
            self._answer(command, ok=False, detail="send_probe needs probe_event_id")
            return
        sealed = self.take_probe(event_id)
        if sealed is None:
            log.warning("probe of event %s asked for but not kept", event_id)
            self._answer(
                command,
                ok=False,
                detail=f"no probe kept for event {event_id}: not decided by face at this gate, "
                "past the retention, or already handed over",
            )
            return
        log.info("probe of event %s handed over (%s)", event_id, command.reason or "-")
        probe_b64 = base64.b64encode(sealed).decode("ascii")
        self._answer(command, ok=True, detail=f"probe of event {event_id}", probe_b64=probe_b64)

    def _answer(
        self, command: Command, *, ok: bool, detail: str, probe_b64: str | None = None
    ) -> None:
        result = CommandResult(
            producer=self.reporter.producer,
            correlation_id=command.correlation_id,
            ok=ok,
            detail=detail,
            probe_b64=probe_b64,
        )
        self.reporter.send(GateChannel.COMMAND_RESULT, result)
