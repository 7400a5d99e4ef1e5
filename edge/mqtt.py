"""paho-mqtt adapter for edge daemons: the only edge module that imports paho.

The rest of the code sees `ReceivedMessage` values and a small publish/subscribe surface.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.matcher import MQTTMatcher
from paho.mqtt.reasoncodes import ReasonCode

from contracts.models import Availability, utc_now
from contracts.settings import MqttSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool


Handler = Callable[[ReceivedMessage], None]


@dataclass(frozen=True, slots=True)
class Will:
    """Retained last will, and the retained payload announced on every (re)connect."""

    topic: str
    offline_payload: bytes
    online_payload: bytes


class MqttLink:
    """One MQTT v5 connection: last will, auto-reconnect, re-subscribe, publish acks."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        client_id: str,
        will: Will | None = None,
        password: str | None = None,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.will = will
        self.password = password
        self.on_ack: Callable[[int, str | None], None] = lambda mid, error: None
        self.on_connection_change: Callable[[bool], None] = lambda up: None
        self._handlers: list[tuple[str, int, Handler]] = []
        self._dispatch: dict[str, list[Handler]] = {}
        self._matcher: Any = MQTTMatcher()  # type: ignore[no-untyped-call]
        self._client: paho.Client | None = None
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._stopping = False
        self._pending_sub_mid: int | None = None
        self.last_error = "not started"
        self.handler_errors = 0

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or timeout; True when connected."""
        return self._connected.wait(timeout)

    def wait_ready(self, timeout: float) -> bool:
        """Block until connected and every subscription is acknowledged."""
        return self._connected.wait(timeout) and self._subscribed.wait(timeout)

    def subscribe(self, topic_filter: str, handler: Handler, *, qos: int = 1) -> None:
        """Register a subscription, (re)made on every connect."""
        self._handlers.append((topic_filter, qos, handler))
        try:
            self._matcher[topic_filter].append(handler)
        except KeyError:
            self._matcher[topic_filter] = [handler]
        self._dispatch.clear()
        client = self._client
        if client is not None and self.connected:
            client.subscribe(topic_filter, qos=qos)

    def start(self) -> None:
        """Connect in the background; reconnects by itself with backoff."""
        self._stopping = False
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5
            if self.settings.protocol == "5"
            else MQTTProtocolVersion.MQTTv311,
        )
        if self.settings.username:
            client.username_pw_set(self.settings.username, self.password)
        if self.settings.tls is not None:
            tls = self.settings.tls
            client.tls_set(
                ca_certs=str(tls.ca_file),
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        if self.will is not None:
            client.will_set(self.will.topic, self.will.offline_payload, qos=1, retain=True)
        client.reconnect_delay_set(1, max(1, int(self.settings.reconnect_max_s)))
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._client = client
        client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive_s)
        client.loop_start()

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        """Hand a message to paho; returns its mid. ConnectionError if paho refuses it."""
        client = self._client
        if client is None:
            raise ConnectionError("MQTT link not started")
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise ConnectionError(f"publish to {topic} refused: {paho.error_string(info.rc)}")
        return int(info.mid)

    def stop(self, *, announce_offline: bool = True, timeout: float = 2.0) -> None:
        """Announce offline (clean shutdown), disconnect and stop the network thread."""
        client = self._client
        if client is None:
            return
        if announce_offline and self.will is not None and self.connected:
            info = client.publish(self.will.topic, self.will.offline_payload, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                log.warning("offline announcement not acknowledged before shutdown")
        self._stopping = True
        client.disconnect()
        client.loop_stop()
        self._client = None
        self._connected.clear()
        self._subscribed.clear()

    def abort(self) -> None:
        """Drop the connection without DISCONNECT, as a power cut would: the broker sends the will.

        Stops the network thread, then closes the socket under it. The link is left stopped: a
        later `stop()` does nothing, and `start()` opens a new connection. Simulators and tests
        use this; a daemon shuts down with `stop()`.
        """
        client = self._client
        if client is None:
            return
        self._stopping = True
        self._client = None
        self._connected.clear()
        self._subscribed.clear()
        # Thread first: closing the socket under a running loop would make paho reconnect.
        client.loop_stop()
        sock = client.socket()
        if sock is not None:
            sock.close()
        log.info("MQTT connection of %s dropped without DISCONNECT", self.client_id)

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        if reason.is_failure:
            # A refused connection is not a connection (bad credentials, ACL, server busy).
            self.last_error = f"broker refused connection: {reason}"
            log.error(
                "MQTT %s:%s refused %s: %s",
                self.settings.host,
                self.settings.port,
                self.client_id,
                reason,
            )
            return
        log.info(
            "MQTT connected to %s:%s as %s", self.settings.host, self.settings.port, self.client_id
        )
        self.last_error = ""
        self._subscribed.clear()
        if self._handlers:
            _, mid = client.subscribe([(f, qos) for f, qos, _ in self._handlers])
            self._pending_sub_mid = mid
        else:
            self._subscribed.set()
        if self.will is not None:
            client.publish(self.will.topic, self.will.online_payload, qos=1, retain=True)
        self._connected.set()
        self.on_connection_change(True)

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        self.last_error = f"disconnected: {reason}"
        if was_connected and self._stopping:
            log.info(
                "MQTT disconnected from %s:%s (shutdown)", self.settings.host, self.settings.port
            )
        elif was_connected:
            log.warning(
                "MQTT disconnected from %s:%s: %s", self.settings.host, self.settings.port, reason
            )
            self.on_connection_change(False)

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker rejected message mid=%s: %s", mid, reason)
            self.on_ack(mid, str(reason))
            return
        self.on_ack(mid, None)

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        for reason in reasons:
            if getattr(reason, "is_failure", False):
                log.error("MQTT subscription refused by the broker: %s", reason)
        if mid == self._pending_sub_mid:
            self._subscribed.set()

    def _handlers_for(self, topic: str) -> list[Handler]:
        """Handlers whose filter matches a topic (a trie: a bridge may hold thousands)."""
        handlers = self._dispatch.get(topic)
        if handlers is None:
            matches: Any = self._matcher.iter_match(topic)  # paho's trie is untyped
            handlers = [h for group in matches for h in group]
            if len(self._dispatch) >= 100_000:
                self._dispatch.clear()
            self._dispatch[topic] = handlers
        return handlers

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        topic = msg.topic  # a property that decodes the topic bytes on every access
        received = ReceivedMessage(topic, bytes(msg.payload), msg.qos, bool(msg.retain))
        for handler in self._handlers_for(topic):
            try:
                handler(received)
            except Exception:
                # One bad message must never stop the network thread.
                self.handler_errors += 1
                log.exception("handler for %s failed on a message", msg.topic)


def availability_link(
    settings: MqttSettings, *, default_client_id: str, topic: str, producer: str
) -> MqttLink:
    """A daemon's MQTT link: password from its secret, retained online/offline last will."""
    will = Will(
        topic,
        Availability(producer=producer, state="offline").to_bytes(),
        Availability(producer=producer, state="online", ts=utc_now()).to_bytes(),
    )
    password = settings.password.read() if settings.password else None
    return MqttLink(
        settings, client_id=settings.client_id or default_client_id, will=will, password=password
    )
