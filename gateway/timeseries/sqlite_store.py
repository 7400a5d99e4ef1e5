"""The embedded time-series store: SQLite tables written by one background thread.

Layout (two tables):

``series`` maps a series identity -- measurement, tags (canonical JSON, keys sorted), series key
('' when none) and field -- to a small integer id. It is an ordinary rowid table on purpose: its
key *is* an integer, which is exactly what a rowid table stores as its B-tree key, so
``WITHOUT ROWID`` would buy nothing there.

``samples`` holds the numbers, ``PRIMARY KEY (series_id, ts) WITHOUT ROWID``: one B-tree ordered
by series then time, so "this series between two times" is a single range scan and the row holds
no separate rowid. An integer series id instead of the identity text keeps each sample row at a
few bytes (the identity would repeat measurement, tags and field in every row and key).
``ts`` is integer microseconds since the Unix epoch (UTC), the resolution of ``datetime``.
A second sample for the same series and microsecond replaces the first, as in InfluxDB, which
also makes at-least-once redelivery of the same event harmless.

With ``write_ahead`` (the default), ``write()`` inserts the points in one transaction of its own
(WAL, ``synchronous=NORMAL``: a committed transaction survives a killed process) before it
returns, so the ingest acknowledges a message only once its samples are in the file and a
gateway killed with ``kill -9`` loses none. When SQLite reports a transient problem (locked,
disk full), or while it still does, ``write()`` hands the points to a bounded in-memory queue
instead, and the background thread retries them until they go in. Without ``write_ahead``,
``write()`` only appends to that queue (a kill loses what it holds, about ``flush_interval_s``
of points). The thread also prunes samples older than the retention period every
``prune_interval_s``, a few hundred series per transaction, so a writer never waits long for
it. Queries use their own short-lived connections, so the API never waits for the writer.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.timeseries.background import BackgroundWriter
from gateway.timeseries.base import Point

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS series (
        id          INTEGER PRIMARY KEY,
        measurement TEXT NOT NULL,
        tags        TEXT NOT NULL,
        series_key  TEXT NOT NULL,
        field       TEXT NOT NULL,
        UNIQUE (measurement, field, series_key, tags)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS samples (
        series_id INTEGER NOT NULL,
        ts        INTEGER NOT NULL,
        value     REAL    NOT NULL,
        PRIMARY KEY (series_id, ts)
    ) WITHOUT ROWID
    """,
)

_SeriesBase = tuple[str, tuple[tuple[str, str], ...], str]
_PRUNE_SERIES_PER_TRANSACTION = 500
_DIRECT_BUSY_S = 1.0


def to_micros(ts: datetime) -> int:
    """Integer microseconds since the epoch (exact, no float rounding)."""
    return (ts - _EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    """The UTC datetime of integer microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=us)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SqliteSeriesStore(BackgroundWriter):
    """Embedded time-series store; implements TimeSeriesWriter and TimeSeriesReader."""

    def __init__(
        self,
        path: Path | str,
        retention: timedelta = timedelta(days=30),
        *,
        queue_size: int = 200_000,
        batch_size: int = 5_000,
        flush_interval_s: float = 0.5,
        prune_interval_s: float = 300.0,
        retry_backoff_s: float = 1.0,
        close_timeout_s: float = 10.0,
        clock: Callable[[], datetime] = _utc_now,
        write_ahead: bool = True,
    ) -> None:
        if retention <= timedelta(0):
            raise ValueError("retention must be positive")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        super().__init__("time-series (sqlite)", queue_size, batch_size, close_timeout_s)
        self.path = Path(path)
        self.retention = retention
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._prune_interval_s = prune_interval_s
        self._retry_backoff_s = retry_backoff_s
        self._clock = clock
        self.write_ahead = write_ahead
        self._conn: sqlite3.Connection | None = None
        self._direct: sqlite3.Connection | None = None  # write()'s own, with write_ahead
        # One writer at a time: the inserts share the series-id cache, and a writer that
        # waited on SQLite's lock would only wait longer.
        self._store_lock = threading.Lock()
        self._series: dict[_SeriesBase, dict[str, int]] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Create the file and tables, then start the writer thread."""
        self._refuse_restart()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        with conn:
            for statement in _SCHEMA:
                conn.execute(statement)
        self._conn = conn
        if self.write_ahead:
            # The ingest waits on this one: a short wait for SQLite's lock, then the queue.
            self._direct = self._connect(busy_s=_DIRECT_BUSY_S)
        self._start_thread(self._run, "series-sqlite")

    def write(self, points: Sequence[Point]) -> None:
        """With ``write_ahead`` (once started), store the points before returning; else, and
        while SQLite fails, queue them for the background thread (never blocks then)."""
        direct = self._direct
        if direct is None or not points or self._failing:
            super().write(points)
            return
        batch = list(points)
        if self._attempt(direct, batch) is False:  # transient: the thread retries from the queue
            super().write(batch)

    def _after_close(self) -> None:
        if self._direct is not None:
            self._direct.close()
            self._direct = None
        left = self._queue.depth
        if left:
            self._queue.count_dropped(left)
            log.error("time-series (sqlite) closed with %d points not stored", left)

    # -- reading -----------------------------------------------------------------------------

    def query(
        self,
        measurement: str,
        field: str,
        tags: Mapping[str, str],
        start: datetime,
        end: datetime,
        limit: int,
        *,
        series_key: str | None = None,
    ) -> list[tuple[datetime, float]]:
        """The latest ``limit`` samples in [start, end), oldest first, over matching series."""
        if limit <= 0:
            return []
        conn = self._connect()
        try:
            sql = "SELECT id, tags FROM series WHERE measurement = ? AND field = ?"
            args: list[str] = [measurement, field]
            if series_key is not None:
                sql += " AND series_key = ?"
                args.append(series_key)
            wanted = dict(tags)
            ids = [
                series_id
                for series_id, tags_json in conn.execute(sql, args)
                if _includes(json.loads(tags_json), wanted)
            ]
            if not ids:
                return []
            rows = conn.execute(
                "SELECT ts, value FROM samples"
                " WHERE series_id IN (SELECT value FROM json_each(?)) AND ts >= ? AND ts < ?"
                " ORDER BY ts DESC, series_id LIMIT ?",
                (json.dumps(ids), to_micros(start), to_micros(end), limit),
            ).fetchall()
        finally:
            conn.close()
        return [(from_micros(ts), float(value)) for ts, value in reversed(rows)]

    def prune(self, now: datetime | None = None) -> int:
        """Delete samples older than the retention period; returns how many went."""
        conn = self._connect()
        try:
            return self._prune(conn, now or self._clock())
        finally:
            conn.close()

    # -- the writer thread -------------------------------------------------------------------

    def _connect(self, busy_s: float = 5.0) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=busy_s, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(busy_s * 1000)}")
        return conn

    def _prune(self, conn: sqlite3.Connection, now: datetime) -> int:
        cutoff = to_micros(now - self.retention)
        removed = 0
        # Per series, so each delete is a range scan of the (series_id, ts) key; a few hundred
        # series per transaction, so a write() between two of them waits for one only.
        ids = [row[0] for row in conn.execute("SELECT id FROM series")]
        for start in range(0, len(ids), _PRUNE_SERIES_PER_TRANSACTION):
            with self._store_lock, conn:
                for series_id in ids[start : start + _PRUNE_SERIES_PER_TRANSACTION]:
                    cur = conn.execute(
                        "DELETE FROM samples WHERE series_id = ? AND ts < ?", (series_id, cutoff)
                    )
                    removed += cur.rowcount
        if removed:
            log.info(
                "time-series (sqlite) pruned %d samples older than %s",
                removed,
                from_micros(cutoff).isoformat(),
            )
        return removed

    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        next_prune = time.monotonic()
        try:
            while True:
                # First thing after start (data may have aged while the gateway was down),
                # then every prune_interval_s.
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + self._prune_interval_s
                    self._prune_safely(conn)
                batch = self._queue.take(self._batch_size, self._flush_interval_s)
                if batch:
                    self._store_with_retry(conn, batch)
                    self._queue.done(len(batch))
                with self._progress:
                    self._progress.notify_all()
                if self._stop.is_set() and not batch:
                    return
        finally:
            conn.close()
            self._conn = None

    def _prune_safely(self, conn: sqlite3.Connection) -> None:
        try:
            self._prune(conn, self._clock())
        except sqlite3.Error as exc:
            self._record_error(f"prune failed: {exc}")
            log.warning("time-series (sqlite) prune failed: %s", exc)

    def _store_with_retry(self, conn: sqlite3.Connection, batch: list[Point]) -> None:
        while True:
            stored = self._attempt(conn, batch)
            if stored is None:
                return
            if stored:
                if self._failing:
                    log.info("time-series (sqlite) writes succeed again")
                self._failing = False
                return
            if self._stop.wait(self._retry_backoff_s):
                self._queue.count_dropped(len(batch))
                log.error("time-series (sqlite) stopping: %d points not stored", len(batch))
                return

    def _attempt(self, conn: sqlite3.Connection, batch: list[Point]) -> bool | None:
        """Store one batch, one writer at a time: True stored; False a transient failure
        (locked, busy, disk full, I/O: the data is fine, try again later); None rejected."""
        with self._store_lock:
            try:
                self._store(conn, batch)
            except sqlite3.OperationalError as exc:
                self._note_failure(exc)
                return False
            except (sqlite3.Error, ValueError, TypeError) as exc:
                self._reject(batch, exc)
                return None
            self._written += len(batch)
            return True

    def _note_failure(self, exc: sqlite3.OperationalError) -> None:
        if not self._failing:
            log.warning("time-series (sqlite) write failed, will retry: %s", exc)
        self._failing = True
        self._record_error(str(exc))

    def _reject(self, batch: list[Point], exc: Exception) -> None:
        self._rejected += len(batch)
        self._record_error(str(exc))
        log.error("time-series (sqlite) rejected a batch of %d: %s", len(batch), exc)

    def _store(self, conn: sqlite3.Connection, batch: list[Point]) -> None:
        try:
            self._insert(conn, batch)
        except BaseException:
            # The transaction rolled back, and with it any series rows it created.
            self._series.clear()
            raise

    def _insert(self, conn: sqlite3.Connection, batch: list[Point]) -> None:
        rows: list[tuple[int, int, float]] = []
        with conn:
            for point in batch:
                ids = self._series_ids(point)
                ts = to_micros(point.ts)
                for name, value in point.fields.items():
                    series_id = ids.get(name)
                    if series_id is None:
                        series_id = self._new_series(conn, point, name)
                        ids[name] = series_id
                    rows.append((series_id, ts, float(value)))
            conn.executemany(
                "INSERT OR REPLACE INTO samples (series_id, ts, value) VALUES (?, ?, ?)", rows
            )

    def _series_ids(self, point: Point) -> dict[str, int]:
        base = (point.measurement, tuple(sorted(point.tags.items())), point.series_key or "")
        ids = self._series.get(base)
        if ids is None:
            ids = self._series[base] = {}
        return ids

    def _new_series(self, conn: sqlite3.Connection, point: Point, field: str) -> int:
        identity = (
            point.measurement,
            json.dumps(dict(sorted(point.tags.items())), separators=(",", ":")),
            point.series_key or "",
            field,
        )
        conn.execute(
            "INSERT OR IGNORE INTO series (measurement, tags, series_key, field)"
            " VALUES (?, ?, ?, ?)",
            identity,
        )
        row = conn.execute(
            "SELECT id FROM series WHERE measurement = ? AND tags = ? AND series_key = ?"
            " AND field = ?",
            identity,
        ).fetchone()
        return int(row[0])


def _includes(tags: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(tags.get(key) == value for key, value in wanted.items())
