"""Gallery updates at the gate: version first, then signature, then content; every update acked."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from contracts.access import Direction, GateInfo, Person
from contracts.gallery import Gallery
from contracts.gallery_crypto import encrypt_gallery
from contracts.models import GalleryAck, GalleryUpdate, SecurityEvent
from contracts.signing import (
    MessageSigner,
    MessageVerifier,
    generate_private_key_text,
    parse_private_key,
)
from edge.gate.gallery import GalleryStore
from edge.gate.gallery_sync import GallerySync
from edge.gate.reporting import GateReporter
from edge.mqtt import ReceivedMessage
from tests.gatekit import RecordingOutbox

KEY = bytes(range(32))
GATE = GateInfo("campus1", "b1", "g1", Direction.IN)
TOPIC = "dorm/campus1/b1/gate/g1/gallery"
SIGNER = MessageSigner(parse_private_key(generate_private_key_text()))


def acks(outbox: RecordingOutbox) -> list[tuple[bool, int, str | None, list[str]]]:
    return [
        (m.applied, m.version, m.error, m.erased_person_ids)
        for m in outbox.parsed()
        if isinstance(m, GalleryAck)
    ]


def attacks(outbox: RecordingOutbox) -> list[str]:
    return [m.kind for m in outbox.parsed() if isinstance(m, SecurityEvent)]


def gallery(version: int, *with_faces: str) -> Gallery:
    """Two people with cards; templates (random, unit length) for those named."""
    people = {
        pid: Person(pid, buildings=frozenset({"b1"}), card_uids=frozenset({f"C{i}"}))
        for i, pid in enumerate(("s-1", "s-2"))
    }
    rng = np.random.default_rng(version)
    encodings = rng.normal(size=(len(with_faces), 128)).astype(np.float32)
    encodings /= np.linalg.norm(encodings, axis=1, keepdims=True)
    return Gallery(version, people, tuple(with_faces), encodings)


def update(version: int, blob: bytes, *, signed: bool = True) -> ReceivedMessage:
    return encoded_update(version, base64.b64encode(blob).decode(), signed=signed)


def encoded_update(version: int, blob_b64: str, *, signed: bool = True) -> ReceivedMessage:
    message = GalleryUpdate(
        producer="gateway", version=version, correlation_id=f"u{version}", blob_b64=blob_b64
    )
    payload = SIGNER.sign(TOPIC, message) if signed else message.to_bytes()
    return ReceivedMessage(TOPIC, payload, 1, True)


def sync_with(path: Path, stored: Gallery | None) -> tuple[GallerySync, RecordingOutbox, list[int]]:
    store = GalleryStore(path, KEY)
    if stored is not None:
        store.install(encrypt_gallery(stored, KEY))
    outbox = RecordingOutbox()
    changes: list[int] = []
    sync = GallerySync(
        store,
        MessageVerifier.from_texts([SIGNER.public_key]),
        GateReporter("gate:campus1/b1/g1", GATE, outbox),  # type: ignore[arg-type]
        on_change=lambda: changes.append(1),
    )
    sync.load()
    return sync, outbox, changes


def test_stored_gallery_is_in_use_after_load(tmp_path: Path) -> None:
    sync, _, changes = sync_with(tmp_path / "gallery.bin", gallery(3, "s-1"))
    in_use = sync.in_use
    assert (in_use.gallery.version, in_use.face_error) == (3, None)
    assert in_use.index is not None and in_use.index.size == 1
    assert changes == [1], "the tracker is reset when a gallery comes into use"


def test_newer_signed_update_is_installed_and_acked_with_the_erased_people(
    tmp_path: Path,
) -> None:
    sync, outbox, _ = sync_with(tmp_path / "gallery.bin", gallery(3, "s-1", "s-2"))
    sync.on_update(update(4, encrypt_gallery(gallery(4, "s-2"), KEY)))
    assert sync.version == 4
    assert acks(outbox) == [(True, 4, None, ["s-1"])]


def test_retained_copy_of_the_version_in_use_is_acked_without_its_signature(
    tmp_path: Path,
) -> None:
    """Delivered again on every reconnect; it may predate a key rotation."""
    sync, outbox, changes = sync_with(tmp_path / "gallery.bin", gallery(3, "s-1"))
    sync.on_update(update(3, b"not even looked at", signed=False))
    assert acks(outbox) == [(True, 3, None, [])]
    assert (attacks(outbox), changes) == ([], [1])


def test_older_update_is_refused_naming_the_version_in_use(tmp_path: Path) -> None:
    sync, outbox, _ = sync_with(tmp_path / "gallery.bin", gallery(3, "s-1"))
    sync.on_update(update(2, encrypt_gallery(gallery(2, "s-1"), KEY)))
    assert sync.version == 3
    assert acks(outbox) == [(False, 3, "version 2 is older than version 3 in use", [])]


def test_unsigned_newer_update_is_refused_as_an_attack(tmp_path: Path) -> None:
    sync, outbox, _ = sync_with(tmp_path / "gallery.bin", gallery(3, "s-1"))
    sync.on_update(update(4, encrypt_gallery(gallery(4), KEY), signed=False))
    assert sync.version == 3
    [(applied, version, error, _)] = acks(outbox)
    assert (applied, version) == (False, 3) and error is not None and error.startswith("refused:")
    assert attacks(outbox) == ["unsigned"]


@pytest.mark.parametrize(
    ("blob_b64", "fragment"),
    [
        ("***", "blob_b64 is not valid base64"),
        (base64.b64encode(b"DGG1" + bytes(64)).decode(), "wrong key or tampered"),
    ],
    ids=["not-base64", "undecryptable"],
)
def test_bad_content_keeps_the_gallery_in_use_and_is_acked_with_the_error(
    tmp_path: Path, blob_b64: str, fragment: str
) -> None:
    sync, outbox, _ = sync_with(tmp_path / "gallery.bin", gallery(3, "s-1"))
    sync.on_update(encoded_update(4, blob_b64))
    assert sync.version == 3
    [(applied, version, error, _)] = acks(outbox)
    assert (applied, version) == (False, 3) and error is not None and fragment in error


def test_malformed_update_is_rejected_and_counted_without_an_ack(tmp_path: Path) -> None:
    sync, outbox, _ = sync_with(tmp_path / "gallery.bin", gallery(3, "s-1"))
    sync.on_update(ReceivedMessage(TOPIC, b"[1, 2, 3]", 1, False))
    assert (outbox.sent, sync.reporter.rejected) == ([], 1)


def test_unusable_gallery_disables_faces_but_keeps_the_access_list_for_cards(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gallery.bin"
    sync_with(path, gallery(3, "s-1"))
    path.write_bytes(b"DGG1 garbage")
    sync, _, changes = sync_with(path, None)
    in_use = sync.in_use
    assert in_use.face_error is not None and in_use.index is None
    assert (in_use.gallery.version, sorted(in_use.gallery.people)) == (3, ["s-1", "s-2"])
    assert in_use.gallery.template_owners == ()
    assert changes == []


def test_any_valid_version_repairs_an_unusable_gallery(tmp_path: Path) -> None:
    path = tmp_path / "gallery.bin"
    sync_with(path, gallery(3, "s-1"))
    path.write_bytes(b"DGG1 garbage")
    sync, outbox, _ = sync_with(path, None)
    sync.on_update(update(3, encrypt_gallery(gallery(3, "s-1"), KEY)))
    assert (sync.version, sync.face_error) == (3, None)
    assert acks(outbox) == [(True, 3, None, [])]
