"""The production broker setup (deploy/mosquitto/) against a real mosquitto.

deploy/mosquitto/issue-credentials.py issues a CA, a server certificate, passwords and the ACL
for deploy/mosquitto/site.example.yaml; mosquitto runs deploy/mosquitto/mosquitto.conf with only
its paths and ports rewritten, plus a test-only plain loopback listener (production has none) so
that most ACL tests skip the TLS handshakes. Rules checked: only named accounts with the right
password get in; TLS works with the site CA and fails without it; every client publishes only on
its own topics (MQTT 5 gets PUBACK 0x87, MQTT 3.1.1 a silent drop) and receives only its own
topics; the gateway's shared subscriptions pass the ACL.

Mutual TLS (a second broker: the same file with its two commented lines switched on, client
certificates from --client-certs): a client without a certificate of the site CA is refused in
the TLS handshake, whatever password it has; the certificate's CN is the account the ACL applies
to, and the user name and password in CONNECT are not checked at all; a dormguard MqttLink
connects with mqtt.tls.cert_file / key_file.

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

from contracts.settings import MqttSettings, TlsSettings
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
from edge.mqtt import MqttLink
from gateway.ingest.mqtt import subscriptions

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
# Everything a gate publishes (acl.template, #@ gate: its "topic write" lines).
GATE_PUBLISHES = (
    GateChannel.EVENT,
    GateChannel.DOOR,
    GateChannel.AVAILABILITY,
    GateChannel.HEARTBEAT,
    GateChannel.GALLERY_ACK,
    GateChannel.COMMAND_RESULT,
    GateChannel.SECURITY,
)


def user_of(addr: GateAddress) -> str:
    return f"gate-{addr.site}-{addr.building}-{addr.gate_id}"


@dataclass
class SiteBroker:
    issued: Path
    plain_port: int | None  # test-only plain listener; None on the mutual-TLS broker
    tls_port: int
    proc: subprocess.Popen[bytes]

    def password(self, user: str) -> str:
        return (self.issued / "clients" / f"{user}.password").read_text().strip()

    @property
    def ca(self) -> Path:
        return self.issued / "clients" / "ca.crt"

    def cert(self, user: str) -> tuple[Path, Path]:
        """The client certificate and key --client-certs issued for `user`."""
        return self.issued / "clients" / f"{user}.crt", self.issued / "clients" / f"{user}.key"


def rewrite(text: str, replacements: dict[str, str]) -> str:
    """Each replacement applied; fails when the conf no longer has what the test rewrites."""
    for old, new in replacements.items():
        assert old in text, f"mosquitto.conf no longer contains {old!r}: update this test"
        text = text.replace(old, new)
    return text


def production_conf(
    issued: Path,
    data: Path,
    log: Path,
    *,
    tls_port: int,
    plain_port: int | None = None,
    mutual_tls: bool = False,
) -> str:
    """deploy/mosquitto/mosquitto.conf with paths and ports moved into the test's folder.

    mutual_tls switches on the two commented lines that make the TLS listener require a client
    certificate of the site CA and use its CN as the user name.
    """
    text = rewrite(
        (DEPLOY / "mosquitto.conf").read_text(),
        {
            "/etc/mosquitto/dormguard/": f"{issued / 'broker'}/",
            "persistence_location /var/lib/mosquitto/": f"persistence_location {data}/",
            "listener 8883\n": f"listener {tls_port} 127.0.0.1\n",
            "log_dest stdout\n": f"log_dest file {log}\n",
        },
    )
    if mutual_tls:
        switch_on = {
            "\nrequire_certificate false\n": "\n",
            "\n#require_certificate true\n": "\nrequire_certificate true\n",
            "\n#use_identity_as_username true\n": "\nuse_identity_as_username true\n",
        }
        for old in switch_on:
            assert text.count(old) == 1, f"mosquitto.conf: {old.strip()!r} not exactly once"
        text = rewrite(text, switch_on)
    if plain_port is not None:
        # Test only: production has no plain listener. per_listener_settings false makes this
        # one use the same password file and ACL as the TLS listener, so the ACL tests that
        # connect here see the production rules without paying for TLS handshakes.
        assert "\nper_listener_settings false\n" in text
        text += (
            f"\n# test only: production has no plain listener\nlistener {plain_port} 127.0.0.1\n"
        )
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


def issue_credentials(out: Path, *extra: str, inventory: Path | None = None) -> str:
    """Run deploy/mosquitto/issue-credentials.py into `out`; its output."""
    run = subprocess.run(
        [
            sys.executable,
            str(DEPLOY / "issue-credentials.py"),
            "--inventory",
            str(inventory or DEPLOY / "site.example.yaml"),
            "--out",
            str(out),
            "--broker-owner",
            "none",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def run_site_broker(
    root: Path, *, with_plain_listener: bool, mutual_tls: bool, issue_args: tuple[str, ...] = ()
) -> Iterator[SiteBroker]:
    """Issue the example site's credentials under `root` and run the production config."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    binary = mosquitto_binary()
    issued = root / "issued"
    issue_credentials(issued, *issue_args)
    tls_port = free_port()
    plain_port = free_port() if with_plain_listener else None
    data, log = root / "data", root / "mosquitto.log"
    data.mkdir()
    conf = root / "mosquitto.conf"
    conf.write_text(
        production_conf(
            issued, data, log, tls_port=tls_port, plain_port=plain_port, mutual_tls=mutual_tls
        )
    )
    proc = subprocess.Popen([binary, "-c", str(conf)])
    try:
        if plain_port is not None:
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


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteBroker]:
    """The production config as it is (TLS only, passwords), plus the test's plain listener."""
    yield from run_site_broker(
        tmp_path_factory.mktemp("site"), with_plain_listener=True, mutual_tls=False
    )


@pytest.fixture(scope="module")
def mtls_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteBroker]:
    """The production config with mutual TLS switched on; client certificates issued."""
    yield from run_site_broker(
        tmp_path_factory.mktemp("mtls-site"),
        with_plain_listener=False,
        mutual_tls=True,
        issue_args=("--client-certs",),
    )


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
        cert: tuple[Path, Path] | None = None,
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
            if cert is not None:
                context.load_cert_chain(*cert)
            self.client.tls_set_context(context)
        self.connack: int | None = None
        self.connected = threading.Event()
        self.dropped = threading.Event()
        self.subacks: dict[int, list[int]] = {}
        self.pubacks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, client, userdata, flags, reason, properties):  # type: ignore[no-untyped-def]
        self.connack = reason.value
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason, properties):  # type: ignore[no-untyped-def]
        self.dropped.set()

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
        assert port is not None, "this broker has no plain listener"
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

    def connect_fails_before_connack(self) -> bool:
        """True when the connection ends, in or just after the TLS handshake, with no CONNACK.

        With TLS 1.3 the client finishes its side of the handshake before the broker checks the
        client certificate: the refusal then arrives as an alert on the first read, and paho
        reports a disconnect. With TLS 1.2 the handshake itself raises.
        """
        try:
            self.client.connect("127.0.0.1", self.site.tls_port, keepalive=30)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return self.connack is None
        # Driven here rather than by loop_start(): no background reconnects, no 1 s teardown.
        deadline = time.monotonic() + 5
        while self.connack is None and not self.dropped.is_set() and time.monotonic() < deadline:
            self.client.loop(timeout=0.05)
        return self.dropped.is_set() and self.connack is None

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


@pytest.mark.parametrize("delivery", ["all", "shared"])
def test_gateway_receives_through_its_replica_subscriptions(
    site: SiteBroker, clients: dict[str, Client], delivery: str
) -> None:
    """Every filter a gateway replica really subscribes to (shared group 'gw', either delivery)
    is granted and works."""
    gate_a, bridge = clients["gate_a"], clients["bridge"]
    gateway = Client(site, GATEWAY_USER, site.password(GATEWAY_USER))
    assert gateway.connect() == 0
    try:
        for topic_filter, qos in subscriptions(SITE, "gw", delivery):
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
    issue_credentials(site.issued)
    assert {p.name: p.read_bytes() for p in (site.issued / "clients").iterdir()} == before
    assert (site.issued / "ca" / "ca.key").read_bytes() == ca_key
    for path in (site.issued / "clients").glob("*.password"):
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_server_certificate_is_kept_until_its_host_names_change_or_rotation_is_asked(
    site: SiteBroker, tmp_path: Path
) -> None:
    """The broker certificate is re-signed only for a reason, and the run says which."""
    issued = tmp_path / "issued"
    shutil.copytree(site.issued, issued)
    server = issued / "broker" / "server.crt"
    first = server.read_bytes()
    out = issue_credentials(issued)
    assert "kept server certificate" in out, out
    assert server.read_bytes() == first

    inventory = tmp_path / "site.yaml"
    text = (DEPLOY / "site.example.yaml").read_text(encoding="utf-8")
    moved = text.replace("hostnames: [mosquitto,", "hostnames: [mqtt2.campus.example, mosquitto,")
    assert moved != text
    inventory.write_text(moved, encoding="utf-8")
    out = issue_credentials(issued, inventory=inventory)
    assert "(host names or addresses changed)" in out, out
    renamed = server.read_bytes()
    assert renamed != first
    cert_details(server, issued / "ca" / "ca.crt")
    names = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(server)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:mqtt2.campus.example" in names, names

    out = issue_credentials(issued, "--rotate", "server-cert", inventory=inventory)
    assert "(rotation asked)" in out, out
    assert server.read_bytes() != renamed


def test_gate_publishes_every_gate_channel_for_itself_and_none_for_another_gate(
    clients: dict[str, Client],
) -> None:
    """Each topic a gate writes (security included) is open to it for its own address only."""
    gate_a = clients["gate_a"]
    for channel in GATE_PUBLISHES:
        assert gate_a.publish(gate_topic(GATE_A, channel), b"{}") in ACCEPTED, channel
        assert gate_a.publish(gate_topic(GATE_B, channel), b"{}") == NOT_AUTHORIZED, channel


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


# ----------------------------------------------------------------------------- mutual TLS


def tls_alert(site: SiteBroker, cert: tuple[Path, Path] | None) -> str:
    """The broker's TLS refusal of a client presenting `cert` (or none), as the client sees it."""
    context = ssl.create_default_context(cafile=str(site.ca))
    if cert is not None:
        context.load_cert_chain(*cert)
    with (
        socket.create_connection(("127.0.0.1", site.tls_port), timeout=5) as raw,
        pytest.raises(ssl.SSLError) as refused,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        # TLS 1.3: the verdict on the client certificate comes after the client's handshake
        # (TLS 1.2: wrap_socket raises). A broker that accepted would time out here instead.
        tls.recv(1)
    return str(refused.value)


@pytest.fixture
def foreign_cert(tmp_path: Path) -> tuple[Path, Path]:
    """Gate A's certificate (same CN) from another site CA, made by the same script."""
    inventory = tmp_path / "other-site.json"
    inventory.write_text(
        '{"site": "campus", "broker": {"hostnames": ["localhost"]},'
        ' "gates": [{"building": "B1", "gate_id": "B1-main"}]}'
    )
    issue_credentials(tmp_path / "other", "--client-certs", inventory=inventory)
    clients_dir = tmp_path / "other" / "clients"
    return clients_dir / f"{user_of(GATE_A)}.crt", clients_dir / f"{user_of(GATE_A)}.key"


def test_mtls_client_without_a_certificate_is_refused_in_the_tls_handshake(
    mtls_site: SiteBroker,
) -> None:
    """No client certificate: the broker ends the handshake with an alert, no MQTT at all."""
    alert = tls_alert(mtls_site, None)
    # TLS 1.3 names the missing certificate; TLS 1.2 sends a plain handshake failure.
    assert "CERTIFICATE_REQUIRED" in alert or "HANDSHAKE_FAILURE" in alert, alert
    assert Client(mtls_site, None, tls_ca=mtls_site.ca).connect_fails_before_connack()


def test_mtls_correct_password_without_a_certificate_is_refused(mtls_site: SiteBroker) -> None:
    """A stolen password alone gets no CONNACK."""
    user = user_of(GATE_A)
    client = Client(mtls_site, user, mtls_site.password(user), tls_ca=mtls_site.ca)
    assert client.connect_fails_before_connack()


def test_mtls_certificate_from_another_ca_is_refused_even_with_the_right_cn_and_password(
    mtls_site: SiteBroker, foreign_cert: tuple[Path, Path]
) -> None:
    assert "UNKNOWN_CA" in tls_alert(mtls_site, foreign_cert)
    user = user_of(GATE_A)
    client = Client(
        mtls_site, user, mtls_site.password(user), tls_ca=mtls_site.ca, cert=foreign_cert
    )
    assert client.connect_fails_before_connack()


def test_mtls_gate_with_its_certificate_publishes_its_own_event_but_not_another_gates(
    mtls_site: SiteBroker,
) -> None:
    """No user name or password sent: the certificate's CN is the account the ACL applies to."""
    gateway = Client(mtls_site, None, tls_ca=mtls_site.ca, cert=mtls_site.cert(GATEWAY_USER))
    gate_a = Client(mtls_site, None, tls_ca=mtls_site.ca, cert=mtls_site.cert(user_of(GATE_A)))
    assert gateway.connect() == 0
    try:
        assert gate_a.connect() == 0
        try:
            assert gateway.subscribe(gate_filter(SITE, GateChannel.EVENT)) == [1]
            own, forged = unique("mtls-own-event"), unique("mtls-forged-event")
            assert gate_a.publish(gate_topic(GATE_A, GateChannel.EVENT), own) in ACCEPTED
            assert gate_a.publish(gate_topic(GATE_B, GateChannel.EVENT), forged) == NOT_AUTHORIZED
            wait_until(lambda: gateway.received(own))
            assert not gateway.received(forged)
        finally:
            gate_a.stop()
    finally:
        gateway.stop()


def test_mtls_user_name_and_password_are_not_checked_the_certificate_is_the_credential(
    mtls_site: SiteBroker,
) -> None:
    """use_identity_as_username: mosquitto ignores CONNECT's user name and password. Gate A's
    certificate with gate B's user name and a wrong password connects, as gate A: a stolen key
    is enough on its own, and a rotated password does not lock it out."""
    client = Client(
        mtls_site,
        user_of(GATE_B),
        "not-the-password",
        tls_ca=mtls_site.ca,
        cert=mtls_site.cert(user_of(GATE_A)),
    )
    assert client.connect() == 0
    try:
        assert client.publish(gate_topic(GATE_A, GateChannel.EVENT), b"{}") in ACCEPTED
        assert client.publish(gate_topic(GATE_B, GateChannel.EVENT), b"{}") == NOT_AUTHORIZED
    finally:
        client.stop()


def test_mtls_dormguard_mqtt_link_connects_with_cert_file_and_key_file(
    mtls_site: SiteBroker,
) -> None:
    """A daemon's MqttLink with mqtt.tls.cert_file / key_file (and no password) is let in as
    its gate; its own event is acknowledged, another gate's is rejected with a reason."""
    crt, key = mtls_site.cert(user_of(GATE_A))
    settings = MqttSettings(
        host="127.0.0.1",
        port=mtls_site.tls_port,
        username=user_of(GATE_A),
        tls=TlsSettings(ca_file=mtls_site.ca, cert_file=crt, key_file=key),
    )
    link = MqttLink(settings, client_id=f"test-link-{time.monotonic_ns()}")
    acks: dict[int, str | None] = {}
    link.on_ack = lambda mid, error: acks.__setitem__(mid, error)
    link.start()
    try:
        assert link.wait_connected(5), link.last_error
        own = link.publish(gate_topic(GATE_A, GateChannel.EVENT), unique("link-event"))
        forged = link.publish(gate_topic(GATE_B, GateChannel.EVENT), unique("link-forged"))
        wait_until(lambda: own in acks and forged in acks)
        assert acks[own] is None
        refusal = acks[forged]
        assert refusal is not None and "authorized" in refusal.lower(), refusal
    finally:
        link.stop()


def cert_details(crt: Path, ca: Path) -> str:
    """openssl's subject and extended key usage of `crt`, after checking it against `ca`."""
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca), str(crt)], capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    shown = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-ext", "extendedKeyUsage", "-in", str(crt)],
        capture_output=True,
        text=True,
        check=True,
    )
    return shown.stdout


def test_client_certificates_are_kept_between_runs_and_renewed_by_rotate(
    mtls_site: SiteBroker, tmp_path: Path
) -> None:
    """--client-certs: one certificate per account (CN = user, clientAuth, key 0600), kept by a
    second run; --rotate client-certs renews all of them, --rotate <user> that user's only."""
    issued = tmp_path / "issued"
    shutil.copytree(mtls_site.issued, issued)
    clients_dir = issued / "clients"

    def snapshot() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(clients_dir.iterdir())}

    users = sorted(p.stem for p in clients_dir.glob("*.password"))
    assert users
    for user in users:
        details = cert_details(clients_dir / f"{user}.crt", clients_dir / "ca.crt")
        assert f"CN = {user}\n" in details, details
        assert "TLS Web Client Authentication" in details, details
        assert (clients_dir / f"{user}.key").stat().st_mode & 0o777 == 0o600, user

    before = snapshot()
    server = (issued / "broker" / "server.crt").read_bytes()
    issue_credentials(issued, "--client-certs")
    assert snapshot() == before

    issue_credentials(issued, "--client-certs", "--rotate", "client-certs")
    after = snapshot()
    for user in users:
        assert after[f"{user}.password"] == before[f"{user}.password"], user
        for suffix in (".crt", ".key"):
            assert after[user + suffix] != before[user + suffix], user + suffix
        cert_details(clients_dir / f"{user}.crt", clients_dir / "ca.crt")
    assert (issued / "broker" / "server.crt").read_bytes() == server

    stolen = user_of(GATE_A)
    issue_credentials(issued, "--client-certs", "--rotate", stolen)
    renewed = {name for name, data in snapshot().items() if after[name] != data}
    assert renewed == {f"{stolen}.password", f"{stolen}.crt", f"{stolen}.key"}
