"""The short chaos run (bench/chaos.py --short) loses, duplicates and reorders nothing.

Except, for now, across the broker restart: mosquitto 2.0.11 drops part of a shared
subscription's messages after a restart (docs/reliability.md); a loss there alone makes the test
xfail, a loss in any other fault fails it.

It starts the whole system for real (mosquitto, PostgreSQL, VictoriaMetrics, two gateway
replicas, ten simulated gates on the real outbox, a device bridge with 200 appliances),
injects six faults in sequence and counts end to end; this test reads its last JSON line and
checks that every process it started is gone afterwards. Alert counts are reported by the run
but not asserted here yet: with two replicas the windowed alert rules are still evaluated by
each of them (pass ``--strict-alerts`` once one evaluator is elected).
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
        [sys.executable, str(REPO / "bench" / "chaos.py"), "--short", "--workdir", str(workdir)],
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
    if result["lost"] and set(result["lost_by_fault"]) == {"broker_restart"}:
        # Known, outside this code base: see bench/chaos/shared_restart.py. Any loss anywhere
        # else still fails below.
        pytest.xfail(
            f"{result['lost']} events lost across the broker restart (mosquitto drops part of "
            "a shared subscription's messages after a restart: docs/reliability.md)"
        )
    assert result["lost"] == 0, (result["lost_by_fault"], result.get("lost_examples"))
    assert all(v == 0 for v in result["order_violations"].values()), result["order_violations"]
    assert result["stored"] == result["produced"]
