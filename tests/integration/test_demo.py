"""`dormguard demo --duration`: the whole system headless (gate, room, gateway) sees every kind."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.gatekit import dormguard_env

pytestmark = pytest.mark.slow


def test_headless_demo_runs_the_gate_and_a_service_room_and_prints_counts() -> None:
    """Student granted, stranger denied; washer finishes, dryer gets stuck, hair dryer overruns."""
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", "--log-level", "warning", "demo", "--duration", "35"],
        capture_output=True,
        text=True,
        timeout=180,
        env=dormguard_env(),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["granted"] >= 1
    assert report["denied"] >= 1
    assert "GRANTED  s2024001" in proc.stdout
    assert "DENIED   unknown person" in proc.stdout

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
