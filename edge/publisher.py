"""Reliable publishing: every QoS 1 message goes through the durable outbox first.

A message is removed from the outbox only when the broker acknowledges it; after an outage or
a restart the outbox is replayed in order. The consumer deduplicates by event id.

When the disk is too full to store a message, it is held in memory (in order, behind anything
already held), published directly while the broker is reachable, stored as soon as the outbox
accepts writes again, and an alarm is raised until then.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable

from edge.mqtt import MqttLink
from edge.outbox import Outbox, OutboxFullError

log = logging.getLogger(__name__)

Payload = bytes | Callable[[int | None], bytes]


class ReliablePublisher:
    """Pumps the outbox into the MQTT link with a bounded in-flight window."""

    def __init__(self, outbox: Outbox, link: MqttLink, *, window: int = 64) -> None:
        self.outbox = outbox
        self.link = link
        self.window = window
        self.rejected = 0
        self.store_failures = 0
        self.alarm: str | None = None
        self._acks: queue.SimpleQueue[tuple[int, str | None]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # mid -> outbox seq (> 0) or held-message id (< 0); touched by the pump thread only.
        self._inflight: dict[int, int] = {}
        self._last_sent = 0
        self._held: OrderedDict[int, tuple[str, bytes, int, bool]] = OrderedDict()
        self._held_sent: set[int] = set()
        self._held_next = -1
        self._held_lock = threading.Lock()

    def start(self) -> None:
        """Hook into the link and start the pump thread."""
        self.link.on_ack = self._on_ack
        self.link.on_connection_change = lambda up: self._wake.set()
        self._thread = threading.Thread(target=self._run, name="outbox-pump", daemon=True)
        self._thread.start()

    def send(self, topic: str, payload: Payload, *, qos: int = 1, retain: bool = False) -> int:
        """Store durably, then publish in order; returns the outbox sequence (0 when held).

        `payload` may be a function of the sequence number, so a message can carry it.
        """
        with self._held_lock:
            if self._held:  # keep order behind messages already held in memory
                self._hold(topic, payload, qos, retain, "messages already held")
                return 0
        try:
            if callable(payload):
                seq = self.outbox.append_numbered(topic, payload, qos=qos, retain=retain)
            else:
                seq = self.outbox.append(topic, payload, qos=qos, retain=retain)
        except OutboxFullError as exc:
            with self._held_lock:
                self._hold(topic, payload, qos, retain, str(exc))
            return 0
        self._wake.set()
        return seq

    def _hold(self, topic: str, payload: Payload, qos: int, retain: bool, why: str) -> None:
        data = payload(None) if callable(payload) else payload
        self._held[self._held_next] = (topic, data, qos, retain)
        self._held_next -= 1
        self.store_failures += 1
        self.alarm = f"outbox full: {len(self._held)} message(s) held in memory ({why})"
        log.critical("outbox cannot store a message on %s: %s", topic, why)
        self._wake.set()

    def depth(self) -> int:
        """Messages not yet acknowledged by the broker."""
        with self._held_lock:
            held = len(self._held)
        return self.outbox.depth() + held

    def flush(self, timeout: float) -> bool:
        """Wait until everything is acknowledged; True when nothing is left."""
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
        self._drain_acks()
        self._store_held()
        with self._held_lock:
            if self._held:
                log.critical(
                    "shutting down with %s message(s) that could not be stored (disk full) "
                    "nor acknowledged by the broker: they are lost",
                    len(self._held),
                )

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
                # Kept: retried after a restart once the operator fixes the cause (e.g. ACL).
                self.rejected += 1
                self.alarm = f"broker rejected message {seq}: {error}"
                if seq < 0:
                    with self._held_lock:
                        self._held_sent.discard(seq)
                continue
            if seq > 0:
                self.outbox.remove(seq)
            else:
                with self._held_lock:
                    self._held.pop(seq, None)
                    self._held_sent.discard(seq)
                    if not self._held and self.alarm and self.alarm.startswith("outbox full"):
                        self.alarm = None

    def _store_held(self) -> None:
        """Move held messages not in flight into the outbox once it accepts writes."""
        with self._held_lock:
            for held_id in list(self._held):
                if held_id in self._held_sent:
                    continue
                topic, payload, qos, retain = self._held[held_id]
                try:
                    self.outbox.append(topic, payload, qos=qos, retain=retain)
                except OutboxFullError:
                    return
                del self._held[held_id]
            if not self._held and self.alarm and self.alarm.startswith("outbox full"):
                log.warning("outbox accepts writes again; alarm cleared")
                self.alarm = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._drain_acks()
                self._store_held()
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
        items = self.outbox.pending(room, after_seq=self._last_sent)
        for item in items:
            try:
                mid = self.link.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
            except ConnectionError as exc:
                log.warning("publish deferred: %s", exc)
                return
            self._inflight[mid] = item.seq
            self._last_sent = item.seq
        room -= len(items)
        if room <= 0 or self.outbox.pending(1, after_seq=self._last_sent):
            return
        # The stored backlog is out: send held messages directly, in order.
        with self._held_lock:
            todo = [(k, v) for k, v in self._held.items() if k not in self._held_sent][:room]
        for held_id, (topic, payload, qos, retain) in todo:
            try:
                mid = self.link.publish(topic, payload, qos=qos, retain=retain)
            except ConnectionError as exc:
                log.warning("publish deferred: %s", exc)
                return
            with self._held_lock:
                self._held_sent.add(held_id)
            self._inflight[mid] = held_id
