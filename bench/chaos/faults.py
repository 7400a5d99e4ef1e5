"""The faults, in the order the run injects them, and how recovery from each is measured.

Recovery is timed from the end of a fault (the broker, replica, gate, server or link back):
until every event the affected gates had produced by then is stored in PostgreSQL (for the
time-series server: until VictoriaMetrics holds a point for every access event stored by then).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, text

from bench.chaos.counting import ExpectedAlert, read_ledger, series_counts
from bench.chaos.system import BUILDING, SITE, System
from gateway.alerts.originators import gate_originator

KILLED_GATE = "g01"
CUT_GATE = "g02"
ISOLATED = (KILLED_GATE, CUT_GATE)  # the gates that get a network namespace


@dataclass
class FaultResult:
    fault: str
    duration_s: float
    recover_s: float | None
    detail: dict[str, Any] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def summary(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "duration_s": round(self.duration_s, 1),
            "recover_s": None if self.recover_s is None else round(self.recover_s, 1),
            **self.detail,
        }


class Chaos:
    """Runs the schedule against a started System and keeps what each fault showed."""

    def __init__(self, system: System, log: Callable[[str], None] = print) -> None:
        self.system = system
        self.scale = system.scale
        self.log = log
        assert system.postgres is not None
        self.engine: Engine = create_engine(system.postgres.url, pool_pre_ping=True)
        self.results: list[FaultResult] = []
        self.expected_alerts: list[ExpectedAlert] = []
        self._began = datetime.now(UTC)
        # Per gate, events a recovery wait gave up on: later recoveries do not wait for them.
        self.known_lost: dict[str, set[int]] = {}

    def close(self) -> None:
        self.engine.dispose()

    # --- measuring

    def produced(self, gates: Iterable[str] | None = None) -> dict[str, int]:
        names = list(gates) if gates is not None else list(self.system.gates)
        return {g: self.system.gates[g].produced() for g in names}

    def stored_seqs(self) -> dict[str, set[int]] | None:
        """Per gate, the seqs stored so far; None while SQL is away."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT gate_id, seq FROM access_log WHERE seq IS NOT NULL "
                        "UNION SELECT gate_id, seq FROM door_events WHERE seq IS NOT NULL"
                    )
                ).all()
        except Exception:
            return None
        stored: dict[str, set[int]] = {}
        for gate_id, seq in rows:
            stored.setdefault(gate_id, set()).add(int(seq))
        return stored

    def caught_up(self, snapshot: dict[str, int], stored: dict[str, set[int]]) -> bool:
        """Every seq up to the snapshot stored, or given up on as lost earlier."""
        for gate_id, upto in snapshot.items():
            have = stored.get(gate_id, set()) | self.known_lost.get(gate_id, set())
            if any(s not in have for s in range(1, upto + 1)):
                return False
        return True

    def give_up(self, stored: dict[str, set[int]]) -> int:
        """Record as lost what no gate will send again; returns how many are lost so far.

        Called when the outboxes are empty and nothing arrives: every seq produced more than
        5 s ago (gate ledger time) and not stored was acknowledged by the broker and is gone.
        """
        cutoff = time.time() - 5.0
        for gate_id, gate in self.system.gates.items():
            numbered = read_ledger(gate.ledger)
            have = stored.get(gate_id, set())
            self.known_lost[gate_id] = {
                s
                for s in range(1, gate.produced() + 1)
                if s not in have and numbered.get(s, ("", 0.0))[1] < cutoff
            }
        return sum(len(v) for v in self.known_lost.values())

    def wait_caught_up(self, snapshot: dict[str, int], since: float) -> float | None:
        """Seconds from `since` until everything in `snapshot` is stored; None if it never is.

        Gives up at the recovery timeout, or earlier once the affected gates' outboxes are
        empty (the broker acknowledged everything) and nothing more arrived for 15 s: what is
        still missing then will not come (counted as lost at the end, and not waited for again
        after later faults).
        """
        deadline = since + self.scale.recover_timeout_s
        best, progress_at = -1, time.monotonic()
        while time.monotonic() < deadline:
            stored = self.stored_seqs()
            if stored is not None:
                if self.caught_up(snapshot, stored):
                    return time.monotonic() - since
                total = sum(1 for g, n in snapshot.items() for seq in stored.get(g, ()) if seq <= n)
                if total > best:
                    best, progress_at = total, time.monotonic()
                idle = time.monotonic() - progress_at
                if idle > 15 and all(self.system.gates[g].depth() == 0 for g in snapshot):
                    missing = self.give_up(stored)
                    self.log(f"  {missing} event(s) acknowledged by the broker never arrived")
                    return None
            time.sleep(0.5)
        return None

    def access_rows(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM access_log")).scalar_one())

    def begin(self) -> float:
        """Note the wall-clock start of a fault; returns the monotonic one."""
        self._began = datetime.now(UTC)
        return time.monotonic()

    def record(self, result: FaultResult) -> None:
        result.started_at = self._began
        self.results.append(result)
        recovered = "NOT recovered" if result.recover_s is None else f"{result.recover_s:.1f} s"
        self.log(f"  {result.fault}: {result.duration_s:.1f} s, recovered in {recovered}")

    # --- the faults

    def broker_restart(self) -> None:
        broker = self.system.broker
        assert broker is not None
        start = self.begin()
        broker.stop()
        time.sleep(self.scale.broker_down_s)
        broker.start()
        end = time.monotonic()
        self.record(
            FaultResult("broker_restart", end - start, self.wait_caught_up(self.produced(), end))
        )

    def gateway_kill(self, replica: str = "a") -> None:
        start = self.begin()
        self.system.gateways[replica].kill9()
        time.sleep(self.scale.gateway_down_s)
        self.system.start_gateway(replica)
        healthy_s = self.system.wait_gateway(replica)
        end = time.monotonic()
        self.record(
            FaultResult(
                f"gateway_{replica}_kill9",
                end - start,
                self.wait_caught_up(self.produced(), end),
                {"restart_to_healthy_s": round(healthy_s, 1)},
            )
        )

    def gate_kill(self, gate_id: str = KILLED_GATE) -> None:
        gate = self.system.gates[gate_id]
        assert gate.network is not None
        start = self.begin()
        # Link down first, so the outbox fills with events the broker has not acknowledged.
        gate.network.cut()
        time.sleep(self.scale.gate_hold_s)
        gate.process.kill9()
        depth = gate.depth()
        produced = gate.produced()
        time.sleep(self.scale.gate_down_s)
        gate.network.restore()
        self.system.start_gate(gate_id)
        end = time.monotonic()
        down = self.scale.gate_hold_s + self.scale.gate_down_s
        self.expected_alerts.append(
            ExpectedAlert(
                "edge_offline",
                gate_originator(SITE, BUILDING, gate_id),
                f"gate {gate_id} killed -9, down {down:.0f} s",
            )
        )
        self.record(
            FaultResult(
                f"gate_{gate_id}_kill9",
                end - start,
                self.wait_caught_up({gate_id: produced}, end),
                {"outbox_depth_at_kill": depth, "produced_at_kill": produced},
            )
        )

    def series_down(self) -> None:
        victoria = self.system.victoria
        assert victoria is not None
        start = self.begin()
        victoria.stop()
        time.sleep(self.scale.series_down_s)
        victoria.start()
        end = time.monotonic()
        target = self.access_rows()
        recover: float | None = None
        while time.monotonic() < end + self.scale.recover_timeout_s:
            if series_counts(self.system)["access_count"] >= target:
                recover = time.monotonic() - end
                break
            time.sleep(1.0)
        self.record(
            FaultResult("timeseries_down", end - start, recover, {"access_points_target": target})
        )

    def cutoff(self, gate_id: str = CUT_GATE) -> None:
        gate = self.system.gates[gate_id]
        assert gate.network is not None
        start = self.begin()
        gate.network.cut()
        time.sleep(self.scale.cutoff_s)
        gate.network.restore()
        end = time.monotonic()
        self.expected_alerts.append(
            ExpectedAlert(
                "edge_offline",
                gate_originator(SITE, BUILDING, gate_id),
                f"gate {gate_id} cut off from the broker for {self.scale.cutoff_s:.0f} s",
            )
        )
        depth = gate.depth()
        self.record(
            FaultResult(
                f"gate_{gate_id}_cutoff",
                end - start,
                self.wait_caught_up(self.produced([gate_id]), end),
                {"method": "network namespace, host end of the veth down", "outbox_depth": depth},
            )
        )

    def postgres_restart(self) -> None:
        postgres = self.system.postgres
        assert postgres is not None
        start = self.begin()
        postgres.stop_fast()
        time.sleep(self.scale.postgres_down_s)
        postgres.start_again()
        end = time.monotonic()
        self.record(
            FaultResult("postgres_restart", end - start, self.wait_caught_up(self.produced(), end))
        )

    def run_all(self) -> None:
        for fault in (
            self.broker_restart,
            self.gateway_kill,
            self.gate_kill,
            self.series_down,
            self.cutoff,
            self.postgres_restart,
        ):
            self.log(f"fault: {fault.__name__}")
            fault()
            with contextlib.suppress(Exception):
                self.check_alive()

    def fault_at(self, at: datetime, *, lead_s: float = 0.0) -> str:
        """The last fault begun before `at` + `lead_s` (naive times are UTC).

        With a lead, a fault that began just after `at` gets it: a point whose event was
        stored a moment before a replica was killed is lost by that kill.
        """
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        fault = "before the faults"
        for result in self.results:
            if result.started_at <= at + timedelta(seconds=lead_s):
                fault = result.fault
        return fault

    def attribute(self, alerts: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
        """Alerts per fault (the last fault begun before the alert's first occurrence) and type."""
        out: dict[str, dict[str, int]] = {}
        for alert in alerts:
            per_type = out.setdefault(self.fault_at(alert["first_at"]), {})
            per_type[alert["type"]] = per_type.get(alert["type"], 0) + 1
        return out

    def check_alive(self) -> None:
        """Say so when a process died that no fault killed."""
        procs = [*self.system.gateways.values(), *(g.process for g in self.system.gates.values())]
        procs += [p for p in (self.system.bridge, self.system.simulator) if p is not None]
        for process in procs:
            if not process.running:
                self.log(f"  ! {process.name} is not running (see {process.log})")
