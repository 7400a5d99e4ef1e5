"""Durable, ordered outbox for MQTT messages at the edge.

Every message is committed to a local SQLite file before it is handed to the broker, and is
removed only once the broker has acknowledged it, so a broker outage, a power cut or kill -9
loses nothing. Messages are replayed in sequence order; the sequence never reuses a number.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    topic      TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    qos        INTEGER NOT NULL,
    retain     INTEGER NOT NULL,
    created_at REAL    NOT NULL
)
"""

_CORRUPTION_CODES = frozenset({sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT})


@dataclass(frozen=True)
class OutboxItem:
    """One stored message, in the order it was appended."""

    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created_at: float


class OutboxFullError(RuntimeError):
    """The disk is too full to store a message safely; nothing was stored."""


class OutboxCorruptError(RuntimeError):
    """The outbox file exists but is not a usable SQLite database."""


def _disk_free(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def _fsync_dir(folder: Path) -> None:
    # Makes the directory entry of a newly created database file survive a power cut.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Outbox:
    """SQLite-backed FIFO of MQTT messages, safe to use from several threads."""

    def __init__(
        self,
        path: Path,
        *,
        min_free_bytes: int = 50 * 1024 * 1024,
        disk_free: Callable[[Path], int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.min_free_bytes = min_free_bytes
        self._disk_free = disk_free or _disk_free
        # Wall-clock time: created_at must stay meaningful across restarts.
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        """Create or open the database file; raise OutboxCorruptError if it is not SQLite."""
        with self._lock:
            if self._conn is not None:
                return
            folder = self.path.parent
            folder.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            try:
                conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            except sqlite3.Error as exc:
                raise RuntimeError(f"cannot open outbox database {self.path}: {exc}") from exc
            try:
                problem = self._prepare(conn)
                depth = int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
            except sqlite3.Error as exc:
                conn.close()
                if getattr(exc, "sqlite_errorcode", None) in _CORRUPTION_CODES:
                    raise self._corrupt(str(exc)) from exc
                raise RuntimeError(f"cannot open outbox database {self.path}: {exc}") from exc
            if problem is not None:
                conn.close()
                raise self._corrupt(problem)
            if created:
                _fsync_dir(folder)
            self._conn = conn
        log.info("outbox opened path=%s pending=%s", self.path, depth)

    def _corrupt(self, detail: str) -> OutboxCorruptError:
        return OutboxCorruptError(
            f"outbox file {self.path} is not a valid SQLite database ({detail}); move it aside "
            "to start a new outbox, and keep it: it may hold unsent events"
        )

    def _prepare(self, conn: sqlite3.Connection) -> str | None:
        """Set durability pragmas and the schema; return a corruption report or None."""
        # WAL: appends do not block the reader on the network thread, and a commit is one
        # sequential write. synchronous=FULL fsyncs the WAL on every commit; NORMAL would
        # survive kill -9 but could lose the last commits on a power cut.
        mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
        if mode != "wal":
            # Rollback journal with synchronous=FULL is still durable, only slower.
            log.warning("outbox path=%s journal_mode=%s (WAL unavailable)", self.path, mode)
        conn.execute("PRAGMA synchronous=FULL")
        quick_check = str(conn.execute("PRAGMA quick_check").fetchone()[0])
        if quick_check != "ok":
            return f"quick_check: {quick_check}"
        conn.execute(_SCHEMA)
        return None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"outbox {self.path} is not open")
        return self._conn

    def append(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        """Store one message durably and return its sequence number."""
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos}")
        if not topic:
            raise ValueError("topic must not be empty")
        payload = bytes(payload)
        self._check_free_space(len(payload))
        created_at = self._clock()
        with self._lock:
            conn = self._connection()
            # Autocommit mode: the INSERT is committed (and fsynced) when execute returns.
            return self._insert(conn, None, topic, payload, qos, retain, created_at)

    def append_numbered(
        self, topic: str, build: Callable[[int], bytes], *, qos: int = 1, retain: bool = False
    ) -> int:
        """Store a message whose payload carries its own sequence number; returns that number.

        `build(seq)` is called under the outbox lock with the number the row will get, so the
        payload can say where it stands in the gate's stream (gaps are then detectable).
        """
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos}")
        if not topic:
            raise ValueError("topic must not be empty")
        self._check_free_space(0)
        created_at = self._clock()
        with self._lock:
            conn = self._connection()
            row = conn.execute(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0)"
            ).fetchone()
            seq = int(row[0]) + 1
            payload = bytes(build(seq))
            return self._insert(conn, seq, topic, payload, qos, retain, created_at)

    def _insert(
        self,
        conn: sqlite3.Connection,
        seq: int | None,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        created_at: float,
    ) -> int:
        """One committed INSERT (caller holds the lock); SQLITE_FULL becomes OutboxFullError."""
        try:
            cur = conn.execute(
                "INSERT INTO outbox (seq, topic, payload, qos, retain, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (seq, topic, payload, qos, int(retain), created_at),
            )
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.rollback()
            if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
                raise OutboxFullError(
                    f"outbox {self.path}: SQLite reports the database or disk is full ({exc})"
                ) from exc
            raise
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def _check_free_space(self, incoming: int) -> None:
        free = self._disk_free(self.path.parent)
        if free - incoming < self.min_free_bytes:
            raise OutboxFullError(
                f"outbox {self.path}: {free} bytes free on disk, "
                f"below the threshold of {self.min_free_bytes} bytes"
            )

    def pending(self, limit: int = 100, *, after_seq: int = 0) -> list[OutboxItem]:
        """Up to `limit` stored messages with seq greater than `after_seq`, oldest first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        with self._lock:
            rows = (
                self._connection()
                .execute(
                    "SELECT seq, topic, payload, qos, retain, created_at FROM outbox "
                    "WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after_seq, limit),
                )
                .fetchall()
            )
        return [
            OutboxItem(
                seq=int(seq),
                topic=str(topic),
                payload=bytes(payload),
                qos=int(qos),
                retain=bool(retain),
                created_at=float(created_at),
            )
            for seq, topic, payload, qos, retain, created_at in rows
        ]

    def remove(self, seq: int) -> None:
        """Delete one message once the broker has acknowledged it; unknown seqs are ignored."""
        with self._lock:
            self._connection().execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def depth(self) -> int:
        """Number of stored messages."""
        with self._lock:
            row = self._connection().execute("SELECT count(*) FROM outbox").fetchone()
        return int(row[0])

    def oldest_age(self, now: float) -> float | None:
        """Seconds the oldest stored message has waited at wall-clock `now`, or None if empty."""
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT created_at FROM outbox ORDER BY seq LIMIT 1")
                .fetchone()
            )
        if row is None:
            return None
        return max(0.0, now - float(row[0]))

    def close(self) -> None:
        """Close the database; stored messages stay on disk for the next open."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                # Fold the WAL back into the main file so the folder holds one file at rest.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            log.info("outbox closed path=%s", self.path)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
