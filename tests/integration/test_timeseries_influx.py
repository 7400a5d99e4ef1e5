"""InfluxWriter against a real VictoriaMetrics server (InfluxDB line protocol on /api/v2/write).

VictoriaMetrics names each series ``<measurement>_<field>`` with the tags as labels and keeps
millisecond timestamps, so the points here use whole milliseconds. Outages are real: the server
process is stopped and started again on the same port. The exact order of requests and the
handling of 4xx answers are checked against a small recording HTTP server, since
VictoriaMetrics accepts any line it can parse and shows no arrival order.
"""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from contracts.models import AccessEvent, DeviceTelemetry, LatencyBreakdown
from edge.localbroker import free_port
from gateway.timeseries import Point, points_for
from gateway.timeseries.influx import BatchTooLargeError, InfluxWriter, _translate_status
from tests.victoria import Victoria

TOKEN = "s3cret-token-never-logged"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Victoria]:
    server = Victoria(tmp_path_factory.mktemp("victoria"))
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(f"cannot run the real VictoriaMetrics server: {exc}", pytrace=False)
    yield server
    server.stop()


def make_writer(url: str, backlog: Path, **overrides: object) -> InfluxWriter:
    options: dict[str, object] = {
        "max_backlog_rows": 100_000,
        "batch_size": 50,
        "flush_interval_s": 0.05,
        "timeout_s": 2.0,
        "min_backoff_s": 0.05,
        "max_backoff_s": 0.3,
        "close_timeout_s": 2.0,
    }
    options.update(overrides)
    return InfluxWriter(url, TOKEN, "campus", "dormguard", backlog, **options)  # type: ignore[arg-type]


def probes(run: str, start: int, stop: int) -> list[Point]:
    """Point i has value i at T0 + i seconds, tagged with the test's run name."""
    return [
        Point("probe", {"site": "north", "run": run}, {"seq": i}, T0 + timedelta(seconds=i))
        for i in range(start, stop)
    ]


def seqs(server: Victoria, run: str) -> list[int]:
    series = server.samples(f'probe_seq{{run="{run}"}}')
    assert len(series) <= 1, series
    pairs = next(iter(series.values()), [])
    for ts_ms, value in pairs:
        assert ts_ms == int((T0 + timedelta(seconds=value)).timestamp() * 1000)
    return [int(v) for _, v in pairs]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def backlog_rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM backlog").fetchone()[0])
    finally:
        conn.close()


def test_constructor_touches_nothing(tmp_path: Path) -> None:
    writer = make_writer("http://127.0.0.1:1", tmp_path / "sub" / "backlog.db")
    assert not (tmp_path / "sub").exists()
    assert TOKEN not in repr(writer)


def test_points_reach_the_server_with_values_tags_and_timestamps(
    victoria: Victoria, tmp_path: Path
) -> None:
    access = AccessEvent(
        ts=T0 + timedelta(milliseconds=250),
        producer="gate:north/b7/main-door",
        site="north",
        building="b7",
        gate_id="main-door",
        direction="in",
        decision="granted",
        method="face",
        person_id="stu-20230001",
        reason="match",
        distance=0.41,
        faces_in_view=1,
        latency=LatencyBreakdown(first_seen_to_decision_ms=230.0),
    )
    telemetry = DeviceTelemetry(
        ts=T0 + timedelta(seconds=1),
        producer="bridge:north/bridge-1",
        site="north",
        building="b7",
        room="r101",
        device_id="washer-0042",
        kind="washer",
        power_w=1812.5,
        leak=True,
    )
    writer = make_writer(victoria.url, tmp_path / "backlog.db")
    writer.start()
    try:
        writer.write(points_for(access))
        writer.write(points_for(telemetry))
        assert writer.flush(10)
        stats = writer.stats()
        assert (stats.written, stats.backlog, stats.pending, stats.errors) == (2, 0, 0, 0)
        assert stats.healthy
    finally:
        writer.close()

    access_ms = int(access.ts.timestamp() * 1000)
    gate_labels = {
        "site": "north",
        "building": "b7",
        "gate": "main-door",
        "direction": "in",
        "decision": "granted",
        "method": "face",
        "reason": "match",
    }
    for field, value in (("count", 1.0), ("distance", 0.41), ("latency_ms", 230.0)):
        exported = victoria.export(f"access_{field}")
        assert len(exported) == 1, exported
        assert exported[0]["metric"] == {"__name__": f"access_{field}", **gate_labels}
        assert exported[0]["values"] == [value]
        assert exported[0]["timestamps"] == [access_ms]

    power = victoria.export("appliance_power_w")
    assert len(power) == 1
    assert power[0]["metric"] == {
        "__name__": "appliance_power_w",
        "site": "north",
        "building": "b7",
        "room": "r101",
        "device_type": "washer",
    }
    assert power[0]["values"] == [1812.5]
    assert power[0]["timestamps"] == [int(telemetry.ts.timestamp() * 1000)]
    assert victoria.export("appliance_leak")[0]["values"] == [1]
    # No id leaks into labels: neither the person, the event nor the device.
    everything = json.dumps(victoria.export('{__name__=~"access_.*|appliance_.*"}'))
    for secret in ("stu-20230001", access.event_id, "washer-0042"):
        assert secret not in everything


def test_outage_at_start_parks_points_on_disk_then_delivers_them_all(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Server down at start: points wait in the backlog; once it is up they all arrive."""
    caplog.set_level(logging.DEBUG)
    server = Victoria(tmp_path / "vm")  # port chosen, nothing listening yet
    backlog = tmp_path / "backlog.db"
    writer = make_writer(server.url, backlog)
    writer.start()
    try:
        writer.write(probes("cold-start", 0, 300))
        # Written ahead to disk at once; then the sender's first attempt fails.
        assert backlog_rows(backlog) == 300
        assert wait_until(
            lambda: (
                writer.stats().backlog == 300
                and writer.stats().pending == 0
                and writer.stats().errors >= 1
            )
        )
        stats = writer.stats()
        assert stats.written == 0
        assert stats.errors >= 1
        assert not stats.healthy
        assert "cannot reach InfluxDB" in stats.last_error
        assert backlog_rows(backlog) == 300
        assert not writer.flush(0.2)

        server.start()
        assert writer.flush(15)
        stats = writer.stats()
        assert (stats.written, stats.backlog, stats.dropped) == (300, 0, 0)
        assert stats.healthy
        assert backlog_rows(backlog) == 0
        assert seqs(server, "cold-start") == list(range(300))
    finally:
        writer.close()
        server.stop()
    assert TOKEN not in caplog.text


def test_server_stopped_and_restarted_mid_stream_loses_nothing(tmp_path: Path) -> None:
    server = Victoria(tmp_path / "vm").start()
    writer = make_writer(server.url, tmp_path / "backlog.db")
    writer.start()
    try:
        for i in range(0, 200, 10):
            writer.write(probes("mid-stream", i, i + 10))
            time.sleep(0.005)
        server.stop()
        for i in range(200, 400, 10):
            writer.write(probes("mid-stream", i, i + 10))
            time.sleep(0.005)
        assert wait_until(lambda: writer.stats().backlog > 0)
        server.start()
        for i in range(400, 600, 10):
            writer.write(probes("mid-stream", i, i + 10))
            time.sleep(0.005)
        assert writer.flush(15)
        assert writer.stats().written == 600
        assert seqs(server, "mid-stream") == list(range(600))
    finally:
        writer.close()
        server.stop()


def test_a_full_backlog_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    server = Victoria(tmp_path / "vm")
    writer = make_writer(server.url, tmp_path / "backlog.db", max_backlog_rows=50)
    writer.start()
    try:
        writer.write(probes("bounded", 0, 120))
        assert wait_until(lambda: writer.stats().pending == 0 and writer.stats().dropped == 70)
        stats = writer.stats()
        assert (stats.backlog, stats.dropped) == (50, 70)
        server.start()
        assert writer.flush(15)
        assert seqs(server, "bounded") == list(range(70, 120))
    finally:
        writer.close()
        server.stop()


def test_a_restarted_process_replays_the_backlog_left_on_disk(tmp_path: Path) -> None:
    server = Victoria(tmp_path / "vm")
    backlog = tmp_path / "backlog.db"
    first = make_writer(server.url, backlog, close_timeout_s=0.3)
    first.start()
    first.write(probes("restart", 0, 100))
    first.close()  # server down: close() parks what is still queued
    assert backlog_rows(backlog) == 100

    server.start()
    second = make_writer(server.url, backlog)
    try:
        second.start()
        assert second.stats().backlog == 100
        second.write(probes("restart", 100, 150))
        assert second.flush(15)
        assert seqs(server, "restart") == list(range(150))
        assert backlog_rows(backlog) == 0
    finally:
        second.close()
        server.stop()


_KILLED_WRITER = """
import os, signal, sys
from datetime import UTC, datetime, timedelta
from gateway.timeseries import Point
from gateway.timeseries.influx import InfluxWriter
t0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
writer = InfluxWriter(sys.argv[1], "token", "campus", "dormguard", sys.argv[2], batch_size=50,
                      flush_interval_s=0.05)
writer.start()
for start in range(0, 200, 20):
    writer.write([Point("probe", {"site": "north", "run": "killed"}, {"seq": i},
                        t0 + timedelta(seconds=i)) for i in range(start, start + 20)])
os.kill(os.getpid(), signal.SIGKILL)  # right after write() returned, as a kill -9 would
"""


def test_points_written_ahead_survive_a_kill_9_and_arrive_after_the_restart(
    tmp_path: Path, victoria: Victoria
) -> None:
    """write() returns only once the lines are on disk: a process killed at that moment (its
    sender thread had no time to send) leaves them in the backlog, and the next writer on the
    same file delivers every one, in order, none twice."""
    backlog = tmp_path / "backlog.db"
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, victoria.url, str(backlog)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    left = backlog_rows(backlog)
    assert left > 0, "the kill should have come before the sender sent everything"
    already = seqs(victoria, "killed")
    assert len(already) + left >= 200  # what was sent, and what is still on disk

    restarted = make_writer(victoria.url, backlog)
    try:
        restarted.start()
        assert restarted.flush(15)
        assert seqs(victoria, "killed") == list(range(200))
        assert backlog_rows(backlog) == 0
    finally:
        restarted.close()


class Recorder:
    """A stand-in HTTP endpoint: records /api/v2/write bodies, answers as scripted."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.fail_with: list[int] = []  # statuses for the next requests, before any success
        self.max_lines = 0  # answer 413 to bodies with more lines than this (0: no limit)
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                with recorder.lock:
                    if recorder.fail_with:
                        self._answer(recorder.fail_with.pop(0), "not now")
                        return
                    if recorder.max_lines and len(body.splitlines()) > recorder.max_lines:
                        self._answer(413, "request too large")
                        return
                    recorder.bodies.append(body)
                    recorder.headers.append(dict(self.headers))
                if "bad_measurement" in body:
                    self._answer(400, 'unable to parse "bad_measurement": invalid field format')
                    return
                self.send_response(204)
                self.end_headers()

            def _answer(self, status: int, message: str) -> None:
                data = json.dumps({"code": "invalid", "message": message}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def lines(self) -> list[str]:
        with self.lock:
            return [line for body in self.bodies for line in body.splitlines()]

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_after_5xx_answers_the_backlog_goes_out_oldest_first_then_live_data(
    tmp_path: Path,
) -> None:
    with Recorder() as recorder:
        recorder.fail_with = [503, 500, 429]
        writer = make_writer(recorder.url, tmp_path / "backlog.db", batch_size=7)
        writer.start()
        try:
            for i in range(0, 100, 5):
                writer.write(probes("order", i, i + 5))
                time.sleep(0.002)
            assert writer.flush(10)
            stats = writer.stats()
            assert (stats.written, stats.errors, stats.backlog) == (100, 3, 0)
        finally:
            writer.close()
        stamps = [int(line.rsplit(" ", 1)[1]) for line in recorder.lines()]
        assert stamps == sorted(stamps)
        assert len(stamps) == 100
        assert all(len(body.splitlines()) <= 7 for body in recorder.bodies)
        # The token travels in the Authorization header (and only there).
        assert all(h.get("Authorization") == f"Token {TOKEN}" for h in recorder.headers)
        assert all(TOKEN not in body for body in recorder.bodies)


def test_bad_data_is_rejected_once_counted_and_the_stream_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.timeseries")
    with Recorder() as recorder:
        writer = make_writer(recorder.url, tmp_path / "backlog.db", batch_size=5)
        writer.start()
        try:
            writer.write([Point("bad_measurement", {"site": "s"}, {"v": 1}, T0)])
            assert writer.flush(10)
            writer.write(probes("after-bad", 0, 5))
            assert writer.flush(10)
            stats = writer.stats()
            assert (stats.rejected, stats.written, stats.backlog) == (1, 5, 0)
            assert "400" in stats.last_error
            assert "invalid field format" in stats.last_error
        finally:
            writer.close()
        # Sent once (no retry), then the next batch.
        assert sum("bad_measurement" in body for body in recorder.bodies) == 1
        assert len(recorder.lines()) == 6
    rejected = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == 1
    assert "invalid field format" in rejected[0].getMessage()
    assert TOKEN not in caplog.text


def test_a_server_that_refuses_the_token_keeps_the_data_until_it_accepts(tmp_path: Path) -> None:
    """401/403/404 say "not now" (token, org or bucket), not "bad data": nothing is dropped."""
    with Recorder() as recorder:
        recorder.fail_with = [401, 403, 404]
        writer = make_writer(recorder.url, tmp_path / "backlog.db")
        writer.start()
        try:
            writer.write(probes("auth", 0, 20))
            assert writer.flush(10)
            stats = writer.stats()
            assert (stats.written, stats.rejected, stats.dropped, stats.errors) == (20, 0, 0, 3)
        finally:
            writer.close()
        assert len(recorder.lines()) == 20


def test_a_batch_refused_as_too_large_is_split_until_it_fits(tmp_path: Path) -> None:
    with Recorder() as recorder:
        recorder.max_lines = 3
        writer = make_writer(recorder.url, tmp_path / "backlog.db", batch_size=10)
        writer.start()
        try:
            writer.write(probes("split", 0, 10))
            assert writer.flush(10)
            stats = writer.stats()
            assert (stats.written, stats.rejected, stats.backlog) == (10, 0, 0)
        finally:
            writer.close()
        stamps = [int(line.rsplit(" ", 1)[1]) for line in recorder.lines()]
        assert len(stamps) == 10
        assert stamps == sorted(stamps)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (None, ConnectionError),
        (0, ConnectionError),
        (500, ConnectionError),
        (503, ConnectionError),
        (429, ConnectionError),
        (401, ConnectionError),
        (404, ConnectionError),
        (400, ValueError),
        (422, ValueError),
        (413, BatchTooLargeError),
    ],
)
def test_vendor_statuses_become_connection_or_value_errors(
    status: int | None, kind: type[Exception]
) -> None:
    error = _translate_status(status, "message")
    assert type(error) is kind
