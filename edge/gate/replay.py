"""Freshness of signed commands: a maximum age, a bound on clock skew, and nonces remembered.

A valid signature proves the gateway made a command, not that it is meant now: a recorded unlock
replayed a minute later is still validly signed. `freshness` (pure) refuses what is too old or
dated in the future; `NonceLedger` remembers every nonce until its command would be too old
anyway, in a small SQLite file, so a replay is refused across a gate restart too.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

Freshness = Literal["fresh", "stale", "future_dated"]


@dataclass(frozen=True, slots=True)
class FreshnessRule:
    """How old a command may be, and how far ahead of the gate's clock (skew) it may be dated."""

    max_age_s: float
    max_future_s: float

    @property
    def remember_s(self) -> float:
        """How long a nonce must be remembered: past that the age check refuses it anyway."""
        return self.max_age_s + self.max_future_s


def freshness(sent_at: datetime, now: datetime, rule: FreshnessRule) -> tuple[Freshness, float]:
    """Whether a command sent at ``sent_at`` may be acted on at ``now``; also its age in s."""
    age_s = (now - sent_at).total_seconds()
    if age_s > rule.max_age_s:
        return "stale", age_s
    if -age_s > rule.max_future_s:
        return "future_dated", age_s
    return "fresh", age_s


class NonceLedger:
    """Nonces of accepted commands, each kept until its expiry (epoch seconds)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        """Open (or create) the ledger file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS nonce (nonce TEXT PRIMARY KEY, expires REAL NOT NULL)"
            " WITHOUT ROWID"
        )
        self._conn = conn

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def claim(self, nonce: str, expires: float, now: float) -> bool:
        """Record a nonce; False when it was already used (a replay). Expired ones are forgotten.

        The nonce is stored (and synced) before the command runs, so a crash right after can
        only refuse a retry of the same command, never accept a replay.
        """
        with self._lock:
            conn = self._connection()
            conn.execute("DELETE FROM nonce WHERE expires < ?", (now,))
            try:
                conn.execute("INSERT INTO nonce (nonce, expires) VALUES (?, ?)", (nonce, expires))
            except sqlite3.IntegrityError:
                return False
            return True

    def __len__(self) -> int:
        with self._lock:
            row = self._connection().execute("SELECT COUNT(*) FROM nonce").fetchone()
            return int(row[0])

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"nonce ledger {self.path} is not open")
        return self._conn
