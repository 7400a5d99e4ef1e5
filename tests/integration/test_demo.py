"""`dormguard demo --duration`: the whole system headless (gate, room, gateway) sees every kind."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

import pytest

from tests.gatekit import dormguard_env

pytestmark = pytest.mark.slow


def test_headless_demo_runs_the_gate_and_a_service_room_and_prints_counts() -> None:
    """Student granted, stranger denied; washer finishes, dryer gets stuck, hair dryer overruns."""
    running = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dormguard.cli",
            "--log-level",
            "warning",
            "demo",
            "--duration",
            "35",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dormguard_env(),
    )
    lines: list[str] = []
    errors: list[str] = []
    readers = [
        threading.Thread(target=lambda: lines.extend(running.stdout or []), daemon=True),
        threading.Thread(target=lambda: errors.extend(running.stderr or []), daemon=True),
    ]
    for reader in readers:
        reader.start()
    probed: dict[str, object] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(x.startswith("broker: ") for x in lines):
            time.sleep(0.2)
        broker_line = next((x for x in lines if x.startswith("broker: ")), "")
        port = re.search(r"mqtt://127\.0\.0\.1:(\d+)", broker_line)
        assert port is not None, "".join(lines)[-2000:]
        probed = _probe_running_demo(int(port.group(1)), "".join(lines))
        running.wait(timeout=180)
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
    for reader in readers:
        reader.join(10)
    proc = subprocess.CompletedProcess(
        running.args, running.returncode, "".join(lines), "".join(errors)
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # The demo's broker runs as production does: anonymous clients and wrong passwords are
    # refused, so the outside probe's forged unlock cannot even be delivered; the printed
    # logins really open the console.
    assert probed["anonymous"] not in (0, None), probed
    assert probed["wrong_password"] not in (0, None), probed
    assert probed["logins_ok"] == ["admin", "facilities", "guard"], probed
    # The printed student login opens the student's own page (their record, their rooms).
    assert probed["student"] == ("s2024001", 200), probed
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["granted"] >= 1
    assert report["denied"] >= 1
    assert "GRANTED  s2024001" in proc.stdout
    assert "DENIED   unknown person" in proc.stdout
    # The printed photo of the enrolled student is refused by the gate's liveness check.
    assert report["presentation_attacks"] >= 1, proc.stdout[-3000:]
    assert "DENIED   s2024001         by face (presentation_attack)" in proc.stdout

    statuses, faults = report["device_statuses"], report["device_faults"]
    assert report["device_states"] >= 5
    assert set(statuses) == {
        "washer-r101-1",
        "washer-r101-2",
        "dryer-r101-1",
        "water-r101-1",
        "hairdryer-r101-1",
    }
    assert "finished" in statuses["washer-r101-1"], statuses
    assert "stuck" in faults["dryer-r101-1"], faults
    assert "in_use" in statuses["hairdryer-r101-1"]
    assert "overrun" in faults["hairdryer-r101-1"], faults
    # No device went offline while the demo ran (the bridge stops before the simulator).
    assert not any("offline" in found for found in faults.values()), faults
    assert "DEVICE   washer-r101-1    finished" in proc.stdout

    # The gateway stored every decision, raised the unknown-face and appliance alerts, and
    # printed where its console is and how to log in.
    assert report["stored_access_events"] == report["granted"] + report["denied"]
    assert report["alerts"] >= 2
    assert {"unknown_face", "appliance_fault"} <= set(report["alert_types"])
    assert report["devices_known"] == 5
    assert "console: http://127.0.0.1:" in proc.stdout
    logins = _printed_logins(proc.stdout)
    assert set(logins) == {"admin", "guard", "facilities"}, proc.stdout[:2000]
    # Fresh random passwords, one per login (never the fixed ones of earlier versions).
    assert len(set(logins.values())) == 3
    assert all(len(password) >= 12 for password in logins.values())
    assert "guard-demo-2024" not in logins.values()


def _printed_logins(stdout: str) -> dict[str, str]:
    """The logins the demo printed: ``console: URL  (logins: user / password, ...)``."""
    line = next(line for line in stdout.splitlines() if line.startswith("console: "))
    listed = re.search(r"\(logins: (.*)\)$", line)
    assert listed is not None, line
    pairs = (entry.split(" / ", 1) for entry in listed.group(1).split(", "))
    return {user: password for user, password in pairs}


def _student_page(base: str, stdout: str) -> tuple[str, int]:
    """The printed student login: whose record it opens, and how the rooms answer."""
    import httpx

    line = next(line for line in stdout.splitlines() if line.startswith("student page: "))
    listed = re.search(r"\(student login: (\S+) / (\S+)\)$", line)
    assert listed is not None, line
    answer = httpx.post(
        base + "/api/auth/login",
        json={"username": listed.group(1), "password": listed.group(2)},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    headers = {"Authorization": f"Bearer {answer.json()['token']}"}
    record = httpx.get(base + "/api/student/record", headers=headers, timeout=10).json()
    rooms = httpx.get(base + "/api/student/rooms", headers=headers, timeout=10)
    return record["person"]["person_id"], rooms.status_code


def _connack(port: int, username: str | None, password: str | None) -> int | None:
    """The CONNACK reason code the broker gives this login (None: no answer in 10 s)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    answered = threading.Event()
    code: list[int] = []

    def on_connect(client, userdata, flags, reason, properties):  # type: ignore[no-untyped-def]
        code.append(reason.value)
        answered.set()

    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"probe-{time.monotonic_ns()}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    if username is not None:
        client.username_pw_set(username, password)
    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        answered.wait(10)
    finally:
        client.disconnect()
        client.loop_stop()
    return code[0] if code else None


def _probe_running_demo(port: int, stdout: str) -> dict[str, object]:
    """What an outsider gets from the running demo: broker logins and console logins."""
    import httpx

    url = re.search(r"console: (http://\S+)", stdout)
    assert url is not None, stdout[-2000:]
    logins_ok = []
    for user, password in sorted(_printed_logins(stdout).items()):
        answer = httpx.post(
            url.group(1).rstrip("/") + "/api/auth/login",
            json={"username": user, "password": password},
            timeout=10,
        )
        if answer.status_code == 200 and answer.json().get("token"):
            logins_ok.append(user)
    return {
        "student": _student_page(url.group(1).rstrip("/"), stdout),
        "anonymous": _connack(port, None, None),
        "wrong_password": _connack(port, "gateway-demo-campus-gw1", "not-the-password"),
        "logins_ok": logins_ok,
    }
