"""Where the ingest loses its speed on a full database: a kept semester, one variant at a time.

Copies a ``bench/campus_scale.py --keep-filled`` folder, optionally changes both the full copy
and a fresh empty database (``--sql``: statements such as ``DROP INDEX ...``; ``--pragma``:
``cache_size=-262144``, ``wal_autocheckpoint=20000`` on every connection), then ingests the
same fresh day into both through ``Gateway.process`` in alternating slices, as the campus
bench does, and prints the rates, their ratio and, per batch, the whole time and the time
in SQLite's commit. SQLite only: the question it answers is SQLite's.

    python bench/ingest_ratio_probe.py --from-sqlite /work/keep
    python bench/ingest_ratio_probe.py --from-sqlite /work/keep \\
        --sql "DROP INDEX ix_access_log_person_ts"
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, event, text

from bench.campus.filling import add_people, close_gateway, make_gateway
from bench.campus.measure import ingest_rates
from bench.campus.semester import RATIO_EVENTS, Scale, Semester, SimClock
from bench.campus_scale import KEPT, copy_files
from gateway.config import GatewayConfig
from tests.gatewayproc import gateway_config


def instrument(engine: Engine, name: str, spent: Counter[str], pragmas: Sequence[str]) -> None:
    """Time the driver's commits on ``engine`` (where SQLite writes the dirty pages to its WAL,
    syncs, and checkpoints); set ``pragmas``."""
    dialect = engine.dialect
    commit = dialect.do_commit

    def timed_commit(conn: Any) -> None:
        started = time.perf_counter()
        commit(conn)
        spent[f"{name} commit"] += time.perf_counter() - started

    dialect.do_commit = timed_commit  # type: ignore[method-assign]
    if pragmas:

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi: Any, _record: Any) -> None:
            cursor = dbapi.cursor()
            for pragma in pragmas:
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

        engine.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--from-sqlite", type=Path, required=True, help="a --keep-filled folder")
    parser.add_argument("--days", type=int, default=120, help="the kept semester's --days")
    parser.add_argument("--students", type=int, default=20_000)
    parser.add_argument("--appliances", type=int, default=2_000)
    parser.add_argument("--sql", action="append", default=[], help="run on both databases")
    parser.add_argument("--pragma", action="append", default=[], help="on every connection")
    args = parser.parse_args(argv)
    scale = Scale(days=args.days, students=args.students, appliances=args.appliances)
    root = Path(tempfile.mkdtemp(prefix="dormguard-ratio-"))
    try:
        zone = GatewayConfig.model_validate(gateway_config(root, 1)).welfare
        first_day = datetime.now(zone.zone).date() - timedelta(days=scale.days)
        semester = Semester(scale, zone.zone, zone.curfew_time.hour, first_day)
        copy_files(args.from_sqlite, root / "full", KEPT)
        clock = SimClock(semester.day_start(scale.days))
        empty_clock = SimClock(clock.now)
        full = make_gateway(
            root / "full", f"sqlite:///{root / 'full' / 'gateway.db'}", scale, clock
        )
        empty = make_gateway(
            root / "empty", f"sqlite:///{root / 'empty' / 'gateway.db'}", scale, empty_clock
        )
        try:
            semester.resume_sequences(full.services)
            add_people(empty, semester)
            spent: Counter[str] = Counter()
            for name, gw in (("full", full), ("empty", empty)):
                with gw.services.engine.begin() as conn:
                    for statement in args.sql:
                        conn.execute(text(statement))
                instrument(gw.services.engine, name, spent, args.pragma)
            day = [m for m in semester.passes(scale.days) if m[1].endswith("/event")]
            empty_rate, full_rate = ingest_rates(
                (empty, empty_clock), (full, clock), day[:RATIO_EVENTS]
            )
        finally:
            close_gateway(full)
            close_gateway(empty)
        events = min(len(day), RATIO_EVENTS)
        batches = -(-events // 2000)
        spent["full all"] = events / full_rate
        spent["empty all"] = events / empty_rate
        per_batch = {k: round(v / batches * 1000, 1) for k, v in sorted(spent.items())}
        for key, ms in per_batch.items():
            print(f"  {key:<22} {ms:8.1f} ms per batch of 2,000")
        print(
            json.dumps(
                {
                    "sql": args.sql,
                    "pragma": args.pragma,
                    "ingest_empty_per_s": round(empty_rate),
                    "ingest_full_per_s": round(full_rate),
                    "ingest_ratio_full_vs_empty": round(full_rate / empty_rate, 3),
                    "ms_per_batch": per_batch,
                }
            )
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
