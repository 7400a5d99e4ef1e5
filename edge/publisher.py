"""Reliable publishing: every QoS 1 message goes through the durable outbox first.

A message is removed from the outbox only when the broker acknowledges it; after an outage or
a restart the outbox is replayed in order. The consumer deduplicates by event id.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque

from edge.mqtt import MqttLink
from edge.outbox import Outbox, OutboxFullError

log = logging.getLogger(__name__)


class ReliablePublisher:
    """Pumps the outbox into the MQTT link with a bounded in-flight window."""

    def __init__(self, outbox: Outbox, link: MqttLink, *, window: int = 64) -> None:
        self.outbox = outbox
        self.link = link
        self.window = window
        self.rejected = 0
        self.alarm: str | None = None
        self._acks: queue.SimpleQueue[tuple[int, str | None]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inflight: dict[int, int] = {}  # mid -> seq; touched by the pump thread only
        self._last_sent = 0
        # Messages that could not be stored because the disk is full: kept in memory,
        # published directly, and an alarm is raised until the outbox accepts writes again.
        self._overflow: deque[tuple[str, bytes, int, bool]] = deque()
        self._overflow_lock = threading.Lock()

    def start(self) -> None:
        """Hook into the link and start the pump thread."""
        self.link.on_ack = self._on_ack
        self.link.on_connection_change = lambda up: self._wake.set()
        self._thread = threading.Thread(target=self._run, name="outbox-pump", daemon=True)
        self._thread.start()

    def send(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        """Store durably, then publish in order; returns the outbox sequence (0 on overflow)."""
        with self._overflow_lock:
            if self._overflow:  # keep order behind messages already waiting in memory
                self._overflow.append((topic, payload, qos, retain))
                self._wake.set()
                return 0
        try:
            seq = self.outbox.append(topic, payload, qos=qos, retain=retain)
        except OutboxFullError as exc:
            self.alarm = f"outbox full: {exc}"
            log.critical("outbox cannot store a message (%s); holding it in memory", exc)
            with self._overflow_lock:
                self._overflow.append((topic, payload, qos, retain))
            self._wake.set()
            return 0
        self._wake.set()
        return seq

    def depth(self) -> int:
        """Messages not yet acknowledged by the broker."""
        with self._overflow_lock:
            overflow = len(self._overflow)
        return self.outbox.depth() + overflow

    def flush(self, timeout: float) -> bool:
        """Wait until everything is acknowledged; True when the outbox is empty."""
        step = 0.02
        for _ in range(max(1, int(timeout / step))):
            if self.depth() == 0:
                return True
            self._wake.set()
            self._stop.wait(step)
        return self.depth() == 0

    def stop(self) -> None:
        """Stop the pump; unacknowledged messages stay in the outbox for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _on_ack(self, mid: int, error: str | None) -> None:
        self._acks.put((mid, error))
        self._wake.set()

    def _drain_acks(self) -> None:
        while True:
            try:
                mid, error = self._acks.get_nowait()
            except queue.Empty:
                return
            seq = self._inflight.pop(mid, None)
            if seq is None:
                continue
            if error is not None:
                # Kept in the outbox: retried after a restart once the operator fixes the cause.
                self.rejected += 1
                self.alarm = f"broker rejected outbox message {seq}: {error}"
                continue
            self.outbox.remove(seq)

    def _drain_overflow(self) -> None:
        with self._overflow_lock:
            while self._overflow:
                topic, payload, qos, retain = self._overflow[0]
                try:
                    self.outbox.append(topic, payload, qos=qos, retain=retain)
                except OutboxFullError:
                    return
                self._overflow.popleft()
            if self.alarm and self.alarm.startswith("outbox full"):
                log.warning("outbox accepts writes again; alarm cleared")
                self.alarm = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._drain_acks()
                self._drain_overflow()
                self._pump()
            except Exception:
                log.exception("outbox pump error; retrying")
                self._stop.wait(0.5)

    def _pump(self) -> None:
        if not self.link.connected:
            return
        room = self.window - len(self._inflight)
        if room <= 0:
            return
        for item in self.outbox.pending(room, after_seq=self._last_sent):
            try:
                mid = self.link.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
            except ConnectionError as exc:
                log.warning("publish deferred: %s", exc)
                return
            self._inflight[mid] = item.seq
            self._last_sent = item.seq
