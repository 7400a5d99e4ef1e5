"""A scripted chaos run: the whole system for real, six faults in sequence, then counted end to end.

Starts mosquitto, PostgreSQL, VictoriaMetrics (the InfluxDB endpoint), two gateway replicas on
one database with a shared subscription, ``--gates`` simulated gates publishing through the real
gate outbox (bench/chaos/gatesim.py), and one device bridge with ``--rooms`` × 5 simulated
appliances. While they run it injects, one after the other: a broker restart; kill -9 of
gateway replica a; kill -9 of gate g01 with events in its outbox (its link is cut first);
the time-series server down; gate g02 cut off from the broker (its network namespace's link
down); a PostgreSQL restart. Then the gates stop producing, the run waits for the gateway to
store everything, and counts (bench/chaos/counting.py).

Prints, last, one JSON line: produced, stored, lost, duplicates, order_violations per gate,
alerts_expected, alerts_raised, recover_s per fault, series_points_lost, and more.
Exit status 0 when nothing was lost, duplicated or out of order and stored == produced (with
``--strict-alerts`` also every expected alert raised and cleared exactly once), else 1.

``--short`` (CI, a few minutes): short faults and offline grace. Default (``make chaos``): the
durations of issue 11 (time-series server down 2 min, cut-off 5 min, the gateway's default
60 s offline grace), about 15 minutes. Needs root (network namespaces, PostgreSQL as postgres).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chaos.counting import check_alerts, count_events, missing_points, series_counts
from bench.chaos.faults import ISOLATED, Chaos
from bench.chaos.system import Scale, System

SHORT = Scale()
FULL = Scale(
    warmup_s=60.0,
    broker_down_s=30.0,
    gateway_down_s=30.0,
    gate_hold_s=5.0,
    gate_down_s=90.0,
    series_down_s=120.0,
    cutoff_s=300.0,
    postgres_down_s=30.0,
    offline_grace_s=60.0,
    keepalive_s=10,
    recover_timeout_s=300.0,
)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def drain(chaos: Chaos) -> float | None:
    """Stop the gates producing; seconds until all they produced is stored (None: never)."""
    chaos.system.stop_producing()
    time.sleep(1.0)  # let an event being built reach the outbox
    return chaos.wait_caught_up(chaos.produced(), time.monotonic())


def wait_series(chaos: Chaos, rows: dict[str, int], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    counts = series_counts(chaos.system)
    while time.monotonic() < deadline:
        counts = series_counts(chaos.system)
        if counts["access_count"] >= rows["access"] and counts["door_count"] >= rows["door"]:
            break
        time.sleep(1.0)
    return counts


def run(args: argparse.Namespace) -> dict[str, Any]:
    scale = SHORT if args.short else FULL
    scale = replace(scale, gates=args.gates, rooms=args.rooms)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="dormguard-chaos-"))
    system = System(workdir, scale, log=say)
    chaos: Chaos | None = None
    began = time.monotonic()
    result: dict[str, Any] = {}
    try:
        system.start(ISOLATED)
        chaos = Chaos(system, log=say)
        say(f"load running; warm-up {scale.warmup_s:.0f} s")
        time.sleep(scale.warmup_s)
        chaos.run_all()
        say("faults done; gates stop producing, waiting for the gateway to store everything")
        drained = drain(chaos)
        counts = count_events(system)
        rows = {"access": counts["access_rows"], "door": counts["door_rows"]}
        points = wait_series(chaos, rows, 60.0)
        alerts = check_alerts(system.postgres.url, chaos.expected_alerts)  # type: ignore[union-attr]
        expected_points = rows["access"] + rows["door"]
        lost_by_fault: dict[str, int] = {}
        for stored_at in counts["lost_times"]:  # when the gate's outbox stored the event
            fault = chaos.fault_at(datetime.fromtimestamp(stored_at, UTC))
            lost_by_fault[fault] = lost_by_fault.get(fault, 0) + 1
        points_missing: dict[str, Any] = {}
        try:
            for _measurement, _gate, at in missing_points(system):
                fault = chaos.fault_at(at, lead_s=2.0)
                points_missing[fault] = points_missing.get(fault, 0) + 1
        except Exception as exc:  # a figure for the report, not worth losing the run over
            points_missing["error"] = f"{type(exc).__name__}: {exc}"
        found_points = points["access_count"] + points["door_count"]
        result = {
            "bench": "chaos",
            "mode": "short" if args.short else "full",
            **{k: counts[k] for k in ("produced", "stored", "lost", "duplicates")},
            "order_violations": counts["order_violations"],
            "alerts_expected": alerts["alerts_expected"],
            "alerts_raised": alerts["alerts_raised"],
            "alerts_as_expected": alerts["alerts_as_expected"],
            "alerts_unexpected": alerts["alerts_unexpected"],
            "alerts_raised_total": alerts["alerts_raised_total"],
            "unexpected_alerts_by_fault": chaos.attribute(alerts["rows"]),
            "unexpected_originators_raised_twice": alerts["unexpected_originators_raised_twice"],
            "lost_by_fault": lost_by_fault,
            "recover_s": {r.fault: r.summary()["recover_s"] for r in chaos.results},
            "drain_s": None if drained is None else round(drained, 1),
            "series_points_expected": expected_points,
            "series_points_found": found_points,
            "series_points_lost": max(0, expected_points - found_points),
            "series_points_missing_by_fault": points_missing,
            "faults": [r.summary() for r in chaos.results],
            "alert_detail": alerts["alert_detail"],
            "unexpected_alerts": alerts["unexpected_alerts"][:5],
            "misnumbered": counts["misnumbered"],
            "arrival_reorders": counts["arrival_reorders"],
            "lost_examples": counts["lost_examples"],
            "gates": scale.gates,
            "appliances": scale.rooms * 5,
            "edge_cutoff": "network namespace (veth down)",
            "broker_security": "test broker: anonymous, no ACL",
            "machine": f"{platform.node()} {platform.machine()}, {_cpus()} CPUs",
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    finally:
        if chaos is not None:
            chaos.close()
        say("stopping every process")
        system.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"kept {workdir}")
    result["elapsed_s"] = round(time.monotonic() - began, 1)
    return result


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def passed(result: dict[str, Any], strict_alerts: bool) -> bool:
    ok = (
        result.get("lost") == 0
        and result.get("duplicates") == 0
        and all(v == 0 for v in result.get("order_violations", {"-": 1}).values())
        and result.get("stored") == result.get("produced")
    )
    if strict_alerts:
        ok = ok and result.get("alerts_as_expected") == result.get("alerts_expected")
        ok = ok and result.get("alerts_unexpected") == 0
    return ok


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="CI version: a few minutes")
    parser.add_argument("--gates", type=int, default=10)
    parser.add_argument("--rooms", type=int, default=40, help="5 appliances per room")
    parser.add_argument("--workdir", help="default: a new temporary folder, removed afterwards")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, data)")
    parser.add_argument(
        "--strict-alerts",
        action="store_true",
        help="also fail unless each expected alert was raised and cleared exactly once",
    )
    args = parser.parse_args(argv)
    # A background job ignores SIGINT and SIGTERM ends Python at once: make both unwind
    # through run()'s finally, so every process it started is stopped.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    result = run(args)
    ok = passed(result, args.strict_alerts)
    result["passed"] = ok
    print(json.dumps(result), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
