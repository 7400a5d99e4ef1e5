"""`dormguard demo --duration`: the one-command demo runs headless and sees every decision kind."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.gatekit import dormguard_env

pytestmark = pytest.mark.slow


def test_headless_demo_grants_the_student_denies_the_stranger_and_prints_counts() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", "--log-level", "warning", "demo", "--duration", "14"],
        capture_output=True,
        text=True,
        timeout=180,
        env=dormguard_env(),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts["granted"] >= 1
    assert counts["denied"] >= 1
    assert "GRANTED  s2024001" in proc.stdout
    assert "DENIED   unknown person" in proc.stdout
