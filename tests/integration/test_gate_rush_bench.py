"""A tiny run of the rush-hour benchmark through its main entry: the JSON line and its keys."""

from __future__ import annotations

import json

import pytest

from bench import gate_rush

REQUIRED = (
    "people_per_min",
    "door_p50_ms",
    "door_p95_ms",
    "false_grants",
    "wrong_person_grants",
    "ratio",
    "identities",
)


@pytest.mark.slow
def test_tiny_queue_prints_the_json_line_last(capsys: pytest.CaptureFixture[str]) -> None:
    """Three enrolled people and a stranger, a 100-template gallery: every figure is there,
    no grant goes to the wrong person or to the stranger."""
    argv = ["--people", "3", "--strangers", "1", "--templates", "100", "--timing-repeats", "1"]
    gate_rush.main(argv)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert all(key in summary for key in REQUIRED), summary
    assert summary["identities"] == 3 and summary["liveness"] == "off"
    assert summary["false_grants"] == 0 and summary["wrong_person_grants"] == 0
    assert summary["people_per_min"] > 0 and summary["ratio"] is not None
