"""Counting end to end: what the gates produced against what the gateway stored.

- **produced**: per gate, the last sequence number its outbox gave out (`sqlite_sequence`: the
  outbox numbers every message it stores and never reuses a number, so 1..N were produced),
  with the event id of each number from the gate's ledger.
- **stored**: rows of `access_log` and `door_events` (PostgreSQL) carrying that gate's seq.
- **lost**: numbers 1..N with no stored row. **duplicates**: an event id stored twice, or two
  stored events with one gate's seq. **order_violations** (docs/mqtt.md: `seq` is "one gap-free
  stream per gate"; the gateway, with replicas splitting the stream, promises no storage order
  between them): per gate, holes in the stored sequence below its highest stored number, seqs
  stored twice, and stored events whose id is not the one the gate numbered with that seq.
- **arrival_reorders** (information only): per gate, rows stored (access log ids) with a lower
  seq than a row stored before them.
- **time-series points**: every stored access and door event is one `access`/`door` point
  (docs/timeseries.md); the VictoriaMetrics samples of `access_count` and `door_count` read back.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench.chaos.system import System


@dataclass(frozen=True)
class StoredEvent:
    gate_id: str
    seq: int | None
    event_id: str
    row: int  # access log id (door events: 0)


def read_ledger(path: Path) -> dict[int, tuple[str, float]]:
    """seq -> (event id, unix time stored), as the gate wrote them (a torn line is skipped)."""
    numbered: dict[int, tuple[str, float]] = {}
    if not path.exists():
        return numbered
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0].isdigit():
            with contextlib.suppress(ValueError):
                numbered[int(parts[0])] = (parts[2], float(parts[3]))
    return numbered


def stored_events(url: str) -> list[StoredEvent]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            access = conn.execute(
                text("SELECT gate_id, seq, event_id, id FROM access_log ORDER BY id")
            ).all()
            doors = conn.execute(text("SELECT gate_id, seq, event_id FROM door_events")).all()
    finally:
        engine.dispose()
    return [StoredEvent(g, s, e, int(i)) for g, s, e, i in access] + [
        StoredEvent(g, s, e, 0) for g, s, e in doors
    ]


def stored_count(url: str) -> dict[str, tuple[int, int]]:
    """Per gate: (rows stored, highest seq stored) — the cheap poll used while recovering."""
    engine = create_engine(url, pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT gate_id, count(*), max(seq) FROM ("
                    "SELECT gate_id, seq FROM access_log UNION ALL "
                    "SELECT gate_id, seq FROM door_events) AS e GROUP BY gate_id"
                )
            ).all()
    finally:
        engine.dispose()
    return {str(g): (int(n), int(m or 0)) for g, n, m in rows}


def count_events(system: System) -> dict[str, Any]:
    """produced, stored, lost, duplicates, order violations and reorders, per gate and in all."""
    assert system.postgres is not None
    events = stored_events(system.postgres.url)
    ids = Counter(e.event_id for e in events)
    by_gate: dict[str, list[StoredEvent]] = defaultdict(list)
    for e in events:
        by_gate[e.gate_id].append(e)
    produced_total = lost_total = 0
    order: dict[str, int] = {}
    reorders: dict[str, int] = {}
    seq_duplicates = 0
    misnumbered = 0
    lost_examples: dict[str, list[int]] = {}
    lost_times: list[float] = []  # when each lost event was stored in its gate's outbox
    for gate_id, gate in sorted(system.gates.items()):
        produced = gate.produced()
        ledger = read_ledger(gate.ledger)
        mine = by_gate.get(gate_id, [])
        seqs = Counter(e.seq for e in mine if e.seq is not None)
        lost = [s for s in range(1, produced + 1) if s not in seqs]
        top = max(seqs, default=0)
        holes = sum(1 for s in range(1, top + 1) if s not in seqs)
        twice = sum(n - 1 for n in seqs.values() if n > 1)
        wrong = sum(
            1
            for e in mine
            if e.seq is not None and e.seq in ledger and ledger[e.seq][0] != e.event_id
        )
        beyond = sum(1 for s in seqs if s > produced)
        order[gate_id] = holes + twice + wrong + beyond
        seq_duplicates += twice
        misnumbered += wrong
        highest = 0
        late = 0
        for e in sorted((e for e in mine if e.row), key=lambda e: e.row):
            if e.seq is not None and e.seq < highest:
                late += 1
            highest = max(highest, e.seq or 0)
        reorders[gate_id] = late
        produced_total += produced
        lost_total += len(lost)
        if lost:
            lost_examples[gate_id] = lost[:10]
            lost_times += [ledger[s][1] for s in lost if s in ledger]
    stored = sum(1 for e in events if e.gate_id in system.gates)
    return {
        "produced": produced_total,
        "stored": stored,
        "lost": lost_total,
        "duplicates": sum(n - 1 for n in ids.values() if n > 1) + seq_duplicates,
        "order_violations": order,
        "misnumbered": misnumbered,
        "arrival_reorders": sum(reorders.values()),
        "lost_examples": lost_examples,
        "lost_times": lost_times,
        "access_rows": sum(1 for e in events if e.row),
        "door_rows": sum(1 for e in events if not e.row),
    }


def series_counts(system: System) -> dict[str, int]:
    """Samples of access_count and door_count in VictoriaMetrics (0 when unreachable)."""
    assert system.victoria is not None
    counts: dict[str, int] = {}
    for name in ("access_count", "door_count"):
        with contextlib.suppress(Exception):
            series = system.victoria.samples(f'{{__name__="{name}"}}')
            counts[name] = sum(len(v) for v in series.values())
        counts.setdefault(name, 0)
    return counts


@dataclass(frozen=True)
class ExpectedAlert:
    type: str
    originator: str
    because: str


def alert_rows(url: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, type, originator, state, condition_active, first_at, cleared_at, "
                    "count FROM alerts ORDER BY id"
                )
            ).mappings()
            return [dict(r) for r in rows]
    finally:
        engine.dispose()


def check_alerts(url: str, expected: list[ExpectedAlert]) -> dict[str, Any]:
    """Each expected alert raised exactly once and cleared once; anything else listed."""
    rows = alert_rows(url)
    raised: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        raised[(row["type"], row["originator"])].append(row)
    results = []
    for want in expected:
        got = raised.get((want.type, want.originator), [])
        cleared = sum(1 for r in got if r["state"] == "cleared")
        results.append(
            {
                "type": want.type,
                "originator": want.originator,
                "because": want.because,
                "raised": len(got),
                "cleared": cleared,
                "ok": len(got) == 1 and cleared == 1,
            }
        )
    wanted = {(w.type, w.originator) for w in expected}
    unexpected = [
        {"type": t, "originator": o, "raised": len(r)}
        for (t, o), r in sorted(raised.items())
        if (t, o) not in wanted
    ]
    twice = sum(1 for (t, o), r in raised.items() if (t, o) not in wanted and len(r) > 1)
    return {
        "alerts_expected": len(expected),
        "alerts_raised": sum(r["raised"] for r in results),
        "alerts_as_expected": sum(1 for r in results if r["ok"]),
        "alerts_unexpected": sum(u["raised"] for u in unexpected),
        "alerts_raised_total": len(rows),
        "unexpected_originators_raised_twice": twice,
        "rows": [r for r in rows if (r["type"], r["originator"]) not in wanted],
        "alert_detail": results,
        "unexpected_alerts": unexpected[:20],
    }


def missing_points(system: System) -> list[tuple[str, str, datetime]]:
    """(measurement, gate, time stored) of stored access/door events with no sample in VM.

    The time is the access log's received_at; door events have none, their event time is used.
    """
    assert system.postgres is not None and system.victoria is not None
    engine = create_engine(system.postgres.url)
    try:
        with engine.connect() as conn:
            events = {
                "access_count": conn.execute(
                    text("SELECT gate_id, ts, received_at FROM access_log")
                ).all(),
                "door_count": conn.execute(text("SELECT gate_id, ts, ts FROM door_events")).all(),
            }
    finally:
        engine.dispose()
    missing: list[tuple[str, str, datetime]] = []
    for name, rows in events.items():
        seen: set[tuple[str, int]] = set()
        with contextlib.suppress(Exception):
            for labels, samples in system.victoria.samples(f'{{__name__="{name}"}}').items():
                gate = dict(labels).get("gate", "")
                seen.update((gate, ms) for ms, _ in samples)
        for gate_id, ts, stored_at in rows:
            if ts.tzinfo is None:
                ts = ts.replace(tzinfo=UTC)
            ms = int(ts.timestamp() * 1000)
            if (gate_id, ms) not in seen and (gate_id, ms + 1) not in seen:
                missing.append((name, gate_id, stored_at))
    return missing
