"""InfluxDB 2.x writer with an on-disk backlog (the only module that imports influxdb_client).

Data path, ``write_ahead`` (the default): ``write()`` turns the points into line protocol and
appends them to the backlog file (a SQLite table in arrival order) before it returns, so a
gateway killed with ``kill -9`` right after its commit keeps them on disk and replays them when
it starts again; a background thread sends the backlog oldest-first and deletes what InfluxDB
accepted. (A kill between a send and its delete sends those lines twice: InfluxDB overwrites
a point with the same series and time; VictoriaMetrics needs ``-dedup.minScrapeInterval``.)
Without ``write_ahead``, ``write()`` appends to a bounded in-memory queue that a kill loses, and
the thread parks batches in the backlog only while InfluxDB is unreachable. Either way the
thread sends with a SYNCHRONOUS write API, so this module alone decides about retries:

* reachable and accepted -> counted as written;
* unreachable, timeout, 5xx, 429, or a server that will not take writes yet (401/403/404:
  wrong token, org or bucket -- the data is fine) -> ``ConnectionError``: the batch is parked
  in the backlog (a SQLite file, rows in arrival order) and the writer backs off exponentially;
* 400/422 and other 4xx ("bad data") -> ``ValueError``: the reason is logged and the batch is
  dropped and counted as rejected (InfluxDB has already stored the valid lines of a partial
  write). 413 (too large) splits the batch in halves first.

While the backlog holds rows, new data is appended behind it and the backlog is replayed
oldest-first, so the sink sees one ordered stream. The backlog keeps at most
``max_backlog_rows`` lines; beyond that the oldest are deleted and counted as dropped.
``close()`` parks whatever is still queued in the backlog, so a restart replays it.
The token is never logged or shown in ``repr``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import urllib3.exceptions
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write.point import Point as _UntypedInfluxPoint
from influxdb_client.client.write_api import SYNCHRONOUS, WriteApi
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from gateway.timeseries.background import BackgroundWriter
from gateway.timeseries.base import Point, WriterStats

log = logging.getLogger(__name__)

_BACKLOG_SCHEMA = "CREATE TABLE IF NOT EXISTS backlog (seq INTEGER PRIMARY KEY, line TEXT NOT NULL)"
# influxdb_client's Point and close() carry no annotations; call them through Any.
_InfluxPoint: Any = _UntypedInfluxPoint
_NANOSECONDS = cast(WritePrecision, WritePrecision.NS)
# Statuses that say "not now" rather than "this data is wrong": keep the data and retry.
_RETRY_STATUSES = frozenset({401, 403, 404, 408, 425, 429})


class BatchTooLargeError(ValueError):
    """The server refused a batch as too large (413); smaller batches may pass."""


def line_protocol(point: Point) -> str:
    """One point as an InfluxDB line (nanosecond timestamp); the series key is not written."""
    record = _InfluxPoint(point.measurement)
    for key, tag in point.tags.items():
        record.tag(key, tag)
    for name, value in point.fields.items():
        record.field(name, value)
    record.time(point.ts, _NANOSECONDS)
    return str(record.to_line_protocol())


class InfluxWriter(BackgroundWriter):
    """TimeSeriesWriter for InfluxDB 2.x (``/api/v2/write``) with a bounded on-disk backlog."""

    def __init__(
        self,
        url: str,
        token: str,
        org: str,
        bucket: str,
        backlog_path: Path | str,
        max_backlog_rows: int = 2_000_000,
        batch_size: int = 5_000,
        flush_interval_s: float = 1.0,
        timeout_s: float = 10.0,
        *,
        queue_size: int = 100_000,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        close_timeout_s: float = 10.0,
        gzip: bool = False,
        write_ahead: bool = True,
    ) -> None:
        if max_backlog_rows < 1 or batch_size < 1:
            raise ValueError("max_backlog_rows and batch_size must be at least 1")
        super().__init__("time-series (influx)", queue_size, batch_size, close_timeout_s)
        self.url = url
        self.org = org
        self.bucket = bucket
        self.backlog_path = Path(backlog_path)
        self.max_backlog_rows = max_backlog_rows
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.timeout_s = timeout_s
        self._token = token
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._gzip = gzip
        self.write_ahead = write_ahead
        self._backlog_lock = threading.Lock()  # the ingest thread parks, the sender sends
        self._spooled = threading.Event()
        self._client: InfluxDBClient | None = None
        self._write_api: WriteApi | None = None
        self._backlog: sqlite3.Connection | None = None
        self._backlog_rows = 0
        self._backlog_dropped = 0
        self._backlog_overflowing = False
        self._backoff_s = min_backoff_s
        self._next_attempt = 0.0

    def __repr__(self) -> str:
        return f"InfluxWriter(url={self.url!r}, org={self.org!r}, bucket={self.bucket!r})"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the backlog file and the client, then start the sender thread."""
        self._refuse_restart()
        self._backlog = self._open_backlog()
        self._backlog_rows = int(
            self._backlog.execute("SELECT COUNT(*) FROM backlog").fetchone()[0]
        )
        if self._backlog_rows:
            log.info("InfluxDB backlog holds %d lines from before; replaying", self._backlog_rows)
        self._client = InfluxDBClient(
            url=self.url,
            token=self._token,
            org=self.org,
            timeout=max(1, int(self.timeout_s * 1000)),
            enable_gzip=self._gzip,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._start_thread(self._run, "series-influx")

    def _delivered(self) -> bool:
        return self._queue.pending == 0 and self._backlog_rows == 0

    def _after_close(self) -> None:
        if self._client is not None:
            client: Any = self._client
            client.close()
            self._client = None
            self._write_api = None

    def stats(self) -> WriterStats:
        """Current counters."""
        return self._writer_stats(
            backlog=self._backlog_rows,
            dropped=self._backlog_dropped,
            healthy=not self._backlog_overflowing,
        )

    def write(self, points: Sequence[Point]) -> None:
        """With ``write_ahead`` (once started), append the points to the backlog file before
        returning; else queue them in memory for the sender thread."""
        if not self.write_ahead or self._backlog is None or not points:
            super().write(points)
            return
        self._park([line_protocol(p) for p in points])
        self._spooled.set()

    def close(self) -> None:
        """Deliver what can be delivered within close_timeout_s; the rest stays on disk."""
        self._spooled.set()
        super().close()

    # -- the sender thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                stopping = self._stop.is_set()
                try:
                    if self.write_ahead:
                        self._spool_step(stopping)
                    elif self._backlog_rows or time.monotonic() < self._next_attempt or stopping:
                        self._backlog_step(stopping)
                    else:
                        self._live_step()
                except Exception as exc:
                    # A bug or a broken backlog file must not end the thread: log, pause, go on.
                    self._record_error(f"sender step failed: {type(exc).__name__}: {exc}")
                    log.exception("InfluxDB sender step failed")
                    self._stop.wait(self._max_backoff_s)
                with self._progress:
                    self._progress.notify_all()
                if stopping and self._queue.pending == 0:
                    return
        finally:
            if self._backlog is not None:
                self._backlog.close()
                self._backlog = None

    def _live_step(self) -> None:
        """No backlog and no back-off: send the next batch straight away."""
        batch = self._queue.take(self.batch_size, self.flush_interval_s)
        if not batch:
            return
        try:
            lines = [line_protocol(p) for p in batch]
            try:
                self._deliver(lines)
            except ConnectionError:
                self._park(lines)
        finally:
            self._queue.done(len(batch))

    def _spool_step(self, stopping: bool) -> None:
        """Write-ahead: wait for parked lines (or the back-off), then send the oldest batch."""
        batch = self._queue.take(10_000, 0.0)  # points written before start()
        if batch:
            try:
                self._park([line_protocol(p) for p in batch])
            finally:
                self._queue.done(len(batch))
        if stopping:
            return
        now = time.monotonic()
        if now < self._next_attempt:
            self._stop.wait(min(self._next_attempt - now, self.flush_interval_s))
            return
        if not self._backlog_rows:
            self._spooled.wait(self.flush_interval_s)
            self._spooled.clear()
        self._send_backlog()

    def _backlog_step(self, stopping: bool) -> None:
        """Live data goes behind the backlog; the backlog is sent oldest-first when allowed."""
        now = time.monotonic()
        in_backoff = now < self._next_attempt
        wait = 0.0
        if not stopping and in_backoff:
            wait = min(self._next_attempt - now, self.flush_interval_s)
        batch = self._queue.take(max(self.batch_size, 10_000), wait)
        if batch:
            try:
                self._park([line_protocol(p) for p in batch])
            finally:
                self._queue.done(len(batch))
        if stopping or in_backoff or not self._backlog_rows:
            return
        self._send_backlog()

    def _send_backlog(self) -> None:
        """The oldest batch of the backlog to InfluxDB, deleted once it is accepted."""
        assert self._backlog is not None
        with self._backlog_lock:
            rows = self._backlog.execute(
                "SELECT seq, line FROM backlog ORDER BY seq LIMIT ?", (self.batch_size,)
            ).fetchall()
            if not rows:
                self._backlog_rows = 0
                return
        try:
            self._deliver([line for _, line in rows])
        except ConnectionError:
            return
        with self._backlog_lock, self._backlog:
            self._backlog.execute("DELETE FROM backlog WHERE seq <= ?", (rows[-1][0],))
            self._backlog_rows = max(0, self._backlog_rows - len(rows))
            replayed = not self._backlog_rows
        if replayed and not self.write_ahead:
            log.info("InfluxDB backlog replayed")

    def _deliver(self, lines: list[str]) -> None:
        """Send lines; bad data is rejected here, ConnectionError means keep them for later."""
        try:
            self._send(lines)
        except BatchTooLargeError as exc:
            if len(lines) == 1:
                self._reject(lines, exc)
                return
            middle = len(lines) // 2
            self._deliver(lines[:middle])
            self._deliver(lines[middle:])
            return
        except ValueError as exc:
            self._reject(lines, exc)
            return
        except ConnectionError as exc:
            self._record_error(str(exc))
            if not self._failing:
                log.warning("InfluxDB write failed, keeping data in the backlog: %s", exc)
            self._failing = True
            self._next_attempt = time.monotonic() + self._backoff_s
            self._backoff_s = min(self._backoff_s * 2, self._max_backoff_s)
            raise
        if self._failing:
            log.info("InfluxDB accepts writes again")
        self._failing = False
        self._backlog_overflowing = False
        self._backoff_s = self._min_backoff_s
        self._next_attempt = 0.0
        self._written += len(lines)

    def _reject(self, lines: list[str], exc: ValueError) -> None:
        self._rejected += len(lines)
        self._record_error(str(exc))
        log.error("InfluxDB rejected %d lines as bad data, dropped: %s", len(lines), exc)

    def _send(self, lines: list[str]) -> None:
        """One write request; vendor errors become ConnectionError or ValueError."""
        assert self._write_api is not None
        try:
            self._write_api.write(
                bucket=self.bucket, org=self.org, record=lines, write_precision=_NANOSECONDS
            )
        except ApiException as exc:
            raise _translate_status(exc.status, _server_message(exc)) from None
        except InfluxDBError as exc:
            raise ConnectionError(f"InfluxDB error: {_server_message(exc)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ConnectionError(
                f"cannot reach InfluxDB at {self.url}: {type(exc).__name__}"
            ) from None
        except Exception as exc:
            # Unknown client failure: keep the data (bounded backlog) rather than lose it.
            raise ConnectionError(
                f"InfluxDB client failed: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None

    # -- the backlog file --------------------------------------------------------------------

    def _open_backlog(self) -> sqlite3.Connection:
        self.backlog_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return _connect_backlog(self.backlog_path)
        except sqlite3.DatabaseError as exc:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            aside = self.backlog_path.with_name(f"{self.backlog_path.name}.corrupt-{stamp}")
            log.error(
                "InfluxDB backlog %s is unreadable (%s); moved to %s, starting empty",
                self.backlog_path,
                exc,
                aside,
            )
            self.backlog_path.rename(aside)
            return _connect_backlog(self.backlog_path)

    def _park(self, lines: list[str]) -> None:
        """Append lines to the backlog, then trim the oldest beyond max_backlog_rows."""
        with self._backlog_lock:
            self._park_locked(lines)

    def _park_locked(self, lines: list[str]) -> None:
        assert self._backlog is not None
        try:
            with self._backlog:
                self._backlog.executemany(
                    "INSERT INTO backlog (line) VALUES (?)", ((line,) for line in lines)
                )
                excess = self._backlog_rows + len(lines) - self.max_backlog_rows
                if excess > 0:
                    self._backlog.execute(
                        "DELETE FROM backlog WHERE seq IN"
                        " (SELECT seq FROM backlog ORDER BY seq LIMIT ?)",
                        (excess,),
                    )
        except sqlite3.Error as exc:
            self._queue.count_dropped(len(lines))
            self._record_error(f"backlog write failed: {exc}")
            log.error("InfluxDB backlog write failed, %d lines lost: %s", len(lines), exc)
            return
        self._backlog_rows += len(lines)
        if excess > 0:
            self._backlog_rows -= excess
            self._backlog_dropped += excess
            if not self._backlog_overflowing:
                log.warning(
                    "InfluxDB backlog full (%d lines): dropping the oldest", self.max_backlog_rows
                )
            self._backlog_overflowing = True


def _connect_backlog(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=5.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    with conn:
        conn.execute(_BACKLOG_SCHEMA)
    conn.execute("SELECT COUNT(*) FROM backlog").fetchone()
    return conn


def _server_message(exc: InfluxDBError) -> str:
    # The server's own message (never request headers, which carry the token).
    message = getattr(exc, "message", None) or getattr(exc, "reason", None) or "no message"
    return str(message)[:300]


def _translate_status(status: int | None, message: str) -> ConnectionError | ValueError:
    if status == 413:
        return BatchTooLargeError(f"InfluxDB refused the batch as too large: {message}")
    if status is None or status == 0 or status >= 500 or status in _RETRY_STATUSES:
        return ConnectionError(f"InfluxDB answered {status}: {message}")
    return ValueError(f"InfluxDB rejected the data ({status}): {message}")
