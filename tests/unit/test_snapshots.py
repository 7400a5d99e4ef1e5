"""Encrypted snapshots of denied attempts: off by default, 0600, path-safe, purged on retention."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from edge.gate.snapshots import SnapshotError, SnapshotStore

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
CST = timezone(timedelta(hours=8))
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8 + b"\xff\xd9"


def store(directory: Path, *, enabled: bool = True, retention_s: float = 3600.0) -> SnapshotStore:
    return SnapshotStore(directory, key=KEY, retention_s=retention_s, enabled=enabled)


def test_disabled_by_default_and_writes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "snaps"
    snapshots = SnapshotStore(directory, key=KEY, retention_s=3600.0)
    assert snapshots.enabled is False
    assert snapshots.save(JPEG, "ev-1", NOW) is None
    assert not directory.exists()


def test_constructor_touches_nothing(tmp_path: Path) -> None:
    store(tmp_path / "snaps")
    assert list(tmp_path.iterdir()) == []


def test_saved_snapshot_is_encrypted_private_and_loads_back(tmp_path: Path) -> None:
    snapshots = store(tmp_path / "snaps")
    path = snapshots.save(JPEG, "3f2a9c0d4e5b6a7f8091a2b3c4d5e6f7", NOW)
    assert path is not None
    assert path == tmp_path / "snaps" / "20250301T120000Z_3f2a9c0d4e5b6a7f8091a2b3c4d5e6f7.snap"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    blob = path.read_bytes()
    assert blob[:4] == b"DGS1"
    assert JPEG[:16] not in blob
    assert bytes(range(64)) not in blob
    assert snapshots.load(path) == JPEG
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_file_name_uses_utc_time(tmp_path: Path) -> None:
    at = datetime(2025, 3, 2, 7, 5, 9, 999_999, tzinfo=CST)
    path = store(tmp_path).save(JPEG, "ev-1", at)
    assert path is not None
    assert path.name == "20250301T230509Z_ev-1.snap"


@pytest.mark.parametrize(
    "event_id",
    ["../../etc/passwd", "a/b", "..", ".hidden", "", "a\x00b", "ev 1", "x" * 129, "é"],
)
def test_event_id_that_could_escape_or_confuse_the_directory_is_refused(
    tmp_path: Path, event_id: str
) -> None:
    directory = tmp_path / "snaps"
    with pytest.raises(ValueError, match="invalid event_id"):
        store(directory).save(JPEG, event_id, NOW)
    assert not directory.exists()
    assert list(tmp_path.iterdir()) == []


def test_naive_datetimes_are_refused(tmp_path: Path) -> None:
    snapshots = store(tmp_path)
    with pytest.raises(ValueError, match="timezone-aware"):
        snapshots.save(JPEG, "ev-1", datetime(2025, 3, 1, 12, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        snapshots.purge(datetime(2025, 3, 1, 12, 0))


def test_empty_image_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-empty bytes"):
        store(tmp_path).save(b"", "ev-1", NOW)


def test_wrong_key_is_refused(tmp_path: Path) -> None:
    path = store(tmp_path).save(JPEG, "ev-1", NOW)
    assert path is not None
    other = SnapshotStore(tmp_path, key=OTHER_KEY, retention_s=3600.0, enabled=True)
    with pytest.raises(SnapshotError, match=f"wrong key, renamed or tampered snapshot file {path}"):
        other.load(path)


def test_renamed_snapshot_cannot_pass_as_another_event(tmp_path: Path) -> None:
    snapshots = store(tmp_path)
    path = snapshots.save(JPEG, "ev-1", NOW)
    assert path is not None
    renamed = path.rename(tmp_path / "20250301T120000Z_ev-2.snap")
    with pytest.raises(SnapshotError, match="renamed or tampered"):
        snapshots.load(renamed)


def test_flipped_byte_is_detected(tmp_path: Path) -> None:
    snapshots = store(tmp_path)
    path = snapshots.save(JPEG, "ev-1", NOW)
    assert path is not None
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="tampered"):
        snapshots.load(path)


@pytest.mark.parametrize(
    ("content", "message"), [(b"DGS1\x00", "truncated: 5 bytes"), (b"x" * 64, "bad magic")]
)
def test_corrupt_snapshot_names_the_path(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "20250301T120000Z_ev-1.snap"
    path.write_bytes(content)
    with pytest.raises(SnapshotError, match=f"corrupt snapshot file {path}: {message}"):
        store(tmp_path).load(path)


def test_purge_deletes_exactly_the_snapshots_older_than_retention(tmp_path: Path) -> None:
    snapshots = store(tmp_path, retention_s=3600.0)
    old = [
        snapshots.save(JPEG, "old-1", NOW - timedelta(days=3)),
        snapshots.save(JPEG, "old-2", NOW - timedelta(seconds=3601)),
    ]
    kept = [
        snapshots.save(JPEG, "new-1", NOW - timedelta(seconds=3599)),
        snapshots.save(JPEG, "new-2", NOW - timedelta(minutes=1)),
        snapshots.save(JPEG, "new-3", NOW),
    ]
    unrelated = tmp_path / "README.txt"
    unrelated.write_text("not a snapshot")
    os.utime(unrelated, (0, 0))

    assert snapshots.purge(NOW) == 2
    for path in old:
        assert path is not None and not path.exists()
    for path in kept:
        assert path is not None and path.exists()
    assert unrelated.exists()
    assert snapshots.purge(NOW) == 0


def test_purge_falls_back_to_mtime_for_unparseable_names(tmp_path: Path) -> None:
    snapshots = store(tmp_path, retention_s=3600.0)
    old_unnamed = tmp_path / "copied.snap"
    old_unnamed.write_bytes(b"DGS1" + bytes(40))
    old_time = (NOW - timedelta(hours=5)).timestamp()
    os.utime(old_unnamed, (old_time, old_time))
    new_unnamed = tmp_path / "other.snap"
    new_unnamed.write_bytes(b"DGS1" + bytes(40))
    new_time = (NOW - timedelta(minutes=5)).timestamp()
    os.utime(new_unnamed, (new_time, new_time))
    leftover = tmp_path / ".snap-abc123.tmp"  # an interrupted save
    leftover.write_bytes(b"DGS1" + bytes(40))
    os.utime(leftover, (old_time, old_time))

    assert snapshots.purge(NOW) == 2
    assert not old_unnamed.exists()
    assert not leftover.exists()
    assert new_unnamed.exists()


def test_purge_runs_even_when_saving_is_disabled(tmp_path: Path) -> None:
    """Turning snapshots off must not keep earlier ones forever."""
    store(tmp_path, enabled=True).save(JPEG, "ev-1", NOW - timedelta(days=2))
    assert store(tmp_path, enabled=False).purge(NOW) == 1
    assert list(tmp_path.iterdir()) == []


def test_purge_of_missing_directory_is_zero(tmp_path: Path) -> None:
    assert store(tmp_path / "nothing-here").purge(NOW) == 0


def test_purge_with_aware_non_utc_now(tmp_path: Path) -> None:
    snapshots = store(tmp_path, retention_s=60.0)
    snapshots.save(JPEG, "ev-1", NOW - timedelta(seconds=61))
    assert snapshots.purge(NOW.astimezone(CST)) == 1
