"""The facilities board's rows, encoded once per change of a device row.

A campus board is thousands of appliances polled by every facilities console, and between two
polls only a few rows change. Each request still reads every row it shows from the database
(the source of truth, whichever replica wrote it), but as raw values: the JSON columns as their
text, no decoding. A row whose raw values equal the ones it was last encoded from is served
from the cache; the others are loaded and encoded as before and replace their entry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson
from pydantic import TypeAdapter
from sqlalchemy import Select, Text, cast, select
from sqlalchemy.orm import Session

from gateway.db.schema import Device
from gateway.domain.appliances import device_fields

_MAX_ENTRIES = 100_000  # far above a campus; beyond it the cache starts again empty

# Every column the board shows, JSON as text: equal tuples mean an equal row.
_RAW_COLUMNS = [cast(c, Text) if c.name in ("faults", "state") else c for c in Device.__table__.c]
_NAMES = [c.name for c in Device.__table__.c]


class _Entry:
    __slots__ = ("board_status", "encoded", "raw", "status")

    def __init__(self, raw: tuple[Any, ...], fields: dict[str, Any], encoded: bytes) -> None:
        self.raw = raw
        self.board_status = fields["board_status"]
        self.status = fields["status"]
        self.encoded = encoded


class BoardCache:
    """Encoded board rows by device key, for one process (thread-safe)."""

    def __init__(self, adapter: TypeAdapter[Any]) -> None:
        self._adapter = adapter
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def board(
        self,
        session: Session,
        narrow: Callable[[Select[Any]], Select[Any]],
        status: str | None = None,
    ) -> bytes:
        """The JSON list of the rows ``narrow`` selects (filters and order), keeping those
        whose board status or own status is ``status`` when given."""
        rows = [tuple(r) for r in session.execute(narrow(select(*_RAW_COLUMNS)))]
        with self._lock:
            cached = [self._entries.get(r[0]) for r in rows]
        entries: list[_Entry] = []
        fresh: dict[str, _Entry] = {}
        for raw, entry in zip(rows, cached, strict=True):
            if entry is None or entry.raw != raw:
                entry = fresh[raw[0]] = self._encode(raw)
            entries.append(entry)
        if fresh:
            with self._lock:
                if len(self._entries) + len(fresh) > _MAX_ENTRIES:
                    self._entries.clear()
                self._entries.update(fresh)
        parts = [
            e.encoded for e in entries if status is None or status in (e.board_status, e.status)
        ]
        return b"[" + b",".join(parts) + b"]"

    def _encode(self, raw: tuple[Any, ...]) -> _Entry:
        row = dict(zip(_NAMES, raw, strict=True))
        row["faults"] = orjson.loads(row["faults"]) if row["faults"] else []
        row["state"] = orjson.loads(row["state"]) if row["state"] else {}
        fields = device_fields(SimpleNamespace(**row))
        encoded = self._adapter.dump_json(self._adapter.validate_python(fields))
        return _Entry(raw, fields, encoded)
