"""The probes behind recent face decisions, kept so a guard can report a wrong match.

Each face-decided access event the gate publishes leaves its probe encoding here, keyed by the
event id, sealed under the gallery key (contracts/gallery_crypto.py ``seal_probe``, bound to the
event id). The store is bounded in time (``probes.retention_days``) and count
(``probes.max_count``, oldest dropped first). When the gateway asks for one (the signed
``send_probe`` command) it is handed over sealed and deleted here (docs/decisions/0014).
Nothing else reads it: the gate never decides with it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import numpy.typing as npt

from contracts.gallery_crypto import seal_probe

log = logging.getLogger(__name__)


class ProbeStore:
    """A SQLite file of sealed probe encodings by event id, with retention and a count cap."""

    def __init__(self, path: Path, key: bytes, *, retention_s: float, max_count: int) -> None:
        self.path = path
        self._key = key
        self._retention_s = retention_s
        self._max_count = max_count
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        """Open (or create) the store file, mode 0600."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path.touch(mode=0o600, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS probe (event_id TEXT PRIMARY KEY, at REAL NOT NULL,"
            " sealed BLOB NOT NULL) WITHOUT ROWID"
        )
        conn.execute("CREATE INDEX IF NOT EXISTS probe_at ON probe (at)")
        self._conn = conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def keep(self, event_id: str, encoding: npt.ArrayLike, now: float) -> None:
        """Seal and keep the probe of one access event (``now``: epoch seconds)."""
        sealed = seal_probe(encoding, event_id, self._key)
        with self._lock:
            conn = self._connection()
            conn.execute(
                "INSERT OR REPLACE INTO probe (event_id, at, sealed) VALUES (?, ?, ?)",
                (event_id, now, sealed),
            )
            self._prune(conn, now)

    def take(self, event_id: str, now: float) -> bytes | None:
        """The sealed probe of an event, removed from the store; None when it is not kept."""
        with self._lock:
            conn = self._connection()
            self._prune(conn, now)
            row = conn.execute(
                "SELECT sealed FROM probe WHERE event_id = ?", (event_id,)
            ).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM probe WHERE event_id = ?", (event_id,))
            return bytes(row[0])

    def __len__(self) -> int:
        with self._lock:
            return int(self._connection().execute("SELECT COUNT(*) FROM probe").fetchone()[0])

    def _prune(self, conn: sqlite3.Connection, now: float) -> None:
        conn.execute("DELETE FROM probe WHERE at < ?", (now - self._retention_s,))
        conn.execute(
            "DELETE FROM probe WHERE event_id IN (SELECT event_id FROM probe"
            " ORDER BY at DESC LIMIT -1 OFFSET ?)",
            (self._max_count,),
        )

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"probe store {self.path} is not open")
        return self._conn
