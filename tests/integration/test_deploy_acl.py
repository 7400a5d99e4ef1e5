"""The production broker setup (deploy/mosquitto/) against a real mosquitto.

deploy/mosquitto/issue-credentials.py issues a CA, a server certificate, passwords and the ACL
for deploy/mosquitto/site.example.yaml; mosquitto runs deploy/mosquitto/mosquitto.conf with only
its paths and ports rewritten. Rules checked: only named accounts with the right password get
in; TLS works with the site CA and fails without it; every client publishes only on its own
topics (MQTT 5 gets PUBACK 0x87, MQTT 3.1.1 a silent drop) and receives only its own topics;
the gateway's shared subscriptions pass the ACL.

Found on mosquitto 2.0: the acl_file does not check SUBSCRIBE at all (every SUBACK is a grant);
"read" is enforced per delivered message, against the message's topic, so `$share/<group>/`
never reaches the check.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from contracts.topics import (
    DeviceAddress,
    DeviceChannel,
    GateAddress,
    GateChannel,
    device_topic,
    gate_filter,
    gate_topic,
    shared,
)
from edge.localbroker import free_port, mosquitto_binary
from gateway.ingest import subscriptions

pytestmark = [pytest.mark.broker]

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "mosquitto"
SITE = "campus"
GATE_A = GateAddress(SITE, "B1", "B1-main")
GATE_B = GateAddress(SITE, "B2", "B2-main")
GATEWAY_USER = f"gateway-{SITE}-gw1"
BRIDGE_USER = f"bridge-{SITE}-hall-a-laundry"
NOT_AUTHORIZED = 0x87
# CONNACK refusals: mosquitto 2.0 answers a wrong password or unknown user with 0x87 (not
# authorized) rather than 0x86 (bad user name or password); either is a refusal.
REFUSED = (0x86, NOT_AUTHORIZED)
# PUBACK: 0x00 success, or 0x10 "no matching subscribers" (mosquitto says so to MQTT 5 clients).
ACCEPTED = (0x00, 0x10)


def user_of(addr: GateAddress) -> str:
    return f"gate-{addr.site}-{addr.building}-{addr.gate_id}"


@dataclass
class SiteBroker:
    issued: Path
    plain_port: int
    tls_port: int
    proc: subprocess.Popen[bytes]

    def password(self, user: str) -> str:
        return (self.issued / "clients" / f"{user}.password").read_text().strip()


def production_conf(issued: Path, data: Path, log: Path, plain_port: int, tls_port: int) -> str:
    """deploy/mosquitto/mosquitto.conf with paths and ports moved into the test's folder."""
    text = (DEPLOY / "mosquitto.conf").read_text()
    replacements = {
        "/etc/mosquitto/dormguard/": f"{issued / 'broker'}/",
        "persistence_location /var/lib/mosquitto/": f"persistence_location {data}/",
        "listener 8883\n": f"listener {tls_port} 127.0.0.1\n",
        "listener 1883 127.0.0.1\n": f"listener {plain_port} 127.0.0.1\n",
        "log_dest stdout\n": f"log_dest file {log}\n",
    }
    for old, new in replacements.items():
        assert old in text, f"mosquitto.conf no longer contains {old!r}: update this test"
        text = text.replace(old, new)
    if os.geteuid() == 0:
        text += "user root\n"  # mosquitto drops root to 'mosquitto', which cannot read tmp
    return text


def wait_port(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text()[-800:] if log.exists() else ""
            raise RuntimeError(f"mosquitto exited ({proc.returncode}): {tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"mosquitto did not listen on {port}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteBroker]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    binary = mosquitto_binary()
    root = tmp_path_factory.mktemp("site")
    issued = root / "issued"
    run = subprocess.run(
        [
            sys.executable,
            str(DEPLOY / "issue-credentials.py"),
            "--inventory",
            str(DEPLOY / "site.example.yaml"),
            "--out",
            str(issued),
            "--broker-owner",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    plain_port, tls_port = free_port(), free_port()
    data, log = root / "data", root / "mosquitto.log"
    data.mkdir()
    conf = root / "mosquitto.conf"
    conf.write_text(production_conf(issued, data, log, plain_port, tls_port))
    proc = subprocess.Popen([binary, "-c", str(conf)])
    try:
        wait_port(proc, plain_port, log)
        wait_port(proc, tls_port, log)
        yield SiteBroker(issued, plain_port, tls_port, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Client:
    """A paho client that records CONNACK, SUBACK, PUBACK reason codes and messages."""

    def __init__(
        self,
        site: SiteBroker,
        user: str | None,
        password: str | None = None,
        *,
        protocol: int = 5,
        tls_ca: Path | bool | None = False,
        client_id: str | None = None,
        session_expiry_s: int | None = None,
    ) -> None:
        self.site = site
        version = MQTTProtocolVersion.MQTTv5 if protocol == 5 else MQTTProtocolVersion.MQTTv311
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{user or 'anon'}-{time.monotonic_ns()}",
            protocol=version,
        )
        if user is not None:
            self.client.username_pw_set(user, password if password is not None else "")
        self.session_expiry_s = session_expiry_s
        self.tls = tls_ca is not False
        if self.tls:
            context = ssl.create_default_context(cafile=str(tls_ca) if tls_ca else None)
            self.client.tls_set_context(context)
        self.connack: int | None = None
        self.connected = threading.Event()
        self.subacks: dict[int, list[int]] = {}
        self.pubacks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason, properties):  # type: ignore[no-untyped-def]
        self.connack = reason.value
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reasons, properties):  # type: ignore[no-untyped-def]
        with self._lock:
            self.subacks[mid] = [r.value for r in reasons]

    def _on_publish(self, client, userdata, mid, reason, properties):  # type: ignore[no-untyped-def]
        with self._lock:
            self.pubacks[mid] = reason.value

    def _on_message(self, client, userdata, msg):  # type: ignore[no-untyped-def]
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def connect(self) -> int:
        """Connect and return the CONNACK reason code (0 = accepted)."""
        port = self.site.tls_port if self.tls else self.site.plain_port
        if self.session_expiry_s is None:
            self.client.connect("127.0.0.1", port, keepalive=30)
        else:  # a persistent session, as the gateway keeps
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry_s
            self.client.connect(
                "127.0.0.1", port, keepalive=30, clean_start=False, properties=props
            )
        self.client.loop_start()
        assert self.connected.wait(5), "no CONNACK"
        assert self.connack is not None
        if self.connack != 0:
            self.client.loop_stop()
        return self.connack

    def subscribe(self, topic_filter: str, qos: int = 1) -> list[int]:
        """Subscribe and return the SUBACK reason codes."""
        _, mid = self.client.subscribe(topic_filter, qos=qos)
        wait_until(lambda: mid in self.subacks)
        return self.subacks[mid]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Publish at QoS 1 and return the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        wait_until(lambda: info.mid in self.pubacks)
        return self.pubacks[info.mid]

    def received(self, payload: bytes) -> bool:
        with self._lock:
            return any(p == payload for _, p, _ in self.messages)

    def topics_received(self) -> set[str]:
        with self._lock:
            return {t for t, _, _ in self.messages}

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("timed out waiting")


@pytest.fixture
def clients(site: SiteBroker) -> Iterator[dict[str, Client]]:
    """Connected clients by role: gateway, gate A, gate B, bridge (MQTT 3.1.1 like the daemon)."""
    made = {
        "gateway": Client(site, GATEWAY_USER, site.password(GATEWAY_USER)),
        "gate_a": Client(site, user_of(GATE_A), site.password(user_of(GATE_A))),
        "gate_b": Client(site, user_of(GATE_B), site.password(user_of(GATE_B))),
        "bridge": Client(site, BRIDGE_USER, site.password(BRIDGE_USER), protocol=3),
    }
    for name, client in made.items():
        assert client.connect() == 0, f"{name} refused"
    yield made
    for client in made.values():
        client.stop()


def unique(label: str) -> bytes:
    return f"{label}-{time.monotonic_ns()}".encode()


def test_gate_publishes_its_own_event_and_the_gateway_receives_it(
    clients: dict[str, Client],
) -> None:
    gateway, gate_a = clients["gateway"], clients["gate_a"]
    assert gateway.subscribe(gate_filter(SITE, GateChannel.EVENT)) == [1]
    payload = unique("own-event")
    assert gate_a.publish(gate_topic(GATE_A, GateChannel.EVENT), payload) in ACCEPTED
    wait_until(lambda: gateway.received(payload))


def test_gate_publishing_as_another_gate_gets_puback_not_authorized_and_is_not_delivered(
    clients: dict[str, Client],
) -> None:
    gateway, gate_a = clients["gateway"], clients["gate_a"]
    gateway.subscribe(gate_filter(SITE, GateChannel.EVENT))
    forged = unique("forged")
    assert gate_a.publish(gate_topic(GATE_B, GateChannel.EVENT), forged) == NOT_AUTHORIZED
    # Barrier: a later allowed publish on the same connection arrives, the forged one never did.
    marker = unique("after-forged")
    assert gate_a.publish(gate_topic(GATE_A, GateChannel.EVENT), marker) in ACCEPTED
    wait_until(lambda: gateway.received(marker))
    assert not gateway.received(forged)


def test_gate_may_not_publish_gallery_or_commands_nor_other_gates_heartbeat(
    clients: dict[str, Client],
) -> None:
    gate_a = clients["gate_a"]
    for topic in (
        gate_topic(GATE_A, GateChannel.GALLERY),
        gate_topic(GATE_A, GateChannel.COMMAND),
        gate_topic(GATE_B, GateChannel.HEARTBEAT),
        device_topic(DeviceAddress(SITE, "hall-a", "r101", "washer-r101-1"), DeviceChannel.STATE),
    ):
        assert gate_a.publish(topic, b"{}") == NOT_AUTHORIZED, topic


def test_subscribing_to_another_gates_gallery_delivers_nothing(
    clients: dict[str, Client],
) -> None:
    """mosquitto 2.0 grants the SUBACK (acl_file does not check subscriptions) but delivers
    none of gate B's messages to gate A, retained or live; gate B gets its own."""
    gateway, gate_a, gate_b = clients["gateway"], clients["gate_a"], clients["gate_b"]
    retained_b = unique("gallery-b-retained")
    assert (
        gateway.publish(gate_topic(GATE_B, GateChannel.GALLERY), retained_b, retain=True)
        in ACCEPTED
    )

    codes = gate_a.subscribe(gate_topic(GATE_B, GateChannel.GALLERY))
    assert codes[0] in (1, NOT_AUTHORIZED)  # 1 on mosquitto 2.0; a denial would be fine too
    assert gate_a.subscribe(gate_topic(GATE_A, GateChannel.GALLERY)) == [1]
    assert gate_b.subscribe(gate_topic(GATE_B, GateChannel.GALLERY)) == [1]
    wait_until(lambda: gate_b.received(retained_b))

    live_b, own_a = unique("gallery-b-live"), unique("gallery-a")
    assert gateway.publish(gate_topic(GATE_B, GateChannel.GALLERY), live_b) in ACCEPTED
    assert gateway.publish(gate_topic(GATE_A, GateChannel.GALLERY), own_a) in ACCEPTED
    wait_until(lambda: gate_a.received(own_a) and gate_b.received(live_b))
    assert not gate_a.received(retained_b)
    assert not gate_a.received(live_b)
    assert gate_a.topics_received() == {gate_topic(GATE_A, GateChannel.GALLERY)}


def test_gate_cannot_read_other_gates_events_even_with_a_wildcard(
    clients: dict[str, Client],
) -> None:
    gate_a, gate_b, gateway = clients["gate_a"], clients["gate_b"], clients["gateway"]
    gate_a.subscribe("dorm/#")
    gate_a.subscribe(gate_topic(GATE_A, GateChannel.COMMAND))
    event_b = unique("event-b")
    assert gate_b.publish(gate_topic(GATE_B, GateChannel.EVENT), event_b) in ACCEPTED
    marker = unique("command-a")
    assert gateway.publish(gate_topic(GATE_A, GateChannel.COMMAND), marker) in ACCEPTED
    wait_until(lambda: gate_a.received(marker))
    assert not gate_a.received(event_b)


def test_gateway_receives_through_shared_subscriptions(
    site: SiteBroker, clients: dict[str, Client]
) -> None:
    """Every filter the gateway really subscribes to (shared group 'gw') is granted and works."""
    gate_a, bridge = clients["gate_a"], clients["bridge"]
    gateway = Client(site, GATEWAY_USER, site.password(GATEWAY_USER))
    assert gateway.connect() == 0
    try:
        for topic_filter, qos in subscriptions(SITE, "gw"):
            assert gateway.subscribe(topic_filter, qos) == [qos], topic_filter
        assert gateway.subscribe(shared("gw2", gate_filter(SITE, GateChannel.DOOR))) == [1]
        event, door = unique("shared-event"), unique("shared-door")
        assert gate_a.publish(gate_topic(GATE_A, GateChannel.EVENT), event) in ACCEPTED
        assert gate_a.publish(gate_topic(GATE_A, GateChannel.DOOR), door) in ACCEPTED
        state = unique("shared-state")
        washer = DeviceAddress(SITE, "hall-a", "r101", "washer-r101-1")
        assert bridge.publish(device_topic(washer, DeviceChannel.STATE), state) in ACCEPTED
        wait_until(lambda: gateway.received(event) and gateway.received(door))
        wait_until(lambda: gateway.received(state))
    finally:
        gateway.stop()


def test_bridge_publishes_device_states_but_not_gate_events(clients: dict[str, Client]) -> None:
    """The bridge speaks MQTT 3.1.1: a denied publish is acknowledged and silently dropped."""
    gateway, bridge = clients["gateway"], clients["bridge"]
    gateway.subscribe("dorm/campus/#")
    washer = DeviceAddress(SITE, "hall-a", "r101", "washer-r101-1")
    state = unique("state")
    assert bridge.publish(device_topic(washer, DeviceChannel.STATE), state) in ACCEPTED
    forged = unique("bridge-forged-event")
    assert bridge.publish(gate_topic(GATE_A, GateChannel.EVENT), forged) == 0  # 3.1.1: no code
    marker = unique("bridge-marker")
    assert bridge.publish(device_topic(washer, DeviceChannel.TELEMETRY), marker) in ACCEPTED
    wait_until(lambda: gateway.received(state) and gateway.received(marker))
    assert not gateway.received(forged)


def test_vendor_device_reaches_its_bridge_only_on_its_own_topics(
    site: SiteBroker, clients: dict[str, Client]
) -> None:
    bridge = clients["bridge"]
    bridge.subscribe("tele/washer-r101-1/#")
    bridge.subscribe("shelly-washer-r101-2/#")
    washer = Client(site, "washer-r101-1", site.password("washer-r101-1"), protocol=3)
    assert washer.connect() == 0
    try:
        forged = unique("as-shelly")
        washer.publish("shelly-washer-r101-2/status/switch:0", forged)
        own = unique("own-sensor")
        washer.publish("tele/washer-r101-1/SENSOR", own)
        wait_until(lambda: bridge.received(own))
        assert not bridge.received(forged)
    finally:
        washer.stop()


def test_anonymous_client_is_refused(site: SiteBroker) -> None:
    assert Client(site, None).connect() in REFUSED


def test_wrong_password_is_refused(site: SiteBroker) -> None:
    assert Client(site, user_of(GATE_A), "not-the-password").connect() in REFUSED
    assert Client(site, "nobody", "whatever-password").connect() in REFUSED


def test_tls_with_the_site_ca_connects(site: SiteBroker) -> None:
    client = Client(
        site,
        user_of(GATE_A),
        site.password(user_of(GATE_A)),
        tls_ca=site.issued / "clients" / "ca.crt",
    )
    assert client.connect() == 0
    try:
        sock = client.client.socket()
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        assert client.publish(gate_topic(GATE_A, GateChannel.HEARTBEAT), b"{}") in ACCEPTED
    finally:
        client.stop()


def test_tls_without_the_site_ca_fails_certificate_verification(site: SiteBroker) -> None:
    client = Client(site, user_of(GATE_A), site.password(user_of(GATE_A)), tls_ca=None)
    with pytest.raises(ssl.SSLCertVerificationError):
        client.connect()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_below_1_2_is_refused_by_the_broker(site: SiteBroker) -> None:
    context = ssl.create_default_context(cafile=str(site.issued / "clients" / "ca.crt"))
    try:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
        context.minimum_version = ssl.TLSVersion.TLSv1_1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot offer TLS 1.1")
    with (
        socket.create_connection(("127.0.0.1", site.tls_port), timeout=5) as raw,
        pytest.raises((ssl.SSLError, ConnectionResetError)) as refused,
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    # The broker answers with a protocol_version alert (or drops the connection).
    assert isinstance(refused.value, ConnectionResetError) or "ALERT_PROTOCOL_VERSION" in str(
        refused.value
    ), refused.value


def test_issuing_again_keeps_ca_and_passwords(site: SiteBroker) -> None:
    before = {p.name: p.read_bytes() for p in (site.issued / "clients").iterdir()}
    ca_key = (site.issued / "ca" / "ca.key").read_bytes()
    run = subprocess.run(
        [
            sys.executable,
            str(DEPLOY / "issue-credentials.py"),
            "--inventory",
            str(DEPLOY / "site.example.yaml"),
            "--out",
            str(site.issued),
            "--broker-owner",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert {p.name: p.read_bytes() for p in (site.issued / "clients").iterdir()} == before
    assert (site.issued / "ca" / "ca.key").read_bytes() == ca_key
    for path in (site.issued / "clients").glob("*.password"):
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_monitor_reads_health_but_no_access_events(
    site: SiteBroker, clients: dict[str, Client]
) -> None:
    """The health account sees $SYS and heartbeats, never access events, and cannot publish;
    other accounts do not see $SYS."""
    monitor = Client(site, f"monitor-{SITE}", site.password(f"monitor-{SITE}"))
    assert monitor.connect() == 0
    try:
        monitor.subscribe("$SYS/broker/version")
        wait_until(lambda: "$SYS/broker/version" in monitor.topics_received())
        monitor.subscribe("dorm/#")
        assert monitor.publish(gate_topic(GATE_A, GateChannel.EVENT), b"x") == NOT_AUTHORIZED
        gate_a, gateway = clients["gate_a"], clients["gateway"]
        gateway.subscribe("$SYS/broker/version")
        gateway.subscribe(gate_filter(SITE, GateChannel.EVENT))
        event, beat = unique("event-for-monitor"), unique("heartbeat-for-monitor")
        assert gate_a.publish(gate_topic(GATE_A, GateChannel.EVENT), event) in ACCEPTED
        assert gate_a.publish(gate_topic(GATE_A, GateChannel.HEARTBEAT), beat) in ACCEPTED
        wait_until(lambda: monitor.received(beat) and gateway.received(event))
        assert not monitor.received(event)
        assert "$SYS/broker/version" not in gateway.topics_received()
    finally:
        monitor.stop()


def test_shared_subscription_keeps_an_offline_replicas_share_in_its_session(
    site: SiteBroker, clients: dict[str, Client]
) -> None:
    """mosquitto 2.0 deals shared-subscription messages round-robin to every session in the
    group, connected or not: a stopped replica's share waits in its session until a gateway with
    the same client id reconnects (docs/operations.md, scaling out)."""
    password = site.password(GATEWAY_USER)
    events = shared("replicas", gate_filter(SITE, GateChannel.EVENT))

    def replica(client_id: str) -> Client:
        r = Client(site, GATEWAY_USER, password, client_id=client_id, session_expiry_s=600)
        assert r.connect() == 0
        r.subscribe(events)
        return r

    first, second = replica("gw-test-r1"), replica("gw-test-r2")
    second.stop()  # DISCONNECT; the session stays (expiry 600 s)
    sent = [unique(f"replica-{i}") for i in range(6)]
    for payload in sent:
        assert clients["gate_a"].publish(gate_topic(GATE_A, GateChannel.EVENT), payload) in (
            ACCEPTED
        )
    try:
        wait_until(lambda: sum(first.received(p) for p in sent) == 3)
        held = [p for p in sent if not first.received(p)]
        second = replica("gw-test-r2")  # back: its queued share is delivered now
        wait_until(lambda: all(second.received(p) for p in held))
    finally:
        first.stop()
        second.stop()
