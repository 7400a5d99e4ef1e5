"""bench/campus_scale.py at a tiny scale on a real SQLite file, so the benchmark does not rot.

Rule: what the benchmark reports is what its database holds: every generated access event is
stored once (and every other message), its late returns and device states are rows, the filled
hash chain verifies row for row, and every query was timed.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from bench.campus.semester import Scale
from bench.campus_scale import Backend, postgres_backend, run_database
from tests.postgres import Postgres


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
    assert result["series_points_dropped"] == 0
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


def test_a_kept_semester_copied_into_postgresql_is_the_same_semester(
    tmp_path: Path, postgres: Postgres
) -> None:
    """--keep-filled then --from-sqlite: PostgreSQL measures the very rows SQLite's ingest wrote,
    and each gate numbered its messages in time order (no event_gap alert all semester)."""
    scale = Scale(days=2, students=120, appliances=8, beds=60, repeats=1, live_days=1)
    sqlite = Backend(
        "sqlite",
        f"sqlite:///{tmp_path / 's' / 'full' / 'gateway.db'}",
        f"sqlite:///{tmp_path / 's' / 'empty' / 'gateway.db'}",
    )
    kept = tmp_path / "kept"
    filled = run_database(sqlite, tmp_path / "s", scale, log=lambda _l: None, keep_filled=kept)
    with closing(sqlite3.connect(kept / "gateway.db")) as db:
        kept_events = db.execute("SELECT count(*) FROM access_log").fetchone()[0]
        gap_alerts = db.execute("SELECT count(*) FROM alerts WHERE type = 'event_gap'").fetchone()
    assert gap_alerts == (0,)
    assert kept_events == filled["events"]

    copied = run_database(
        postgres_backend(postgres.url),
        tmp_path / "p",
        scale,
        log=lambda _l: None,
        from_sqlite=kept,
    )

    assert copied["filled_by"] == "copy of a kept sqlite semester"
    assert copied["events"] == filled["events"]
    assert copied["device_state_rows"] == filled["device_state_rows"]
    assert copied["late_return_rows"] == filled["late_return_rows"]
    assert copied["alerts"] == filled["alerts"]
    assert copied["open_alerts"] == filled["open_alerts"]
    assert copied["verify_ok"] is True  # the hash chain came over byte for byte
    assert copied["verify_rows"] == filled["events"]
    assert copied["ingest_full_per_s"] > 0
