"""Durable outbox: ordered, persisted, kill -9 safe, refuses to write on a full disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.outbox import Outbox, OutboxCorruptError, OutboxFullError, OutboxItem

REPO_ROOT = Path(__file__).resolve().parents[2]
TOPIC = "dorm/s1/b1/gate/g1/event"
PLENTY = 10 * 1024**3


def plenty_of_disk(_folder: Path) -> int:
    return PLENTY


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "edge" / "outbox.sqlite"


@pytest.fixture
def outbox(db_path: Path) -> Iterator[Outbox]:
    ob = Outbox(db_path, disk_free=plenty_of_disk)
    ob.open()
    yield ob
    ob.close()


def payloads(items: list[OutboxItem]) -> list[bytes]:
    return [item.payload for item in items]


def test_pending_returns_many_appends_in_append_order(outbox: Outbox) -> None:
    sent = [f"event-{i}".encode() for i in range(500)]
    seqs = [outbox.append(TOPIC, p) for p in sent]

    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert payloads(outbox.pending(limit=1000)) == sent
    assert outbox.depth() == 500


def test_pending_pages_with_limit_and_after_seq(outbox: Outbox) -> None:
    seqs = [outbox.append(TOPIC, f"{i}".encode()) for i in range(10)]

    first = outbox.pending(4)
    rest = outbox.pending(100, after_seq=first[-1].seq)

    assert [i.seq for i in first] == seqs[:4]
    assert [i.seq for i in rest] == seqs[4:]


def test_item_keeps_topic_payload_qos_retain_and_creation_time(db_path: Path) -> None:
    with Outbox(db_path, disk_free=plenty_of_disk, clock=lambda: 1_700_000_000.5) as ob:
        seq = ob.append("dorm/s1/b1/gate/g1/availability", b"\x00\xffonline", qos=0, retain=True)
        [item] = ob.pending()

    assert item == OutboxItem(
        seq=seq,
        topic="dorm/s1/b1/gate/g1/availability",
        payload=b"\x00\xffonline",
        qos=0,
        retain=True,
        created_at=1_700_000_000.5,
    )


def test_removed_items_stay_removed_and_the_rest_persist_after_reopen(db_path: Path) -> None:
    with Outbox(db_path, disk_free=plenty_of_disk) as ob:
        seqs = [ob.append(TOPIC, f"event-{i}".encode()) for i in range(5)]
        ob.remove(seqs[0])
        ob.remove(seqs[2])
        ob.remove(seqs[2])  # removing twice is harmless: an ack may be delivered twice

    with Outbox(db_path, disk_free=plenty_of_disk) as reopened:
        assert payloads(reopened.pending()) == [b"event-1", b"event-3", b"event-4"]
        assert reopened.depth() == 3


def test_remove_of_unknown_seq_is_ignored(outbox: Outbox) -> None:
    outbox.append(TOPIC, b"a")

    outbox.remove(999)

    assert outbox.depth() == 1


def test_kill_9_after_appends_leaves_every_committed_item_readable_in_order(
    db_path: Path,
) -> None:
    count = 200
    script = textwrap.dedent(
        """
        import os, signal, sys
        from pathlib import Path
        from edge.outbox import Outbox

        ob = Outbox(Path(sys.argv[1]))
        ob.open()
        for i in range(int(sys.argv[2])):
            ob.append("dorm/s1/b1/gate/g1/event", f"event-{i}".encode())
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(db_path), str(count)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()

    with Outbox(db_path, disk_free=plenty_of_disk) as ob:
        items = ob.pending(limit=count + 10)

    assert payloads(items) == [f"event-{i}".encode() for i in range(count)]
    assert [i.seq for i in items] == sorted(i.seq for i in items)


def test_sequence_never_reuses_a_removed_number_after_reopen(db_path: Path) -> None:
    with Outbox(db_path, disk_free=plenty_of_disk) as ob:
        seqs = [ob.append(TOPIC, b"x") for _ in range(3)]
        for seq in seqs:
            ob.remove(seq)
        assert ob.depth() == 0

    with Outbox(db_path, disk_free=plenty_of_disk) as reopened:
        next_seq = reopened.append(TOPIC, b"y")

    assert next_seq > max(seqs)


def test_full_disk_raises_outbox_full_naming_path_free_and_threshold_and_stores_nothing(
    db_path: Path,
) -> None:
    free = {"bytes": 10 * 1024 * 1024}
    ob = Outbox(db_path, min_free_bytes=50 * 1024 * 1024, disk_free=lambda _f: free["bytes"])
    with ob:
        with pytest.raises(OutboxFullError) as excinfo:
            ob.append(TOPIC, b"event")

        message = str(excinfo.value)
        assert str(db_path) in message
        assert str(10 * 1024 * 1024) in message
        assert str(50 * 1024 * 1024) in message
        assert ob.depth() == 0

        free["bytes"] = PLENTY  # the operator frees space: writes are accepted again
        ob.append(TOPIC, b"after")
        assert payloads(ob.pending()) == [b"after"]


def test_free_space_is_checked_on_the_outbox_folder(db_path: Path) -> None:
    asked: list[Path] = []

    def disk_free(folder: Path) -> int:
        asked.append(folder)
        return PLENTY

    with Outbox(db_path, disk_free=disk_free) as ob:
        ob.append(TOPIC, b"event")

    assert asked == [db_path.parent]


def test_sqlite_full_is_reported_as_outbox_full_and_stores_nothing(outbox: Outbox) -> None:
    outbox.append(TOPIC, b"small")
    conn = outbox._conn  # a real SQLite size cap stands in for a full disk
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")

    with pytest.raises(OutboxFullError, match="full"):
        outbox.append(TOPIC, b"x" * 200_000)

    assert payloads(outbox.pending()) == [b"small"]


def test_corrupt_file_gives_clear_error_naming_the_path_and_is_left_untouched(
    db_path: Path,
) -> None:
    db_path.parent.mkdir(parents=True)
    garbage = b"this is not a sqlite database\n" * 200
    db_path.write_bytes(garbage)

    with pytest.raises(OutboxCorruptError) as excinfo:
        Outbox(db_path, disk_free=plenty_of_disk).open()

    assert str(db_path) in str(excinfo.value)
    assert "not a valid SQLite database" in str(excinfo.value)
    assert db_path.read_bytes() == garbage


def test_open_creates_missing_parent_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "outbox.sqlite"

    with Outbox(path, disk_free=plenty_of_disk) as ob:
        ob.append(TOPIC, b"event")

    assert path.is_file()


def test_constructor_touches_nothing_on_disk(db_path: Path) -> None:
    Outbox(db_path)

    assert not db_path.parent.exists()


def test_use_before_open_raises_naming_the_path(db_path: Path) -> None:
    ob = Outbox(db_path, disk_free=plenty_of_disk)

    with pytest.raises(RuntimeError, match="not open"):
        ob.append(TOPIC, b"event")
    with pytest.raises(RuntimeError, match=str(db_path.name)):
        ob.depth()


def test_oldest_age_is_none_when_empty_and_measures_the_oldest_item(db_path: Path) -> None:
    now = {"t": 1_000.0}
    with Outbox(db_path, disk_free=plenty_of_disk, clock=lambda: now["t"]) as ob:
        assert ob.oldest_age(now=1_000.0) is None
        first = ob.append(TOPIC, b"first")
        now["t"] = 1_030.0
        ob.append(TOPIC, b"second")

        assert ob.oldest_age(now=1_045.0) == 45.0
        ob.remove(first)
        assert ob.oldest_age(now=1_045.0) == 15.0


def test_concurrent_append_and_remove_lose_nothing_and_keep_order(outbox: Outbox) -> None:
    count = 300
    expected = [f"event-{i}".encode() for i in range(count)]
    seen: list[bytes] = []
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            for payload in expected:
                outbox.append(TOPIC, payload)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    def consume() -> None:
        last = 0
        deadline = time.monotonic() + 10.0
        try:
            while len(seen) < count and time.monotonic() < deadline:
                for item in outbox.pending(50, after_seq=last):
                    seen.append(item.payload)
                    last = item.seq
                    outbox.remove(item.seq)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=15)

    assert errors == []
    assert seen == expected
    assert outbox.depth() == 0


def test_invalid_qos_and_limit_are_rejected(outbox: Outbox) -> None:
    with pytest.raises(ValueError, match="qos"):
        outbox.append(TOPIC, b"event", qos=3)
    with pytest.raises(ValueError, match="limit"):
        outbox.pending(0)
    assert outbox.depth() == 0
