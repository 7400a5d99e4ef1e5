"""The short chaos run (bench/chaos.py --short) loses, duplicates and reorders nothing, and
raises exactly the alerts its faults call for.

It starts the whole system for real (mosquitto, PostgreSQL, VictoriaMetrics, two gateway
replicas, ten simulated gates on the real outbox, a device bridge with 200 appliances),
injects six faults in sequence and counts end to end; this test reads its last JSON line and
checks that every process it started is gone afterwards. ``--strict-alerts``: each expected
alert (the killed and the cut-off gate offline) raised and cleared exactly once, no other; and
every stored event is one time-series sample, the replica kill included.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.broker,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces, PostgreSQL"),
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto not installed"),
    pytest.mark.skipif(
        not Path("/usr/bin/victoria-metrics").exists(), reason="victoria-metrics not installed"
    ),
    pytest.mark.skipif(
        not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")),
        reason="PostgreSQL server not installed",
    ),
]


def _processes_naming(text: str) -> list[str]:
    """Command lines of running processes that mention `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def _namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in listed.splitlines() if line.startswith("dgchaos-")}


@pytest.mark.timeout(900)
def test_short_chaos_run_loses_nothing_and_leaves_no_process() -> None:
    # Not tmp_path: PostgreSQL runs as its own user and cannot enter pytest's private folders.
    parent = Path(tempfile.mkdtemp(prefix="dormguard-chaos-test-"))
    parent.chmod(0o755)
    workdir = parent / "chaos"
    namespaces_before = _namespaces()
    env = dict(os.environ, PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1")
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "chaos.py"),
            "--short",
            "--strict-alerts",
            "--workdir",
            str(workdir),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=840,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON line; stdout tail: {run.stdout[-2000:]} stderr: {run.stderr[-2000:]}"
    print(lines[-1])
    result = json.loads(lines[-1])
    assert not workdir.exists()  # the run removes its folder
    shutil.rmtree(parent, ignore_errors=True)
    assert _processes_naming(str(workdir)) == []
    assert _namespaces() - namespaces_before == set()
    assert result["duplicates"] == 0
    assert result["misnumbered"] == 0
    assert result["produced"] > 0
    assert result["stored"] + result["lost"] == result["produced"]
    assert result["lost"] == 0, (result["lost_by_fault"], result.get("lost_examples"))
    assert all(v == 0 for v in result["order_violations"].values()), result["order_violations"]
    assert result["stored"] == result["produced"]
    assert result["alerts_as_expected"] == result["alerts_expected"] == 2, result["alert_detail"]
    assert result["alerts_unexpected"] == 0, result["unexpected_alerts_by_fault"]
    # Every stored event is one sample, through the replica kill too (the write-ahead backlog).
    assert result["series_points_found"] == result["series_points_expected"] > 0
    assert result["series_points_lost"] == 0, result["series_points_missing_by_fault"]
    assert result["passed"] is True
