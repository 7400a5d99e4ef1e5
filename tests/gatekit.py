"""Builders for gate tests: keys, galleries from the sample photos, config files, a fake outbox."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from contracts.access import Person, PersonKind
from contracts.gallery import Gallery
from contracts.gallery_crypto import generate_key, load_key
from contracts.registry import parse_message
from edge.gate.gallery import GalleryStore
from tests.keys import command_auth
from tests.photos import sample_photos_dir

if TYPE_CHECKING:
    from edge.gate.daemon import GateDaemon

ENROLLED = "s-obama"  # enrolled from obama.jpg; other photos of him are the probes
CARD_HOLDER = "s-card"


def write_key(path: Path) -> bytes:
    path.write_text(generate_key() + "\n")
    path.chmod(0o600)
    return load_key(key_file=path, key_env=None)


_ENCODING_CACHE: dict[str, np.ndarray] = {}


def encoding_of(photo: str) -> np.ndarray:
    """The real 128-d encoding of a sample photo (cached per test session)."""
    if photo not in _ENCODING_CACHE:
        from faces.engine import photo_engine
        from faces.images import read_image

        engine = photo_engine()
        image = read_image(str(sample_photos_dir() / photo))
        det = engine.detect(image)
        _ENCODING_CACHE[photo] = engine.encode(det.rgb, det.boxes[:1])[0]
    return _ENCODING_CACHE[photo]


def people(building: str = "b1", extra_cards: int = 0) -> dict[str, Person]:
    """The test population: one face-enrolled student, one card holder, optional card users."""
    result = {
        ENROLLED: Person(ENROLLED, buildings=frozenset({building})),
        CARD_HOLDER: Person(
            CARD_HOLDER, buildings=frozenset({building}), card_uids=frozenset({"04A1B2C3"})
        ),
        "v-expired": Person(
            "v-expired",
            kind=PersonKind.VISITOR,
            buildings=frozenset({building}),
            valid_until=datetime.now(UTC) - timedelta(days=1),
            card_uids=frozenset({"0BADC0DE"}),
        ),
    }
    for i in range(extra_cards):
        pid = f"c{i:04d}"
        result[pid] = Person(
            pid, buildings=frozenset({building}), card_uids=frozenset({f"CA{i:06X}"})
        )
    return result


def make_gallery(version: int = 1, *, extra_cards: int = 0) -> Gallery:
    """A gallery with the enrolled student's template from obama.jpg."""
    enc = encoding_of("obama.jpg")
    return Gallery(version, people(extra_cards=extra_cards), (ENROLLED,), enc.reshape(1, 128))


def gate_config(
    tmp: Path,
    *,
    port: int,
    source: dict[str, Any],
    key_file: Path,
    gallery_path: Path,
    **overrides: Any,
) -> Path:
    """Write a gate YAML config and return its path."""
    config: dict[str, Any] = {
        "site": "campus1",
        "building": "b1",
        "gate": {"id": "g1", "direction": "in"},
        "mqtt": {"host": "127.0.0.1", "port": port},
        "source": source,
        "gallery": {"path": str(gallery_path), "key": {"file": str(key_file)}},
        "outbox": {"path": str(tmp / "outbox.db"), "min_free_mb": 1},
        "command_auth": command_auth(),
        "heartbeat_s": 0.5,
        "door": {"kind": "simulated", "open_time_s": 1.0},
    }
    config.update(overrides)
    path = tmp / "gate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def save_gallery(path: Path, key: bytes, gallery: Gallery) -> None:
    GalleryStore(path, key).save(gallery)


def dormguard_env() -> dict[str, str]:
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return env


class ScriptedSource:
    """A healthy source that never delivers: the test pushes frames through process_frame."""

    def start(self) -> None:
        pass

    def latest(self, timeout: float):  # type: ignore[no-untyped-def]
        import time

        time.sleep(min(timeout, 0.01))

    def status(self):  # type: ignore[no-untyped-def]
        from edge.gate.frames import SourceStatus

        return SourceStatus(True, "scripted", 0, 0, 0, None)

    def stop(self) -> None:
        pass


def spawn_gate(config: Path, log: Path, *, stdin_pipe: bool = False):  # type: ignore[no-untyped-def]
    """A real `dormguard gate` process, output appended to `log`."""
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "dormguard.cli", "gate", "--config", str(config)],
        stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=dormguard_env(),
    )


def stop_process(proc: Any, timeout: float = 15.0) -> None:
    """Stop a spawned process (``None`` or finished: nothing): SIGTERM, SIGKILL if it hangs."""
    import subprocess

    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class RecordingOutbox:
    """Stands in for the durable publisher: keeps what was sent, numbered in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def send(self, topic: str, payload: Callable[[int | None], bytes]) -> None:
        self.sent.append((topic, payload(len(self.sent) + 1)))

    def parsed(self) -> list[object]:
        """The messages sent, parsed by their topics."""
        return [parse_message(topic, payload) for topic, payload in self.sent]


def start_offline(daemon: GateDaemon) -> GateDaemon:
    """Start what ``process_frame`` needs, without broker, camera or publisher thread (tests
    and benches that feed frames by hand): the models, the encoder pool, the gallery, the door,
    the probe store."""
    daemon.engine.start()  # type: ignore[attr-defined]
    if daemon.encoder is not None:
        daemon.encoder.start()
    daemon.gallery_sync.load()
    daemon.door.start()
    if daemon.probes is not None:
        daemon.probes.open()
    return daemon


def stop_offline(daemon: GateDaemon) -> None:
    """Stop what :func:`start_offline` started and close the outbox."""
    daemon.door.stop()
    if daemon.probes is not None:
        daemon.probes.close()
    if daemon.encoder is not None:
        daemon.encoder.stop()
    daemon.publisher.outbox.close()
