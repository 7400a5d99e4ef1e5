"""The embedded time-series store against a real SQLite file."""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts.models import DeviceTelemetry
from gateway.timeseries import Point, SqliteSeriesStore, device_series_key, points_for

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
WASHER_A = device_series_key("north", "b7", "r101", "washer-a")
WASHER_B = device_series_key("north", "b7", "r101", "washer-b")


def reading(device_id: str, ts: datetime, power_w: float) -> DeviceTelemetry:
    return DeviceTelemetry(
        ts=ts,
        producer="bridge:north/bridge-1",
        site="north",
        building="b7",
        room="r101",
        device_id=device_id,
        kind="washer",
        power_w=power_w,
        energy_kwh=1.0,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteSeriesStore]:
    s = SqliteSeriesStore(tmp_path / "series.db", retention=timedelta(days=365 * 50))
    s.start()
    yield s
    s.close()


def test_constructor_touches_nothing(tmp_path: Path) -> None:
    SqliteSeriesStore(tmp_path / "sub" / "series.db")
    assert not (tmp_path / "sub").exists()


def test_written_points_read_back_per_device_oldest_first(store: SqliteSeriesStore) -> None:
    for i in range(10):
        store.write(points_for(reading("washer-a", T0 + timedelta(minutes=i), 100.0 + i)))
        store.write(points_for(reading("washer-b", T0 + timedelta(minutes=i), 900.0 + i)))
    assert store.flush(10)

    a = store.query(
        "appliance", "power_w", {}, T0, T0 + timedelta(hours=1), 100, series_key=WASHER_A
    )
    assert a == [(T0 + timedelta(minutes=i), 100.0 + i) for i in range(10)]
    b = store.query(
        "appliance", "power_w", {}, T0, T0 + timedelta(hours=1), 100, series_key=WASHER_B
    )
    assert [v for _, v in b] == [900.0 + i for i in range(10)]

    # Tags select every matching series; unknown tags or fields select nothing.
    both = store.query(
        "appliance", "power_w", {"device_type": "washer"}, T0, T0 + timedelta(1), 100
    )
    assert len(both) == 20
    assert [ts for ts, _ in both] == sorted(ts for ts, _ in both)
    assert (
        store.query("appliance", "power_w", {"device_type": "dryer"}, T0, T0 + timedelta(1), 9)
        == []
    )
    assert store.query("appliance", "water_l", {}, T0, T0 + timedelta(1), 9) == []
    stats = store.stats()
    assert stats.written == 20
    assert stats.pending == 0
    assert stats.dropped == 0
    assert stats.healthy


def test_query_window_is_half_open_and_limit_keeps_the_latest(store: SqliteSeriesStore) -> None:
    for i in range(10):
        store.write(points_for(reading("washer-a", T0 + timedelta(minutes=i), float(i))))
    assert store.flush(10)
    window = store.query(
        "appliance",
        "power_w",
        {},
        T0 + timedelta(minutes=2),
        T0 + timedelta(minutes=5),
        100,
        series_key=WASHER_A,
    )
    assert [v for _, v in window] == [2.0, 3.0, 4.0]
    latest = store.query("appliance", "power_w", {}, T0, T0 + timedelta(1), 3, series_key=WASHER_A)
    assert [v for _, v in latest] == [7.0, 8.0, 9.0]


def test_points_written_out_of_time_order_come_back_in_time_order(
    store: SqliteSeriesStore,
) -> None:
    minutes = [5, 1, 9, 3, 7, 0, 8, 2, 6, 4]
    for m in minutes:
        store.write([Point("probe", {"site": "s"}, {"v": m}, T0 + timedelta(minutes=m))])
    assert store.flush(10)
    rows = store.query("probe", "v", {"site": "s"}, T0, T0 + timedelta(hours=1), 100)
    assert rows == [(T0 + timedelta(minutes=m), float(m)) for m in range(10)]


def test_microsecond_timestamps_survive_and_a_redelivered_sample_is_stored_once(
    store: SqliteSeriesStore,
) -> None:
    ts = datetime(2025, 3, 1, 8, 0, 0, 123457, tzinfo=UTC)
    event = reading("washer-a", ts, 42.0)
    store.write(points_for(event))
    store.write(points_for(event))
    assert store.flush(10)
    rows = store.query("appliance", "power_w", {}, T0, T0 + timedelta(1), 10, series_key=WASHER_A)
    assert rows == [(ts, 42.0)]


def test_samples_table_is_without_rowid_keyed_by_series_and_time_in_wal_mode(
    store: SqliteSeriesStore,
) -> None:
    store.write([Point("probe", {"site": "s"}, {"v": 1}, T0)])
    assert store.flush(10)
    conn = sqlite3.connect(store.path)
    try:
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'samples'").fetchone()
        assert "WITHOUT ROWID" in sql.upper()
        with pytest.raises(sqlite3.OperationalError, match="rowid"):
            conn.execute("SELECT rowid FROM samples")
        pk = [
            row[1]
            for row in sorted(conn.execute("PRAGMA table_info(samples)"), key=lambda r: r[5])
            if row[5]
        ]
        assert pk == ["series_id", "ts"]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_prune_removes_samples_older_than_the_retention(tmp_path: Path) -> None:
    now = T0 + timedelta(days=10)
    store = SqliteSeriesStore(
        tmp_path / "series.db", retention=timedelta(days=7), clock=lambda: now
    )
    store.start()
    try:
        for day in range(10):
            store.write([Point("probe", {"site": "s"}, {"v": day}, T0 + timedelta(days=day))])
        assert store.flush(10)
        removed = store.prune(now)
        assert removed == 3  # days 0, 1, 2 are older than now - 7 days (day 3 is the cutoff)
        rows = store.query("probe", "v", {}, T0 - timedelta(days=1), now, 100)
        assert [v for _, v in rows] == [float(d) for d in range(3, 10)]
    finally:
        store.close()


def test_the_writer_thread_prunes_on_its_own(tmp_path: Path) -> None:
    now = T0 + timedelta(days=10)
    store = SqliteSeriesStore(
        tmp_path / "series.db",
        retention=timedelta(days=1),
        prune_interval_s=0.05,
        flush_interval_s=0.02,
        clock=lambda: now,
    )
    store.start()
    try:
        store.write([Point("probe", {"site": "s"}, {"v": 1}, T0)])
        store.write([Point("probe", {"site": "s"}, {"v": 2}, now - timedelta(hours=1))])
        assert store.flush(10)
        deadline = time.monotonic() + 5
        rows = store.query("probe", "v", {}, T0 - timedelta(1), now, 10)
        while len(rows) > 1 and time.monotonic() < deadline:
            time.sleep(0.02)
            rows = store.query("probe", "v", {}, T0 - timedelta(1), now, 10)
        assert [v for _, v in rows] == [2.0]
    finally:
        store.close()


def test_without_write_ahead_a_burst_of_50k_points_never_blocks_write_and_all_land_after_flush(
    tmp_path: Path,
) -> None:
    store = SqliteSeriesStore(
        tmp_path / "series.db", retention=timedelta(days=365 * 50), write_ahead=False
    )
    store.start()
    try:
        _burst_of_50k(store)
    finally:
        store.close()


def _burst_of_50k(store: SqliteSeriesStore) -> None:
    points = [
        Point(
            "appliance",
            {"site": "north", "building": "b7", "room": f"r{i % 20}", "device_type": "washer"},
            {"power_w": float(i), "current_a": 1.5},
            T0 + timedelta(milliseconds=i),
            series_key=f"north/b7/r{i % 20}/washer-{i % 100}",
        )
        for i in range(50_000)
    ]
    slowest = 0.0
    started = time.perf_counter()
    for point in points:
        t = time.perf_counter()
        store.write([point])
        slowest = max(slowest, time.perf_counter() - t)
    total = time.perf_counter() - started
    # write() only appends to memory, even while the writer thread inserts in the background.
    assert total < 2.0, f"50k write() calls took {total:.2f}s"
    assert slowest < 0.1, f"one write() took {slowest * 1000:.1f} ms"

    assert store.flush(60)
    stats = store.stats()
    assert stats.written == 50_000
    assert stats.dropped == 0
    assert stats.pending == 0
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 100_000
    finally:
        conn.close()
    one = store.query(
        "appliance",
        "power_w",
        {},
        T0,
        T0 + timedelta(hours=1),
        1000,
        series_key="north/b7/r7/washer-7",
    )
    assert [v for _, v in one] == [float(i) for i in range(7, 50_000, 100)]


def test_a_full_queue_drops_new_points_counts_them_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteSeriesStore(
        tmp_path / "series.db", retention=timedelta(days=365 * 50), queue_size=100, batch_size=10
    )
    caplog.set_level(logging.WARNING, logger="gateway.timeseries")
    # Not started yet: nothing drains the queue.
    for i in range(150):
        store.write([Point("probe", {"site": "s"}, {"v": i}, T0 + timedelta(seconds=i))])
    assert store.stats().dropped == 50
    assert len([r for r in caplog.records if "queue full" in r.getMessage()]) == 1
    store.start()
    try:
        assert store.flush(10)
        rows = store.query("probe", "v", {}, T0, T0 + timedelta(hours=1), 1000)
        assert [v for _, v in rows] == [float(i) for i in range(100)]
    finally:
        store.close()


def test_data_survives_a_restart_and_new_series_get_fresh_ids(tmp_path: Path) -> None:
    path = tmp_path / "series.db"
    first = SqliteSeriesStore(path, retention=timedelta(days=365 * 50))
    first.start()
    first.write([Point("probe", {"site": "a"}, {"v": 1}, T0)])
    first.close()  # close() stores what is queued

    second = SqliteSeriesStore(path, retention=timedelta(days=365 * 50))
    second.start()
    try:
        second.write([Point("probe", {"site": "b"}, {"v": 2}, T0)])
        second.write([Point("probe", {"site": "a"}, {"v": 3}, T0 + timedelta(seconds=1))])
        assert second.flush(10)
        a = second.query("probe", "v", {"site": "a"}, T0, T0 + timedelta(1), 10)
        b = second.query("probe", "v", {"site": "b"}, T0, T0 + timedelta(1), 10)
        assert [v for _, v in a] == [1.0, 3.0]
        assert [v for _, v in b] == [2.0]
    finally:
        second.close()


def test_with_write_ahead_points_are_in_the_file_when_write_returns(tmp_path: Path) -> None:
    store = SqliteSeriesStore(
        tmp_path / "series.db", retention=timedelta(days=365 * 50), flush_interval_s=60
    )
    store.start()
    try:
        store.write(
            [Point("probe", {"site": "s"}, {"v": i}, T0 + timedelta(seconds=i)) for i in range(5)]
        )
        # No flush: another connection sees them at once, and nothing waits in the queue.
        conn = sqlite3.connect(store.path)
        try:
            assert conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 5
        finally:
            conn.close()
        stats = store.stats()
        assert (stats.written, stats.pending) == (5, 0)
    finally:
        store.close()


_KILLED_STORE = """
import os, signal, sys
from datetime import UTC, datetime, timedelta
from gateway.timeseries import Point, SqliteSeriesStore
t0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
store = SqliteSeriesStore(sys.argv[1], retention=timedelta(days=365 * 50), flush_interval_s=30,
                          write_ahead=sys.argv[2] == "on")
store.start()
for start in range(0, 200, 20):
    store.write([Point("probe", {"site": "north"}, {"seq": i}, t0 + timedelta(seconds=i))
                 for i in range(start, start + 20)])
os.kill(os.getpid(), signal.SIGKILL)  # right after write() returned, as a kill -9 would
"""


def _killed_after_writing_200(path: Path, write_ahead: str) -> list[float]:
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_STORE, str(path), write_ahead],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    reopened = SqliteSeriesStore(path, retention=timedelta(days=365 * 50))
    reopened.start()
    try:
        rows = reopened.query("probe", "seq", {}, T0, T0 + timedelta(hours=1), 1000)
    finally:
        reopened.close()
    return [v for _, v in rows]


def test_points_written_ahead_survive_a_kill_9(tmp_path: Path) -> None:
    """The process is killed the moment its last write() returns: every point is in the file."""
    assert _killed_after_writing_200(tmp_path / "series.db", "on") == [float(i) for i in range(200)]


def test_without_write_ahead_a_kill_9_loses_what_the_queue_held(tmp_path: Path) -> None:
    """The reason write-ahead is the default: the queue is flushed every flush_interval_s."""
    assert len(_killed_after_writing_200(tmp_path / "series.db", "off")) < 200


def test_a_locked_file_sends_points_to_the_queue_and_the_thread_stores_them_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.timeseries")
    store = SqliteSeriesStore(
        tmp_path / "series.db",
        retention=timedelta(days=365 * 50),
        flush_interval_s=0.05,
        retry_backoff_s=0.05,
    )
    store.start()
    blocker = sqlite3.connect(store.path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
        t = time.monotonic()
        store.write([Point("probe", {"site": "s"}, {"v": 1}, T0)])
        assert time.monotonic() - t < 3.0  # a short wait for the lock, then the queue
        # While it fails, later points go straight to the queue: no wait at all.
        t = time.monotonic()
        store.write([Point("probe", {"site": "s"}, {"v": 2}, T0 + timedelta(seconds=1))])
        assert time.monotonic() - t < 0.2
        stats = store.stats()
        assert stats.errors >= 1 and "locked" in stats.last_error
        assert stats.written == 0 and stats.pending == 2
        assert any("will retry" in r.getMessage() for r in caplog.records)
        blocker.execute("ROLLBACK")
        assert store.flush(10)
        store.write([Point("probe", {"site": "s"}, {"v": 3}, T0 + timedelta(seconds=2))])
        rows = store.query("probe", "v", {}, T0, T0 + timedelta(hours=1), 10)
        assert [v for _, v in rows] == [1.0, 2.0, 3.0]
        assert store.stats().written == 3 and store.stats().healthy
    finally:
        blocker.close()
        store.close()
