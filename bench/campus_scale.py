"""A semester of data: fill a real database through the gateway's own ingest, then time what
people do with it.

1. Fill: ``--students`` students (buildings of ``--beds`` beds, 6 gates each: 60 gates for
   20,000 students) pass their gates 4 times a day for ``--days`` days (out in the morning,
   back for lunch, out again, back in the evening; some late returns after curfew, some
   denied attempts before a pass), doors are held or forced open now and then, and
   ``--appliances`` appliances (the device simulator's rooms and physics) report their states
   all semester and telemetry for the time-series retention period. Every message goes through
   ``Gateway.process`` (validate, dedup, hash-chained access log, presence, late returns,
   alert rules, device states, time-series points), one transaction per batch of 2,000, with
   the clock moved along the simulated time; the welfare check runs each night after curfew
   and the hourly upkeep once a simulated day, as the maintenance loop would.
2. Measure, ``--repeats`` times each, through the API routes (FastAPI TestClient, logged-in
   roles) or the gateway's own functions: the guard console's open alerts, access-log search by
   person, by gate and by time range, a building's roll call, the facilities board, a device's
   7-day chart, welfare evaluation for all students, ``dormguard audit verify`` (time and peak
   Python memory) and the retention job. The slowest SQL statement of each query is shown with
   its plan (EXPLAIN QUERY PLAN on SQLite, EXPLAIN ANALYZE on PostgreSQL).
3. Ingest of a fresh day into the full database and into an empty one (same people), in the
   same run: ``ingest_ratio_full_vs_empty``.

SQLite (a file, through the migrations) always; PostgreSQL (tests/postgres.py's throwaway
server) when Debian's server binaries are installed. Prints, last, one JSON line: per database
events, worst_console_p95_ms, roll_call_ms, ingest_ratio_full_vs_empty and the other figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, func, select, text

from bench.campus.copying import copy_database
from bench.campus.filling import Fill, add_people, close_gateway, fill, make_gateway
from bench.campus.measure import Timing, database_bytes, ingest_rates, run_queries, table_bytes
from bench.campus.semester import CONSOLE, RATIO_EVENTS, Counts, Scale, Semester, SimClock
from gateway.config import GatewayConfig
from gateway.db import migrate
from gateway.db.schema import AccessRecord, AlertRow, DeviceStateRecord, LateReturn
from tests.gatewayproc import gateway_config

KEPT = ("gateway.db", "series.db")  # what --keep-filled keeps, the database first


@dataclass
class Backend:
    name: str
    url: str
    empty_url: str


def run_database(
    backend: Backend,
    workdir: Path,
    scale: Scale,
    log: Callable[[str], None] = print,
    keep_filled: Path | None = None,
    from_sqlite: Path | None = None,
    ratio_only: bool = False,
) -> dict[str, Any]:
    """Fill one database with a semester (or, on PostgreSQL with ``from_sqlite``, copy a kept
    SQLite one), measure it; the figures (and the counts checked). ``ratio_only``: of the
    measurements only the ingest of a fresh day, full against empty (the machine to itself)."""
    zone_config = GatewayConfig.model_validate(gateway_config(workdir, 1)).welfare
    first_day = datetime.now(zone_config.zone).date() - timedelta(days=scale.days)
    semester = Semester(scale, zone_config.zone, zone_config.curfew_time.hour, first_day)
    clock = SimClock(semester.day_start(0))
    (workdir / "full").mkdir(parents=True, exist_ok=True)
    copied = from_sqlite is not None
    if copied:
        assert from_sqlite is not None
        filled = copy_kept(from_sqlite, backend.url, workdir / "full", log)
    gw = make_gateway(workdir / "full", backend.url, scale, clock)
    try:
        if copied:
            clock.now = semester.day_start(scale.days)
            semester.resume_sequences(gw.services)
        else:
            add_people(gw, semester)
            log(
                f"{backend.name}: filling {scale.days} days x {scale.students:,} students, "
                f"{len(semester.devices):,} appliances"
            )
            filled = fill(gw, clock, semester, log)
        engine = gw.services.engine
        with gw.services.sessions() as s:
            events = int(s.scalar(select(func.count()).select_from(AccessRecord)) or 0)
            late_rows = int(s.scalar(select(func.count()).select_from(LateReturn)) or 0)
            state_rows = int(s.scalar(select(func.count()).select_from(DeviceStateRecord)) or 0)
            alert_rows = int(s.scalar(select(func.count()).select_from(AlertRow)) or 0)
            open_alerts = int(
                s.scalar(select(func.count()).where(AlertRow.state != "cleared")) or 0
            )
        if keep_filled is not None and backend.name == "sqlite":
            keep_files(workdir / "full", keep_filled, log)
        series_dropped = gw.services.series_writer.stats().dropped
        size = database_bytes(engine)
        tables = table_bytes(engine)
        series_bytes = sum(
            p.stat().st_size for p in (workdir / "full").glob("series.db*") if p.is_file()
        )
        if copied:
            filled.counts.access = events  # what the kept semester's ingest generated
        log(
            f"{backend.name}: {'copied' if copied else 'filled'} in {filled.seconds:,.0f} s: "
            f"{events:,} access events "
            f"({filled.counts.access / filled.seconds:,.0f}/s), {filled.stored:,} messages "
            f"({filled.stored / filled.seconds:,.0f}/s); {state_rows:,} device states, "
            f"{filled.counts.telemetry:,} telemetry readings, {alert_rows:,} alerts "
            f"({open_alerts:,} open), {late_rows:,} late returns"
        )
        log(
            f"{backend.name}: database {size / 2**20:,.1f} MiB "
            f"({size / 2**20 / max(events, 1) * 1e6:,.0f} MiB per million access events); "
            f"series store {series_bytes / 2**20:,.1f} MiB ({series_dropped:,} points dropped)"
        )
        for name, nbytes in list(tables.items())[:6]:
            log(f"    {name:<20} {nbytes / 2**20:10,.1f} MiB")
        timings, jobs = ([], {}) if ratio_only else run_queries(gw, clock, semester, scale.repeats)

        ratio_day = [m for m in semester.passes(scale.days) if m[1].endswith("/event")][
            :RATIO_EVENTS
        ]
        (workdir / "empty").mkdir(parents=True, exist_ok=True)
        empty_clock = SimClock(clock.now)
        empty = make_gateway(workdir / "empty", backend.empty_url, scale, empty_clock)
        try:
            add_people(empty, semester)
            empty_rate, full_rate = ingest_rates((empty, empty_clock), (gw, clock), ratio_day)
        finally:
            close_gateway(empty)
    finally:
        close_gateway(gw)
    log(f"\n{backend.name}: {events:,} access events")
    if timings:
        log_queries(timings, jobs, log)
    log(
        f"  ingest of a fresh day ({len(ratio_day):,} access events): empty database "
        f"{empty_rate:,.0f}/s, full database {full_rate:,.0f}/s, "
        f"ratio {full_rate / empty_rate:.2f}"
    )
    result = {
        "events": events,
        "generated_events": filled.counts.access,
        "messages_generated": filled.counts.messages,
        "messages_stored": filled.stored,
        "late_returns_generated": filled.counts.late,
        "late_return_rows": late_rows,
        "device_states_generated": filled.counts.states,
        "device_state_rows": state_rows,
        "alerts": alert_rows,
        "open_alerts": open_alerts,
        "filled_by": "copy of a kept sqlite semester" if copied else "ingest",
        "fill_s": round(filled.seconds, 1),
        "fill_events_per_s": round(filled.counts.access / filled.seconds) if not copied else None,
        "fill_messages_per_s": round(filled.stored / filled.seconds) if not copied else None,
        "db_mib": round(size / 2**20, 1),
        "db_mib_per_million_events": round(size / 2**20 / max(events, 1) * 1e6, 1),
        "series_mib": round(series_bytes / 2**20, 1),
        "series_points_dropped": series_dropped,
        "ingest_empty_per_s": round(empty_rate),
        "ingest_full_per_s": round(full_rate),
        "ingest_ratio_full_vs_empty": round(full_rate / empty_rate, 3),
    }
    if timings:
        by_name = {t.name: t for t in timings}
        worst = max(CONSOLE, key=lambda n: by_name[n].p95)
        result |= {
            "worst_console_p95_ms": round(by_name[worst].p95, 1),
            "worst_console_query": worst,
            "roll_call_ms": round(by_name["roll_call"].p95, 1),
            "p95_ms": {t.name: round(t.p95, 1) for t in timings},
            "p50_ms": {t.name: round(t.p50, 1) for t in timings},
            "verify_s": round(jobs["verify_s"], 2),
            "verify_ok": jobs["verify_ok"],
            "verify_rows": jobs["verify_rows"],
            "verify_peak_mib": round(jobs["verify_peak_mib"], 1),
        }
    return result


def log_queries(
    timings: Sequence[Timing], jobs: dict[str, Any], log: Callable[[str], None]
) -> None:
    """The query table (p50/p95 and the slowest statement's plan) and the audit verify line."""
    log(f"  {'query':<18}{'runs':>5}{'p50 ms':>10}{'p95 ms':>10}   slowest statement's plan")
    for t in timings:
        log(
            f"  {t.name:<18}{len(t.ms):>5}{t.p50:>10.1f}{t.p95:>10.1f}   "
            + (t.plan[0] if t.plan else "(no SQL)")
        )
        for line in t.plan[1:]:
            log(f"  {'':<43}   {line}")
    log(
        f"  audit verify: {jobs['verify_rows']:,} rows in {jobs['verify_s']:.2f} s "
        f"({jobs['verify_rows'] / jobs['verify_s']:,.0f} rows/s), ok={jobs['verify_ok']}; "
        f"peak Python memory {jobs['verify_peak_mib']:.1f} MiB "
        f"(traced run {jobs['verify_traced_s']:.2f} s)"
    )


def copy_files(source: Path, target: Path, names: Sequence[str]) -> None:
    """SQLite files (a database, a series store) copied by SQLite's backup API."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        reader = sqlite3.connect(source / name)
        writer = sqlite3.connect(target / name)
        try:
            reader.backup(writer)
        finally:
            writer.close()
            reader.close()


def keep_files(workdir: Path, target: Path, log: Callable[[str], None]) -> None:
    """Copies of the filled SQLite database and its series store, as they are before any query
    runs, into the folder ``target`` (the source of a later ``--from-sqlite`` run)."""
    copy_files(workdir, target, KEPT)
    log(f"sqlite: the filled database and series store kept in {target}")


def copy_kept(source: Path, url: str, workdir: Path, log: Callable[[str], None]) -> Fill:
    """The kept SQLite semester (``--keep-filled``) as this run's database at ``url`` (a file
    copy on SQLite; COPY into the migrated database on PostgreSQL), and its series store beside
    the gateway; as a fill (time, rows copied)."""
    log(f"copying the semester kept in {source} into {url.split('@')[-1]}")
    started = time.monotonic()
    if url.startswith("sqlite"):
        copy_files(source, workdir, KEPT)
        return Fill(time.monotonic() - started, 0, Counts())
    target = create_engine(url)
    try:
        migrate(target)
        done = copy_database(source / "gateway.db", target, log)
    finally:
        target.dispose()
    copy_files(source, workdir, KEPT[1:])
    return Fill(time.monotonic() - started, sum(done.rows.values()), Counts())


def postgres_backend(url: str) -> Backend:
    """PostgreSQL at ``url`` for the full database, and a new database beside it for the
    empty one."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE empty"))
    finally:
        admin.dispose()
    return Backend("postgresql", url, url.rsplit("/", 1)[0] + "/empty")


@contextmanager
def backends(root: Path, log: Callable[[str], None]) -> Iterator[list[Backend]]:
    """SQLite files, and a throwaway PostgreSQL server when its binaries are installed."""
    found = [
        Backend(
            "sqlite",
            f"sqlite:///{root / 'sqlite' / 'full' / 'gateway.db'}",
            f"sqlite:///{root / 'sqlite' / 'empty' / 'gateway.db'}",
        )
    ]
    from tests.postgres import Postgres, postgres_bindir

    server: Postgres | None = None
    try:
        postgres_bindir()
        server = Postgres(root / "pg").start()
        found.append(postgres_backend(server.url))
    except (RuntimeError, OSError) as exc:
        log(f"postgresql: skipped ({exc})")
    try:
        yield found
    finally:
        if server is not None:
            server.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--students", type=int, default=20_000)
    parser.add_argument("--appliances", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--live-days", type=int, default=7, help="last days whose appliance messages are ingested"
    )
    parser.add_argument(
        "--quick", action="store_true", help="5 days x 2,000 students, 200 appliances"
    )
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    parser.add_argument(
        "--keep-filled",
        type=Path,
        default=None,
        help="a folder: copy the filled SQLite database and series store there before measuring",
    )
    parser.add_argument(
        "--from-sqlite",
        type=Path,
        default=None,
        help="a --keep-filled folder: each database gets a copy of that semester instead of a fill",
    )
    parser.add_argument(
        "--ratio-only",
        action="store_true",
        help="measure only the ingest of a fresh day, full against empty (no queries, no verify)",
    )
    args = parser.parse_args(argv)
    scale = (
        Scale(days=5, students=2_000, appliances=200, repeats=args.repeats)
        if args.quick
        else Scale(
            days=args.days, students=args.students, appliances=args.appliances, repeats=args.repeats
        )
    )
    scale = replace(scale, live_days=args.live_days)
    results: dict[str, Any] = {}
    root = Path(tempfile.mkdtemp(prefix="dormguard-scale-"))
    root.chmod(0o755)  # the PostgreSQL server (its own user when run as root) works below it
    try:
        with backends(root, print) as found:
            for backend in found:
                if args.only is not None and backend.name != args.only:
                    continue
                results[backend.name] = run_database(
                    backend,
                    root / backend.name,
                    scale,
                    keep_filled=args.keep_filled,
                    from_sqlite=args.from_sqlite,
                    ratio_only=args.ratio_only,
                )
                print(flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"days": scale.days, "students": scale.students, **results}))


if __name__ == "__main__":
    main()
