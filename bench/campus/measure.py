"""Timing what people do with the filled database: routes, jobs, plans, sizes, ingest rates."""

from __future__ import annotations

import math
import random
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine, event, text

from bench.campus.filling import feed
from bench.campus.semester import (
    BATCH,
    GATES_PER_BUILDING,
    SITE,
    Message,
    Semester,
    SimClock,
    iso_text,
)
from gateway.app import Gateway
from gateway.audit import verify_chain
from gateway.auth.roles import Role
from gateway.ingest.store import device_key


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by the nearest-rank method."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class Statement:
    seconds: float
    sql: str
    params: Any


@dataclass
class SqlRecorder:
    """The SQL statements an engine runs while recording, with their durations."""

    engine: Engine
    statements: list[Statement] = field(default_factory=list)
    _on: bool = False

    def install(self) -> None:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)

    def uninstall(self) -> None:
        """Stop listening (the listeners cost a little on every statement)."""
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)

    def _before(
        self, conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, _many: Any
    ) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, _many: Any) -> None:
        if self._on and sql.lstrip().upper().startswith(("SELECT", "DELETE")):
            seconds = time.perf_counter() - conn.info.get("bench_started", time.perf_counter())
            self.statements.append(Statement(seconds, sql, params))

    @contextmanager
    def recording(self) -> Iterator[list[Statement]]:
        self.statements = []
        self._on = True
        try:
            yield self.statements
        finally:
            self._on = False


def explain(engine: Engine, stmt: Statement) -> list[str]:
    """The plan of one recorded statement in the backend's own words."""
    postgres = engine.dialect.name == "postgresql"
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
    with engine.connect() as conn:  # rolled back: EXPLAIN ANALYZE of a DELETE runs it
        rows = conn.exec_driver_sql(prefix + stmt.sql, stmt.params).all()
    lines = [str(r[0]) for r in rows] if postgres else [str(r[-1]) for r in rows]
    return [line if len(line) <= 160 else line[:157] + "..." for line in lines]


@dataclass
class Timing:
    name: str
    ms: list[float]
    slowest_sql: Statement | None = None
    plan: list[str] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return percentile(self.ms, 0.5)

    @property
    def p95(self) -> float:
        return percentile(self.ms, 0.95)


def measure(
    name: str, call: Callable[[int], object], repeats: int, recorder: SqlRecorder
) -> Timing:
    """Time ``call(i)`` ``repeats`` times (after one warm-up); the slowest statement's plan."""
    with recorder.recording() as statements:
        call(0)
    slowest = max(statements, key=lambda s: s.seconds) if statements else None
    ms = []
    for i in range(repeats):
        t = time.perf_counter()
        call(i + 1)
        ms.append((time.perf_counter() - t) * 1000)
    timing = Timing(name, ms, slowest)
    if slowest is not None:
        timing.plan = explain(recorder.engine, slowest)
    return timing


def run_queries(
    gw: Gateway, clock: SimClock, semester: Semester, repeats: int
) -> tuple[list[Timing], dict[str, Any]]:
    """The console's queries and the jobs, timed; and the job figures (verify, retention)."""
    from fastapi.testclient import TestClient

    from gateway.api import create_app
    from tests.gatewaykit import login

    services = gw.services
    recorder = SqlRecorder(services.engine)
    recorder.install()
    rng = random.Random(semester.scale.seed + 1)
    end = clock.now
    mid = semester.day_start(semester.scale.days // 2) + timedelta(hours=18)
    people = [pid for pid, _b, _o in semester.students]
    device_keys = [device_key(SITE, d.building, d.room, d.device_id) for d in semester.devices]
    building = semester.scale.buildings[0]
    timings: list[Timing] = []
    with TestClient(create_app(services)) as client:
        guard = login(client, Role.GUARD)
        facilities = login(client, Role.FACILITIES)

        def get(url: str, headers: dict[str, str]) -> Any:
            response = client.get(url, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
            return response.json()

        def by_time(i: int) -> Any:
            since = mid + timedelta(minutes=37 * i)
            query = {"since": iso_text(since), "until": iso_text(since + timedelta(hours=1))}
            return get(f"/api/access?{urlencode(query)}", guard)

        def by_gate(i: int) -> Any:
            b = semester.scale.buildings[i % len(semester.scale.buildings)]
            return get(f"/api/access?building={b}&gate=g{1 + i % GATES_PER_BUILDING}", guard)

        def chart(i: int) -> Any:
            key = device_keys[rng.randrange(len(device_keys))]
            query = {"field": "power_w", "since": iso_text(end - timedelta(days=7)), "limit": 10000}
            return get(f"/api/devices/{key}/series?{urlencode(query)}", facilities)

        queries: list[tuple[str, Callable[[int], object]]] = [
            ("open_alerts", lambda i: get("/api/alerts?state=open", guard)),
            ("access_by_person", lambda i: get(f"/api/access?person={rng.choice(people)}", guard)),
            ("access_by_gate", by_gate),
            ("access_by_time", by_time),
            ("roll_call", lambda i: get(f"/api/occupancy/{building}/roll-call", guard)),
            ("board", lambda i: get("/api/devices", facilities)),
            ("chart", chart),
            ("welfare", lambda i: gw.welfare_signals(end)),
        ]
        for name, call in queries:
            slow = name in ("welfare", "roll_call")
            timings.append(measure(name, call, max(3, repeats // 4) if slow else repeats, recorder))
    jobs: dict[str, Any] = {}
    t = time.perf_counter()
    report = verify_chain(services.engine)
    jobs["verify_s"] = time.perf_counter() - t
    jobs["verify_rows"] = report.rows
    jobs["verify_ok"] = report.ok
    tracemalloc.start()
    t = time.perf_counter()
    verify_chain(services.engine)
    jobs["verify_traced_s"] = time.perf_counter() - t
    jobs["verify_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()

    def retention(i: int) -> None:
        clock.now = end + timedelta(hours=i + 1)
        gw._hourly(clock.now)

    timings.append(measure("retention", retention, max(3, repeats // 4), recorder))
    recorder.uninstall()
    clock.now = end
    return timings, jobs


# --- sizes, backends, the run -----------------------------------------------------------------


def database_bytes(engine: Engine) -> int:
    """The database's size on disk (SQLite after a WAL checkpoint)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return int(
                conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
            )
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
        return int(pages) * int(size)


def table_bytes(engine: Engine) -> dict[str, int]:
    """Bytes per table including its indexes (largest first; {} when SQLite lacks dbstat)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.execute(
                text(
                    "SELECT relname, pg_total_relation_size(relid)"
                    " FROM pg_catalog.pg_statio_user_tables"
                )
            ).all()
        else:
            try:
                rows = conn.exec_driver_sql(
                    "SELECT coalesce(m.tbl_name, s.name), sum(s.pgsize) FROM dbstat s "
                    "LEFT JOIN sqlite_master m ON m.name = s.name GROUP BY 1"
                ).all()
            except Exception:  # dbstat is a compile-time option
                return {}
    return dict(sorted(((str(n), int(b)) for n, b in rows), key=lambda kv: -kv[1]))


def ingest_rates(
    empty: tuple[Gateway, SimClock], full: tuple[Gateway, SimClock], messages: Sequence[Message]
) -> tuple[float, float]:
    """Access events per second of a fresh batch into the empty and the full database, in
    alternating slices so that drift on the machine touches both alike."""
    seconds = [0.0, 0.0]
    stored = [0, 0]
    slice_size = 5 * BATCH
    for start in range(0, len(messages), slice_size):
        part = messages[start : start + slice_size]
        for n, (gw, clock) in enumerate((empty, full)):
            t = time.monotonic()
            stored[n] += feed(gw, clock, part)
            seconds[n] += time.monotonic() - t
    return stored[0] / seconds[0], stored[1] / seconds[1]
