"""MQTT 5 ingest: a persistent session, manual acknowledgements, batched processing.

The broker keeps our session (clean start off, session expiry set) and queues what arrives
while we are away. A message is acknowledged (PUBACK) only after the batch holding it has been
committed, so a gateway killed at any instant loses nothing the broker handed over: whatever was
not acknowledged is redelivered on reconnect and duplicates are dropped by event id.

Only this module (and nothing else in gateway/) imports paho.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from contracts.topics import (
    BridgeChannel,
    DeviceChannel,
    GateChannel,
    GatewayChannel,
    bridge_filter,
    device_filter,
    gate_filter,
    gateway_topic,
    shared,
)
from gateway.config import GatewayMqttSettings
from gateway.ingest.batch import BatchOutcome, Inbound

log = logging.getLogger(__name__)

# Retained topics are subscribed without the shared group: brokers do not hand retained
# messages to shared subscriptions, and every replica needs the current availability.
_RETAINED_GATE = (GateChannel.AVAILABILITY,)
# The QoS 1 event streams: deduplicated by event id, so every replica may receive them all.
_EVENT_GATE = (
    GateChannel.EVENT,
    GateChannel.DOOR,
    GateChannel.GALLERY_ACK,
    GateChannel.COMMAND_RESULT,
    GateChannel.SECURITY,
)


def subscriptions(site: str, group: str | None, delivery: str = "shared") -> list[tuple[str, int]]:
    """(filter, qos) pairs the gateway subscribes to; shared ones carry the group prefix.

    With a group (replicas) the QoS 0 heartbeats and bridge health are always shared; the
    QoS 1 event streams too with ``delivery`` "shared", and subscribed by every replica with
    "all" (the database keeps each event once: a broker restart or a dead replica's queue
    cannot hold any of them back or lose them). Appliance telemetry follows the events: with
    "all" every replica's embedded series store gets every reading, so a device chart is
    whole on whichever replica the console asks.
    """

    def maybe_shared(f: str) -> str:
        return shared(group, f) if group else f

    def event_stream(f: str) -> str:
        return f if delivery == "all" else maybe_shared(f)

    subs = [(event_stream(gate_filter(site, ch)), 1) for ch in _EVENT_GATE]
    subs.append((maybe_shared(gate_filter(site, GateChannel.HEARTBEAT)), 0))
    subs += [(gate_filter(site, ch), 1) for ch in _RETAINED_GATE]
    subs.append((event_stream(device_filter(site, DeviceChannel.TELEMETRY)), 0))
    subs.append((device_filter(site, DeviceChannel.STATE), 1))  # retained current state
    subs.append((device_filter(site, DeviceChannel.AVAILABILITY), 1))
    subs.append((bridge_filter(site, BridgeChannel.AVAILABILITY), 1))
    subs.append((maybe_shared(bridge_filter(site, BridgeChannel.HEALTH)), 0))
    if group:  # replicas tell each other about alert changes: every replica, not shared
        subs.append((gateway_topic(site, GatewayChannel.ALERTS), 0))
    return subs


@dataclass(frozen=True, slots=True)
class _Delivery:
    inbound: Inbound
    mid: int
    qos: int
    generation: int


class MqttIngest:
    """Receives from the broker, hands batches to ``process``, acknowledges after commit."""

    def __init__(
        self,
        settings: GatewayMqttSettings,
        site: str,
        client_id: str,
        process: Callable[[Sequence[Inbound]], BatchOutcome],
        *,
        password: str | None = None,
        batch_max: int = 2000,
    ) -> None:
        self._settings = settings
        self._site = site
        self._client_id = client_id
        self._process = process
        self._password = password
        self._batch_max = batch_max
        self._queue: queue.Queue[_Delivery | None] = queue.Queue()
        self._client: paho.Client | None = None
        self._worker: threading.Thread | None = None
        self._generation = 0
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.batches = 0
        self.failures = 0
        self.last_error = ""

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Connect (in the background, retrying) and start the processing thread."""
        s = self._settings
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if s.username:
            client.username_pw_set(s.username, self._password)
        if s.tls is not None:
            client.tls_set(
                ca_certs=str(s.tls.ca_file),
                certfile=str(s.tls.cert_file) if s.tls.cert_file else None,
                keyfile=str(s.tls.key_file) if s.tls.key_file else None,
            )
        client.reconnect_delay_set(min_delay=1, max_delay=int(max(1, s.reconnect_max_s)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._client = client
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = s.session_expiry_s
        props.ReceiveMaximum = s.receive_maximum
        self._worker = threading.Thread(target=self._run, name="gateway-ingest", daemon=True)
        self._worker.start()
        client.connect_async(
            s.host, s.port, keepalive=s.keepalive_s, clean_start=False, properties=props
        )
        client.loop_start()

    def wait_ready(self, timeout: float) -> bool:
        """Whether we are connected and subscribed within ``timeout`` seconds."""
        return self._subscribed.wait(timeout)

    def connected(self) -> bool:
        """Whether the broker connection is up now."""
        return self._connected.is_set()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand, acknowledge it, disconnect (the session stays)."""
        self._stopping.set()
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(timeout)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    # --- publishing (gateway -> edge) ---------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish (QoS 1: wait for the PUBACK); ConnectionError when it cannot."""
        client = self._client
        if client is None or not self._connected.is_set():
            raise ConnectionError("not connected to the MQTT broker")
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        if qos == 0:
            return  # fire and forget: nothing to wait for
        try:
            info.wait_for_publish(timeout=10)
        except (ValueError, RuntimeError) as exc:
            raise ConnectionError(f"publish to {topic} failed: {exc}") from exc
        if not info.is_published():
            raise ConnectionError(f"the broker did not acknowledge the publish to {topic}")

    # --- paho callbacks (network thread) ---------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        _userdata: Any,
        flags: Any,
        reason: ReasonCode,
        _properties: Any,
    ) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            log.error("MQTT connect refused: %s", reason)
            return
        with self._lock:
            self._generation += 1
        self._connected.set()
        log.info("MQTT connected (session present: %s)", getattr(flags, "session_present", "?"))
        settings = self._settings
        client.subscribe(
            subscriptions(self._site, settings.shared_group, settings.replica_delivery)
        )

    def _on_subscribe(
        self, _client: paho.Client, _userdata: Any, _mid: int, reasons: list[ReasonCode], _p: Any
    ) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            self.last_error = "subscription refused: " + ", ".join(failed)
            log.error("MQTT %s (check the ACL for this gateway user)", self.last_error)
        self._subscribed.set()

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _p: Any
    ) -> None:
        self._connected.clear()
        self._subscribed.clear()
        if not self._stopping.is_set():
            log.warning(
                "MQTT disconnected (%s); reconnecting, the session keeps our messages", reason
            )

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        self._queue.put(
            _Delivery(
                Inbound(msg.topic, bytes(msg.payload), bool(msg.retain)),
                msg.mid,
                msg.qos,
                self._generation,
            )
        )

    # --- processing thread ----------------------------------------------------------------

    def _next_batch(self) -> list[_Delivery] | None:
        """Wait for a message, then take whatever else has arrived (up to batch_max)."""
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < self._batch_max:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if not self._process_until_done(batch):
                return  # stopping with the batch unstored: unacknowledged, so redelivered
            self._ack(batch)

    def _process_until_done(self, batch: list[_Delivery]) -> bool:
        """Retry a failing batch (database down) with backoff; False if we stop before it is
        stored. Never ack what is not stored."""
        delay = 0.5
        while True:
            try:
                self._process([d.inbound for d in batch])
                self.batches += 1
                return True
            except Exception as exc:  # database outage, disk full: keep the batch, retry
                self.failures += 1
                self.last_error = f"storing a batch failed: {type(exc).__name__}: {exc}"[:500]
                log.exception("storing a batch of %d failed; retrying in %.1fs", len(batch), delay)
                if self._stopping.wait(delay):
                    return False
                delay = min(delay * 2, 15.0)

    def _ack(self, batch: list[_Delivery]) -> None:
        client = self._client
        if client is None:
            return
        generation = self._generation
        for d in batch:
            # A message id is only meaningful on the connection that delivered it; after a
            # reconnect the broker redelivers those messages anyway (dedup drops them).
            if d.qos > 0 and d.generation == generation and self._connected.is_set():
                client.ack(d.mid, d.qos)
