"""A real mosquitto broker for tests (stoppable and restartable) and a recording subscriber."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge.localbroker import LocalBroker, free_port

__all__ = ["Broker", "Collector", "free_port"]


class Broker(LocalBroker):
    """The product's private mosquitto, used as the tests' real broker."""


class Collector:
    """A subscriber that records every message (topic, payload) in arrival order."""

    def __init__(self, port: int, topic_filter: str, *, client_id: str = "collector") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._filter = topic_filter
        self._ready = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.port = port

    def _on_connect(self, client, userdata, flags, reason, properties):  # type: ignore[no-untyped-def]
        client.subscribe(self._filter, qos=1)

    def _on_message(self, client, userdata, msg):  # type: ignore[no-untyped-def]
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def start(self) -> Collector:
        from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect(
            "127.0.0.1", self.port, clean_start=MQTT_CLEAN_START_FIRST_ONLY, properties=props
        )
        self.client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("collector did not subscribe")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, predicate, timeout: float = 10.0) -> list[tuple[str, bytes, bool]]:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = self.snapshot()
            if predicate(msgs):
                return msgs
            time.sleep(0.05)
        return self.snapshot()
