"""bench/campus_scale.py at a tiny scale on a real SQLite file, so the benchmark does not rot.

Rule: what the benchmark reports is what its database holds: every generated access event is
stored once (and every other message), its late returns and device states are rows, the filled
hash chain verifies row for row, and every query was timed.
"""

from __future__ import annotations

from pathlib import Path

from bench.campus.semester import Scale
from bench.campus_scale import Backend, run_database


def test_campus_scale_figures_match_the_filled_database(tmp_path: Path) -> None:
    scale = Scale(days=3, students=150, appliances=10, beds=100, repeats=2, live_days=1)
    backend = Backend(
        "sqlite",
        f"sqlite:///{tmp_path / 'full' / 'gateway.db'}",
        f"sqlite:///{tmp_path / 'empty' / 'gateway.db'}",
    )
    result = run_database(backend, tmp_path, scale, log=lambda _line: None)

    assert result["events"] == result["generated_events"] > 2 * 150 * 4 - 1
    assert result["messages_stored"] == result["messages_generated"]
    assert result["late_return_rows"] == result["late_returns_generated"] > 0
    assert result["device_state_rows"] == result["device_states_generated"] > 0
    assert result["verify_ok"] is True
    assert result["verify_rows"] == result["events"]
    assert result["alerts"] > 0
    assert set(result["p95_ms"]) == {
        "open_alerts",
        "access_by_person",
        "access_by_gate",
        "access_by_time",
        "roll_call",
        "board",
        "chart",
        "welfare",
        "retention",
    }
    assert result["ingest_empty_per_s"] > 0
    assert result["ingest_full_per_s"] > 0
