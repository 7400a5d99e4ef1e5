"""`dormguard demo`: the system on embedded defaults, on this machine only.

Starts a private mosquitto on a free port, the gateway on embedded SQLite with its API and web
console (demo logins printed), enrols a sample student from a photo, and runs one
entrance gate whose camera is a looping image sequence made from the sample photos: the student
(other photos than the enrolled one) is granted, a printed photo of him is refused by the
liveness check (presentation_attack), a stranger is denied, and a card reader swipes a card now
and then. Beside it runs one service room: `dormguard simulate devices`
(two washers, a dryer, a water dispenser and a hair dryer on Tasmota / ESPHome / Shelly meters,
in compressed time) and `dormguard devices`, the bridge that turns their telemetry into appliance
states. The dryer's programme hangs and the hair dryer is left on. Access events and appliance
states are printed as they arrive over MQTT.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from contracts.access import Person
from contracts.gallery import Gallery
from contracts.gallery_crypto import generate_key, load_key
from contracts.models import Availability, CardSwipe, DeviceState
from contracts.registry import PayloadError, parse_message
from contracts.settings import MqttSettings
from contracts.signing import MessageSigner, generate_private_key_text, parse_private_key
from contracts.topics import (
    BridgeChannel,
    DeviceChannel,
    GateAddress,
    GateChannel,
    bridge_topic,
    device_filter,
    gate_filter,
    gate_topic,
)
from contracts.yamlconfig import load_yaml_model
from edge.devices.config import TYPE_DEFAULTS
from edge.devices.model import ApplianceType, MachineParams
from edge.devices.simulation.fleet import bridge_device_entries, plan_rooms
from edge.gate.app import build_gate
from edge.gate.config import GateConfig
from edge.gate.gallery import GalleryStore
from edge.localbroker import LocalBroker
from edge.mqtt import MqttLink, ReceivedMessage
from edge.runtime import stop_on_signals
from edge.samples import gate_frame, noise_frame, sample_photos_dir
from faces.engine import photo_engine
from faces.images import read_image

log = logging.getLogger(__name__)

CREDENTIALS_SCRIPT = (
    Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "issue-credentials.py"
)

SITE, BUILDING, GATE = "demo-campus", "b1", "east-entrance"
STUDENT, CARD_USER = "s2024001", "s2024002"
CARD_UID = "04A1B2C3"

BRIDGE = "service-b1"
# The appliances live this many times faster than the clock: a washer's hour takes 12 s.
SIM_SPEED = 300.0
ROOM_FAULTS = {"dryer-r101-1": "stuck", "hairdryer-r101-1": "overrun"}
# Silence is judged in real time; the simulated meters report many times a second.
ROOM_OFFLINE_AFTER_S = 15.0
# MachineParams durations that are appliance time, so the demo bridge divides them by SIM_SPEED.
APPLIANCE_DURATIONS = (
    "start_hold_s",
    "stop_hold_s",
    "finished_timeout_s",
    "default_cycle_s",
    "on_hold_s",
    "overrun_s",
    "heater_fault_after_s",
)


def _prepare(workdir: Path) -> Path:
    """Key, gallery and camera frames for the demo gate; returns the gate config path."""
    key_file = workdir / "gallery.key"
    key_file.write_text(generate_key() + "\n")
    key_file.chmod(0o600)
    key = load_key(key_file=key_file, key_env=None)
    photos = sample_photos_dir()
    engine = photo_engine()
    image = read_image(str(photos / "obama.jpg"))
    detection = engine.detect(image)
    encoding = engine.encode(detection.rgb, detection.boxes[:1])[0]
    people = {
        STUDENT: Person(STUDENT, buildings=frozenset({BUILDING})),
        CARD_USER: Person(
            CARD_USER, buildings=frozenset({BUILDING}), card_uids=frozenset({CARD_UID})
        ),
    }
    gallery = Gallery(1, people, (STUDENT,), np.asarray([encoding], dtype=np.float32))
    GalleryStore(workdir / "gallery.bin", key).save(gallery)

    frames = workdir / "camera"
    frames.mkdir()
    # The student walks up: his face changes between frames as a living one does (two photos
    # of him taken at different moments, alternating: the samples hold no video of him). Then
    # someone holds up a printed photo of him (still: refused by the liveness check after its
    # 2 s wait), then a stranger walks up.
    moments = [gate_frame(photos / "obama2.jpg"), gate_frame(photos / "obama3.jpg")]
    sequence = (
        [noise_frame(i) for i in range(10)]
        + [moments[i % 2] for i in range(20)]
        + [noise_frame(100 + i) for i in range(15)]
        + [gate_frame(photos / "obama2.jpg")] * 25
        + [noise_frame(150 + i) for i in range(15)]
        + [gate_frame(photos / "biden.jpg")] * 20
        + [noise_frame(200 + i) for i in range(10)]
    )
    for index, frame in enumerate(sequence):
        cv2.imwrite(str(frames / f"{index:04d}.jpg"), frame)
    return workdir / "gallery.bin"


class _Accounts:
    """The demo's broker accounts, issued as production issues them (deploy/mosquitto).

    Every run makes a fresh inventory, CA, passwords and ACL with issue-credentials.py, and the
    demo's broker refuses anonymous clients: each part logs in with its own account and may
    touch only its own topics. The console printout reads like a gateway replica does.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.clients = workdir / "clients"
        self.gateway = f"gateway-{SITE}-gw1"
        self.console = f"gateway-{SITE}-console"
        self.gate = f"gate-{SITE}-{BUILDING}-{GATE}"
        self.reader = f"reader-{SITE}-{BUILDING}-{GATE}"
        self.bridge = f"bridge-{SITE}-{BRIDGE}"

    @property
    def password_file(self) -> Path:
        return self.workdir / "broker" / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.workdir / "broker" / "acl"

    def issue(self) -> None:
        """Run issue-credentials.py on the demo's site; RuntimeError with its output on failure."""
        if not CREDENTIALS_SCRIPT.exists():
            raise RuntimeError(f"{CREDENTIALS_SCRIPT} is missing: run the demo from a checkout")
        devices = plan_rooms(1, building=BUILDING, faults=ROOM_FAULTS)
        inventory = {
            "site": SITE,
            "broker": {"hostnames": ["localhost"], "ips": ["127.0.0.1"]},
            "gateways": [{"replica": "gw1"}, {"replica": "console"}],
            "gates": [{"building": BUILDING, "gate_id": GATE, "card_reader": True}],
            "bridges": [
                {
                    "bridge_id": BRIDGE,
                    "devices": [
                        {"id": d.device_id, "firmware": d.firmware.value, "topic": d.topic}
                        for d in devices
                    ],
                }
            ],
        }
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "site.json"
        path.write_text(json.dumps(inventory, indent=2))
        done = subprocess.run(
            [
                sys.executable,
                str(CREDENTIALS_SCRIPT),
                "--inventory",
                str(path),
                "--out",
                str(self.workdir),
                "--broker-owner",
                "none",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"issuing the demo's broker credentials failed: {done.stderr}")

    def settings(self, user: str, port: int) -> dict[str, Any]:
        """The `mqtt:` section of a daemon logging in as ``user``."""
        return {
            "host": "127.0.0.1",
            "port": port,
            "username": user,
            "password": {"file": str(self.clients / f"{user}.password")},
        }

    def link(self, user: str, port: int) -> MqttLink:
        """An MQTT link of the demo process itself, logged in as ``user``."""
        settings = MqttSettings.model_validate(self.settings(user, port))
        assert settings.password is not None
        return MqttLink(settings, client_id=f"demo-{user}", password=settings.password.read())


def _signing_key(workdir: Path) -> tuple[Path, str]:
    """A fresh command signing key for this run: its file and the public key gates trust."""
    path = workdir / "signing.key"
    text = generate_private_key_text()
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path, MessageSigner(parse_private_key(text)).public_key


def _config(workdir: Path, port: int, accounts: _Accounts, trusted_key: str) -> Path:
    config: dict[str, Any] = {
        "site": SITE,
        "building": BUILDING,
        "gate": {"id": GATE, "direction": "in"},
        "mqtt": accounts.settings(accounts.gate, port),
        "source": {"kind": "folder", "target": str(workdir / "camera"), "fps": 10},
        "gallery": {
            "path": str(workdir / "gallery.bin"),
            "key": {"file": str(workdir / "gallery.key")},
        },
        "outbox": {"path": str(workdir / "outbox.db")},
        "command_auth": {"trusted_keys": [trusted_key]},
        "door": {"kind": "simulated", "open_time_s": 2.0},
        "liveness": {"mode": "passive"},
        "heartbeat_s": 5.0,
    }
    path = workdir / "gate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def scaled_thresholds(speed: float) -> dict[str, dict[str, float]]:
    """Each appliance type's bridge durations divided by the simulator's speed.

    The bridge times holds and timeouts by the clock, while the simulated appliances run `speed`
    times faster: a 300 s stop hold becomes 1 s at speed 300, the dryer's stuck limit (twice its
    55 min default cycle) 22 s.
    """
    types: dict[str, dict[str, float]] = {}
    for kind in ApplianceType:
        params = MachineParams(**TYPE_DEFAULTS.get(kind, {}))  # type: ignore[arg-type]
        scaled = {name: getattr(params, name) / speed for name in APPLIANCE_DURATIONS}
        types[kind.value] = {**scaled, "offline_after_s": ROOM_OFFLINE_AFTER_S}
    return types


def _bridge_config(workdir: Path, port: int, accounts: _Accounts) -> Path:
    """The service room's bridge config (the same room `dormguard simulate devices` plans)."""
    config: dict[str, Any] = {
        "site": SITE,
        "bridge_id": BRIDGE,
        "mqtt": accounts.settings(accounts.bridge, port),
        "devices": bridge_device_entries(plan_rooms(1, building=BUILDING, faults=ROOM_FAULTS)),
        "types": scaled_thresholds(SIM_SPEED),
        "tick_s": 0.2,
        "telemetry_interval_s": 2.0,
    }
    path = workdir / "devices.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class _ServiceRoom:
    """The simulated appliances and their bridge, run as the two commands a deployment runs.

    Separate processes keep the simulated clock honest: in the demo process the gate's face
    encoder holds the interpreter lock for ~60 ms at a time, long enough to stretch a washer's
    quiet pause past the compressed stop hold.
    """

    def __init__(self, workdir: Path, port: int, accounts: _Accounts) -> None:
        self.workdir = workdir
        self.port = port
        self.accounts = accounts
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._reported: set[str] = set()

    def start_bridge(self) -> None:
        """Start `dormguard devices` on the room's bridge config."""
        config = _bridge_config(self.workdir, self.port, self.accounts)
        self._spawn("device bridge", "devices", "--config", str(config))

    def start_simulator(self) -> None:
        """Start `dormguard simulate devices` for one room with the demo's faults."""
        faults = [arg for d, f in ROOM_FAULTS.items() for arg in ("--fault", f"{d}={f}")]
        self._spawn(
            "appliance simulator",
            "simulate",
            "devices",
            "--rooms",
            "1",
            "--port",
            str(self.port),
            "--credentials",
            str(self.accounts.clients),
            "--speed",
            str(SIM_SPEED),
            *faults,
        )

    def check(self) -> None:
        """Say so once if a process of the room has exited."""
        for name, proc in self._procs:
            code = proc.poll()
            if code is not None and name not in self._reported:
                self._reported.add(name)
                print(f"  ! {name} exited with code {code}")

    def stop(self) -> None:
        """Stop in reverse order of start: the bridge before the appliances, so devices going
        offline at shutdown are not reported."""
        for name, proc in reversed(self._procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in 10 s; killing it", name)
                proc.kill()
                proc.wait()

    def _spawn(self, name: str, *args: str) -> None:
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
        command = [sys.executable, "-m", "dormguard.cli", "--log-level", level, *args]
        # stdout: the simulator's device list; the demo prints its own view of the room. A
        # session of their own keeps Ctrl-C away from them: the demo stops them, bridge first.
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        self._procs.append((name, proc))


class _Monitor:
    """Prints access events and appliance states as a guard's screen would, and counts them."""

    def __init__(self) -> None:
        self.counts = {
            "granted": 0,
            "denied": 0,
            "presentation_attacks": 0,
            "door_events": 0,
            "heartbeats": 0,
        }
        self.device_states = 0
        self.device_statuses: dict[str, list[str]] = {}
        self.device_faults: dict[str, list[str]] = {}
        self.bridge_online = threading.Event()
        self.room_reporting = threading.Event()  # the first appliance state came through
        self._lock = threading.Lock()

    def report(self) -> dict[str, Any]:
        """Counts, and the statuses and faults each appliance showed (in order first seen)."""
        with self._lock:
            return {
                **self.counts,
                "device_states": self.device_states,
                "device_statuses": {k: list(v) for k, v in sorted(self.device_statuses.items())},
                "device_faults": {k: list(v) for k, v in sorted(self.device_faults.items())},
            }

    def __call__(self, msg: ReceivedMessage) -> None:
        try:
            payload = parse_message(msg.topic, msg.payload)
        except PayloadError as exc:
            print(f"  ! rejected message: {exc}")
            return
        if isinstance(payload, DeviceState):
            self._device_state(payload)
            return
        if isinstance(payload, Availability):
            if payload.state == "online":
                self.bridge_online.set()
            return
        data = payload.model_dump()
        with self._lock:
            if msg.topic.endswith("/event"):
                self.counts[data["decision"]] += 1
                if data["reason"] == "presentation_attack":
                    self.counts["presentation_attacks"] += 1
                who = data["person_id"] or "unknown person"
                extra = f" distance {data['distance']:.2f}" if data["distance"] is not None else ""
                print(
                    f"  {data['decision'].upper():8s} {who:16s} by {data['method']:4s} "
                    f"({data['reason']}){extra}"
                )
            elif msg.topic.endswith("/door"):
                self.counts["door_events"] += 1
            elif msg.topic.endswith("/heartbeat"):
                self.counts["heartbeats"] += 1

    def _device_state(self, state: DeviceState) -> None:
        with self._lock:
            self.device_states += 1
            self.room_reporting.set()
            statuses = self.device_statuses.setdefault(state.device_id, [])
            if state.status not in statuses:
                statuses.append(state.status)
            faults = self.device_faults.setdefault(state.device_id, [])
            faults.extend(f for f in state.faults if f not in faults)
            extra = f"  faults: {', '.join(state.faults)}" if state.faults else ""
            print(f"  DEVICE   {state.device_id:16s} {state.status}{extra}")


def run_demo(duration: float | None) -> int:
    """Run the demo until Ctrl-C, or for `duration` seconds then print counts as JSON."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    stop = threading.Event()

    stop_on_signals(stop.set)
    with tempfile.TemporaryDirectory(prefix="dormguard-demo-") as tmp:
        workdir = Path(tmp)
        accounts = _Accounts(workdir / "credentials")
        accounts.issue()
        signing_key, trusted_key = _signing_key(workdir)
        broker = LocalBroker(
            workdir / "mosquitto",
            password_file=accounts.password_file,
            acl_file=accounts.acl_file,
        )
        broker.start()
        monitor = _Monitor()
        watcher = accounts.link(accounts.console, broker.port)
        reader = accounts.link(accounts.reader, broker.port)
        for channel in (GateChannel.EVENT, GateChannel.DOOR, GateChannel.HEARTBEAT):
            watcher.subscribe(gate_filter(SITE, channel), monitor)
        watcher.subscribe(device_filter(SITE, DeviceChannel.STATE), monitor)
        watcher.subscribe(bridge_topic(SITE, BRIDGE, BridgeChannel.AVAILABILITY), monitor)
        watcher.start()
        reader.start()
        room = _ServiceRoom(workdir, broker.port, accounts)
        daemon = None
        runner = None
        gateway = None
        try:
            from gateway.demo import start_demo_gateway

            (workdir / "gateway").mkdir()
            gateway = start_demo_gateway(
                workdir / "gateway",
                accounts.settings(accounts.gateway, broker.port),
                signing_key,
                site=SITE,
                building=BUILDING,
                gate_id=GATE,
                students=[(STUDENT, "Demo Student / 演示学生")],
            )
            print(f"console: {gateway.url}  (logins: ", end="")
            print(", ".join(f"{x.username} / {x.password}" for x in gateway.logins) + ")")
            print(f"student page: {gateway.url}  (student login: ", end="")
            print(", ".join(f"{x.username} / {x.password}" for x in gateway.student_logins) + ")")
            # The room first: it runs while the gate's gallery and camera frames are prepared.
            # The appliances start before the bridge and report before the gallery work takes
            # the CPU, so no appliance is silent long enough to count as offline.
            room.start_simulator()
            room.start_bridge()
            if not monitor.bridge_online.wait(30):
                raise RuntimeError("the demo's device bridge did not come online within 30 s")
            if not monitor.room_reporting.wait(30):
                raise RuntimeError("the demo's appliances reported nothing within 30 s")
            print(
                f"service room: {BUILDING}/r101, 5 appliances at {SIM_SPEED:.0f}x speed "
                "(a washer's hour takes 12 s); the dryer's programme hangs, the hair dryer "
                "is left on"
            )
            print("dormguard demo: preparing sample gallery and camera frames ...")
            _prepare(workdir)
            config = load_yaml_model(
                _config(workdir, broker.port, accounts, trusted_key), GateConfig
            )
            daemon = build_gate(config)
            daemon.engine.start()  # type: ignore[attr-defined]
            daemon.start()
            runner = threading.Thread(target=daemon.run, name="gate", daemon=True)
            runner.start()
            print(
                f"broker: mqtt://127.0.0.1:{broker.port} (no anonymous access; accounts in "
                f"{accounts.clients})  gate: {SITE}/{BUILDING}/{GATE}"
            )
            print(
                "camera: a looping sequence (student walks up, leaves; a printed photo of him "
                "is held up: refused by the liveness check; a stranger walks up)"
            )
            print("press Ctrl-C to stop" if duration is None else f"running for {duration:.0f} s")
            card_topic = gate_topic(GateAddress(SITE, BUILDING, GATE), GateChannel.CARD)
            started = time.monotonic()
            next_swipe = started + 3.0
            while not stop.is_set():
                now = time.monotonic()
                if duration is not None and now - started >= duration:
                    break
                if now >= next_swipe:
                    swipe = CardSwipe(producer="demo-reader", card_uid=CARD_UID)
                    reader.publish(card_topic, swipe.to_bytes(), qos=1)
                    next_swipe = now + 15.0
                room.check()
                stop.wait(0.2)
        finally:
            if daemon is not None:
                daemon.request_stop()
                if runner is not None:
                    runner.join(timeout=5)
                daemon.stop()
            room.stop()
            time.sleep(0.3)
            stored: dict[str, Any] = {}
            if gateway is not None:
                time.sleep(0.5)  # the last events' batch
                stored = {**gateway.counts(), "alert_types": gateway.alert_types()}
                gateway.stop()
            watcher.stop(announce_offline=False)
            reader.stop(announce_offline=False)
            broker.stop()
    report = {**monitor.report(), **stored}
    if duration is not None:
        print(json.dumps(report))
        kinds = ("granted", "denied", "alerts", "device_states")
        seen_all = all(report.get(k, 0) > 0 for k in kinds)
        return 0 if seen_all else 1
    return 0
