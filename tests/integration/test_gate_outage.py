"""Durability end to end: broker outage plus kill -9 of the gate daemon loses no access event.

The daemon runs as a real `dormguard gate` process; card reads arrive through its keyboard-wedge
reader on stdin, each one becoming an access event. The broker is stopped, the daemon killed
with SIGKILL while events wait in its outbox, then both restart.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.broker import Broker, Collector
from tests.gatekit import gate_config, make_gallery, save_gallery, spawn_gate, write_key

pytestmark = pytest.mark.slow

CARDS = 30  # card users; three rounds of reads


def _start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return spawn_gate(config, log, stdin_pipe=True)  # type: ignore[no-any-return]


def _feed(proc: subprocess.Popen[bytes], indices: range) -> None:
    assert proc.stdin is not None
    for i in indices:
        proc.stdin.write(f"CA{i:06X}\n".encode())
    proc.stdin.flush()


def _outbox_depth(path: Path) -> int:
    try:
        with sqlite3.connect(path, timeout=5) as db:
            tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
            table = next(t for t in tables if t != "sqlite_sequence")
            return int(db.execute(f"select count(*) from {table}").fetchone()[0])
    except sqlite3.Error:
        return -1


def _wait(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_events_survive_broker_outage_and_kill_9_exactly_once_in_order(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "mq")
    broker.start()
    key = write_key(tmp_path / "gallery.key")
    save_gallery(tmp_path / "gallery.bin", key, make_gallery(extra_cards=3 * CARDS))
    config = gate_config(
        tmp_path,
        port=broker.port,
        source={"kind": "folder", "target": str(tmp_path / "no-frames")},
        key_file=tmp_path / "gallery.key",
        gallery_path=tmp_path / "gallery.bin",
        credentials={"card_mqtt": False, "keyboard_wedge": True},
    )
    log = tmp_path / "gate.log"
    collector = Collector(broker.port, "dorm/campus1/b1/gate/g1/event", client_id="gw").start()
    proc = _start_daemon(config, log)
    try:
        # Round 1: broker up.
        _feed(proc, range(CARDS))
        got = collector.wait_for(lambda m: len(m) >= CARDS, timeout=60)
        assert len(got) >= CARDS, log.read_text()[-3000:]

        # Round 2: broker down; events pile up in the outbox; then kill -9.
        first_session = collector.snapshot()
        collector.stop()
        broker.stop()
        _feed(proc, range(CARDS, 2 * CARDS))
        assert _wait(lambda: _outbox_depth(tmp_path / "outbox.db") >= CARDS, 30), log.read_text()[
            -3000:
        ]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

        # Round 3: broker and daemon back; the outbox is replayed before new events.
        broker.start()
        collector = Collector(broker.port, "dorm/campus1/b1/gate/g1/event", client_id="gw").start()
        proc = _start_daemon(config, log)
        _feed(proc, range(2 * CARDS, 3 * CARDS))
        collector.wait_for(lambda m: len({p for _, p, _ in m}) >= 2 * CARDS, timeout=60)
        second_session = collector.snapshot()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        collector.stop()
        broker.stop()

    # Everything received across both sessions of the subscriber, deduplicated by event id.
    seen: dict[str, dict] = {}  # type: ignore[type-arg]
    received = [json.loads(p) for _, p, _ in first_session + second_session]
    for event in received:
        seen.setdefault(event["event_id"], event)
    persons = [e["person_id"] for e in seen.values()]
    assert persons == [f"c{i:04d}" for i in range(3 * CARDS)], log.read_text()[-3000:]
    assert all(e["decision"] == "granted" and e["method"] == "card" for e in seen.values())
    seqs = [e["seq"] for e in seen.values()]
    assert seqs == list(range(1, 3 * CARDS + 1)), "outbox sequence must have no gap or reorder"
    assert _outbox_depth(tmp_path / "outbox.db") == 0
