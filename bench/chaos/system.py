"""The whole system as real processes, and the means to restart, kill and stop each part.

mosquitto (the test broker of tests/broker.py: anonymous, no ACL), PostgreSQL 15
(tests/postgres.py's throwaway cluster), VictoriaMetrics as the InfluxDB endpoint
(tests/victoria.py), two `dormguard gateway` replicas on one database with a shared
subscription group, simulated gates (bench/chaos/gatesim.py: the real gate outbox and
publisher), one `dormguard devices` bridge and `dormguard simulate devices` for its appliances.
Every process the run starts gets a session (process group) of its own and is recorded, so
`stop()` can end each one and its children, whatever happened before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.chaos.netns import EdgeNetwork
from dormguard.demo import scaled_thresholds
from edge.devices.simulation.fleet import bridge_device_entries, plan_rooms
from edge.localbroker import free_port
from tests.broker import Broker
from tests.gatekit import dormguard_env
from tests.keys import signing_config
from tests.postgres import Postgres, postgres_bindir
from tests.victoria import Victoria

SITE = "campus"
BUILDING = "b1"
BRIDGE = "laundry-b1"
SHARED_GROUP = "chaos"
REPO = Path(__file__).resolve().parents[2]
GATESIM = REPO / "bench" / "chaos" / "gatesim.py"


@dataclass(frozen=True)
class Scale:
    """How big the run is and how long the faults last (seconds)."""

    gates: int = 10
    rooms: int = 40  # 5 appliances a room
    rate_per_gate: float = 2.0
    sim_speed: float = 10.0
    warmup_s: float = 15.0
    broker_down_s: float = 2.0
    gateway_down_s: float = 5.0
    gate_hold_s: float = 3.0  # the gate's link is down this long before kill -9: a full outbox
    gate_down_s: float = 20.0
    series_down_s: float = 15.0
    cutoff_s: float = 25.0
    postgres_down_s: float = 5.0
    offline_grace_s: float = 10.0
    keepalive_s: int = 5
    recover_timeout_s: float = 120.0


class ManagedProcess:
    """A child in its own session; kill -9 and stop reach its whole process group."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, signum)

    def kill9(self) -> None:
        """SIGKILL to the whole process group (the process and any child it made)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL for the group if it has not exited within `timeout`."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers of the group, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


class RestartablePostgres(Postgres):
    """tests/postgres.py's cluster, restartable on the same data directory and port."""

    settings = ("fsync=off", "max_connections=200")

    def stop_fast(self) -> None:
        """Fast shutdown (SIGINT to the postmaster): sessions are ended, nothing waits."""
        pg_ctl = str(postgres_bindir() / "pg_ctl")
        subprocess.run(
            self._as_postgres([pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
            timeout=60,
        )
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(15)

    def start_again(self, timeout: float = 30.0) -> None:
        self._launch(timeout, new_session=True)

    def stop(self) -> None:
        self.stop_fast()
        super().stop()


@dataclass
class Gate:
    gate_id: str
    workdir: Path
    process: ManagedProcess
    network: EdgeNetwork | None = None

    @property
    def outbox(self) -> Path:
        return self.workdir / "outbox.db"

    @property
    def ledger(self) -> Path:
        return self.workdir / "ledger.txt"

    def produced(self) -> int:
        """How many messages this gate's outbox has ever numbered (its sequence never reuses)."""
        return outbox_sequence(self.outbox)

    def depth(self) -> int:
        if not self.outbox.exists():
            return 0
        with contextlib.closing(sqlite3.connect(f"file:{self.outbox}?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])


def outbox_sequence(path: Path) -> int:
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    return int(row[0]) if row else 0


@dataclass
class System:
    """Every part of the run; `start()` brings them up in order, `stop()` ends them all."""

    workdir: Path
    scale: Scale
    log: Callable[[str], None] = print
    broker: Broker | None = None
    postgres: RestartablePostgres | None = None
    victoria: Victoria | None = None
    gateways: dict[str, ManagedProcess] = field(default_factory=dict)
    api_ports: dict[str, int] = field(default_factory=dict)
    gates: dict[str, Gate] = field(default_factory=dict)
    bridge: ManagedProcess | None = None
    simulator: ManagedProcess | None = None
    networks: list[EdgeNetwork] = field(default_factory=list)
    isolated: tuple[str, ...] = ()  # gates in a namespace of their own

    # --- start

    def start(self, isolated: tuple[str, ...]) -> None:
        self.isolated = isolated
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)  # PostgreSQL runs as its own user below it
        for index, _gate in enumerate(isolated):
            self.networks.append(EdgeNetwork(index + 1).create())
        port = free_port()
        extra = "".join(f"listener {port} {net.host_ip}\n" for net in self.networks)
        self.broker = Broker(self.workdir / "broker", port, extra_conf=extra)
        self.broker.start()
        self.log(f"mosquitto on :{port}")
        self.postgres = RestartablePostgres(self.workdir / "pg")
        self.postgres.start()
        self.log(f"PostgreSQL on :{self.postgres.port}")
        self.victoria = Victoria(self.workdir / "vm").start()
        self.log(f"VictoriaMetrics on :{self.victoria.port}")
        for replica in ("a", "b"):  # one after the other: the first one migrates the schema
            self.start_gateway(replica)
            self.wait_gateway(replica)
        self.log("gateways a and b up")
        self.start_bridge()
        for i in range(1, self.scale.gates + 1):
            self.start_gate(f"g{i:02d}")
        self.log(f"{self.scale.gates} gates, bridge, {self.scale.rooms * 5} appliances running")

    def env(self) -> dict[str, str]:
        env = dormguard_env()
        env["PYTHONPATH"] = str(REPO)
        return env

    def gateway_config(self, replica: str) -> Path:
        assert self.broker and self.postgres and self.victoria
        folder = self.workdir / f"gateway-{replica}"
        folder.mkdir(exist_ok=True)
        token = folder / "influx-token"
        token.write_text("chaos-token-not-a-secret\n")
        api_port = self.api_ports.setdefault(replica, free_port())
        config: dict[str, Any] = {
            "site": SITE,
            "mode": "development",
            "mqtt": {
                "host": "127.0.0.1",
                "port": self.broker.port,
                "client_id": f"dormguard-gateway-{SITE}-{replica}",
                "shared_group": SHARED_GROUP,
                "reconnect_max_s": 2.0,
                "keepalive_s": self.scale.keepalive_s,
            },
            "database": {"url": self.postgres.url},
            "timeseries": {
                "sqlite": {"path": str(folder / "series.db")},
                "influx": {
                    "url": self.victoria.url,
                    "org": SITE,
                    "bucket": "dormguard",
                    "token": {"file": str(token)},
                    "backlog_path": str(folder / "influx-backlog.db"),
                    "flush_interval_s": 0.5,
                },
            },
            "api": {"host": "127.0.0.1", "port": api_port},
            "buildings": [{"id": BUILDING}],
            "gates": [
                {"building": BUILDING, "id": f"g{i:02d}", "direction": "in"}
                for i in range(1, self.scale.gates + 1)
            ],
            "rules": {"offline_grace_s": self.scale.offline_grace_s},
            "command_signing": signing_config(),
        }
        path = folder / "gateway.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start_gateway(self, replica: str) -> None:
        config = self.gateway_config(replica)
        argv = [sys.executable, "-m", "dormguard.cli", "gateway", "--config", str(config)]
        log = self.workdir / f"gateway-{replica}" / "gateway.log"
        self.gateways[replica] = ManagedProcess(f"gateway-{replica}", argv, log, self.env()).start()

    def gateway_healthy(self, replica: str) -> bool:
        url = f"http://127.0.0.1:{self.api_ports[replica]}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200 and b'"ok"' in resp.read()
        except (urllib.error.URLError, OSError):
            return False

    def wait_gateway(self, replica: str, timeout: float = 60.0) -> float:
        """Seconds until the replica reports ok (RuntimeError when it does not)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.gateway_healthy(replica):
                return time.monotonic() - start
            if not self.gateways[replica].running:
                raise RuntimeError(f"gateway {replica} exited; see its gateway.log")
            time.sleep(0.2)
        raise RuntimeError(f"gateway {replica} not healthy within {timeout} s")

    def start_bridge(self) -> None:
        assert self.broker
        folder = self.workdir / "bridge"
        folder.mkdir(exist_ok=True)
        types = scaled_thresholds(self.scale.sim_speed)
        for params in types.values():
            params["offline_after_s"] = 30.0
        config: dict[str, Any] = {
            "site": SITE,
            "bridge_id": BRIDGE,
            "mqtt": {
                "host": "127.0.0.1",
                "port": self.broker.port,
                "reconnect_max_s": 2.0,
                "keepalive_s": self.scale.keepalive_s,
            },
            "devices": bridge_device_entries(plan_rooms(self.scale.rooms, building=BUILDING)),
            "types": types,
            "tick_s": 0.5,
            "health_s": 5.0,
            "telemetry_interval_s": 10.0,
        }
        path = folder / "devices.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        cli = [sys.executable, "-m", "dormguard.cli", "--log-level", "warning"]
        self.bridge = ManagedProcess(
            "bridge", [*cli, "devices", "--config", str(path)], folder / "bridge.log", self.env()
        ).start()
        sim = [
            *cli,
            "simulate",
            "devices",
            "--rooms",
            str(self.scale.rooms),
            "--port",
            str(self.broker.port),
            "--speed",
            str(self.scale.sim_speed),
        ]
        self.simulator = ManagedProcess(
            "simulator", sim, folder / "simulator.log", self.env()
        ).start()

    def start_gate(self, gate_id: str) -> Gate:
        assert self.broker
        gate = self.gates.get(gate_id)
        folder = self.workdir / "gates" / gate_id
        folder.mkdir(parents=True, exist_ok=True)
        network = gate.network if gate else None
        if gate is None and gate_id in self.isolated:
            network = self.networks[self.isolated.index(gate_id)]
        host = network.host_ip if network else "127.0.0.1"
        argv = [
            sys.executable,
            str(GATESIM),
            "--site",
            SITE,
            "--building",
            BUILDING,
            "--gate",
            gate_id,
            "--host",
            host,
            "--port",
            str(self.broker.port),
            "--keepalive",
            str(self.scale.keepalive_s),
            "--rate",
            str(self.scale.rate_per_gate),
            "--outbox",
            str(folder / "outbox.db"),
            "--ledger",
            str(folder / "ledger.txt"),
        ]
        if network is not None:
            argv = network.wrap(argv)
        process = ManagedProcess(gate_id, argv, folder / "gate.log", self.env()).start()
        self.gates[gate_id] = Gate(gate_id, folder, process, network)
        return self.gates[gate_id]

    # --- stop

    def stop_producing(self) -> None:
        for gate in self.gates.values():
            gate.process.signal(signal.SIGUSR1)

    def stop(self) -> None:
        """End everything this run started, whatever state it is in (never raises)."""
        steps: list[tuple[str, Callable[[], None]]] = []
        for replica, process in self.gateways.items():
            steps.append((f"gateway {replica}", process.stop))
        if self.bridge:
            steps.append(("bridge", self.bridge.stop))
        if self.simulator:
            steps.append(("simulator", self.simulator.stop))
        for gate in self.gates.values():
            steps.append((gate.gate_id, gate.process.stop))
        if self.victoria:
            steps.append(("victoria-metrics", self.victoria.stop))
        if self.postgres:
            steps.append(("postgres", self.postgres.stop))
        if self.broker:
            steps.append(("mosquitto", self.broker.stop))
        for net in self.networks:
            steps.append((net.name, net.remove))
        for name, step in steps:
            try:
                step()
            except Exception as exc:  # keep stopping the rest
                self.log(f"stopping {name} failed: {exc}")
