"""Encrypted gallery: JSON schema, AES-GCM file format, keys and the atomic on-disk store."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contracts.access import Person, PersonKind, PersonStatus, TimeWindow
from contracts.gallery import Gallery, GalleryError, gallery_from_json, gallery_to_json
from contracts.gallery_crypto import (
    GalleryKeyError,
    decrypt_gallery,
    encrypt_gallery,
    generate_key,
    load_key,
)
from edge.gate.gallery import GalleryStore

CST = timezone(timedelta(hours=8))
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def make_gallery(version: int = 1, seed: int = 0) -> Gallery:
    rng = np.random.default_rng(seed)
    people = [
        Person(
            person_id="s-0001",
            buildings=frozenset({"B2", "B1"}),
            windows=(
                TimeWindow(days=frozenset({4, 0, 1, 2, 3}), start=time(6, 30), end=time(23, 0)),
                TimeWindow(days=frozenset({5, 6}), start=time(22, 0), end=time(2, 15)),
            ),
            card_uids=frozenset({"04A1B2C3", "04FFEE01"}),
        ),
        Person(
            person_id="v-0042",
            kind=PersonKind.VISITOR,
            buildings=frozenset({"B1"}),
            gates=frozenset({"b1-main"}),
            valid_from=datetime(2025, 3, 1, 8, 0, tzinfo=CST),
            valid_until=datetime(2025, 3, 1, 18, 0, tzinfo=CST),
        ),
        # Card/PIN-only student: in the access list, no face template.
        Person(
            person_id="s-0002",
            status=PersonStatus.SUSPENDED,
            buildings=frozenset({"B1"}),
            card_uids=frozenset({"0499AA00"}),
            pin_hash="$scrypt$n=16384$abc$def",
        ),
        Person(
            person_id="t-0007",
            kind=PersonKind.STAFF,
            status=PersonStatus.GRADUATED,
            valid_until=datetime(2024, 7, 1, tzinfo=UTC),
        ),
    ]
    encodings = rng.normal(0.0, 0.1, size=(4, 128)).astype(np.float32)
    # Values that a lossy text format would mangle.
    encodings[0, :4] = np.array([-0.0, 1e-45, np.finfo(np.float32).max, 0.1], np.float32)
    return Gallery(
        version=version,
        people={p.person_id: p for p in people},
        template_owners=("s-0001", "s-0001", "v-0042", "t-0007"),
        encodings=encodings,
    )


def assert_same_gallery(a: Gallery, b: Gallery) -> None:
    assert a.version == b.version
    assert dict(a.people) == dict(b.people)
    assert a.template_owners == b.template_owners
    assert a.encodings.dtype == b.encodings.dtype == np.float32
    assert a.encodings.shape == b.encodings.shape
    assert a.encodings.tobytes() == b.encodings.tobytes()


def gallery_doc(g: Gallery | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(gallery_to_json(g or make_gallery()))
    return doc


def dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


# --- the value object ---------------------------------------------------------------------------


def test_empty_gallery_is_version_zero_with_no_people_or_templates() -> None:
    g = Gallery.empty()
    assert g.version == 0
    assert dict(g.people) == {}
    assert g.template_owners == ()
    assert g.encodings.shape == (0, 128)
    assert g.encodings.dtype == np.float32


def test_template_owner_missing_from_people_is_rejected() -> None:
    with pytest.raises(ValueError, match="template owners not in people: 'ghost'"):
        Gallery(
            version=1,
            people={},
            template_owners=("ghost",),
            encodings=np.zeros((1, 128), np.float32),
        )


@pytest.mark.parametrize(
    ("encodings", "message"),
    [
        (np.zeros((1, 128), np.float64), "float32"),
        (np.zeros((1, 127), np.float32), r"shape \(N, 128\)"),
        (np.zeros((2, 128), np.float32), "2 encodings but 1 template owners"),
        (np.full((1, 128), np.nan, np.float32), "NaN"),
    ],
)
def test_encodings_must_be_finite_float32_rows_matching_owners(
    encodings: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Gallery(
            version=1,
            people={"a": Person(person_id="a")},
            template_owners=("a",),
            encodings=encodings,
        )


def test_people_key_must_match_person_id() -> None:
    with pytest.raises(ValueError, match="does not match its person_id"):
        Gallery(
            version=1,
            people={"a": Person(person_id="b")},
            template_owners=(),
            encodings=np.zeros((0, 128), np.float32),
        )


def test_gallery_encodings_are_read_only() -> None:
    g = make_gallery()
    with pytest.raises(ValueError):
        g.encodings[0, 0] = 1.0


# --- JSON -------------------------------------------------------------------------------------


def test_json_round_trip_keeps_people_and_templates_bit_for_bit() -> None:
    g = make_gallery(version=17)
    back = gallery_from_json(gallery_to_json(g))
    assert_same_gallery(back, g)
    assert back == g
    assert back.people["v-0042"].valid_until == datetime(2025, 3, 1, 18, 0, tzinfo=CST)
    assert back.people["s-0001"].windows[1].end == time(2, 15)
    assert back.people["s-0002"].card_uids == frozenset({"0499AA00"})
    assert "s-0002" not in back.template_owners


def test_json_uses_documented_schema() -> None:
    doc = gallery_doc(make_gallery(version=5))
    assert doc["format"] == 1
    assert doc["version"] == 5
    assert [p["person_id"] for p in doc["people"]] == ["s-0001", "s-0002", "t-0007", "v-0042"]
    student = doc["people"][0]
    assert student == {
        "person_id": "s-0001",
        "status": "active",
        "kind": "student",
        "buildings": ["B1", "B2"],
        "gates": [],
        "windows": [
            {"days": [0, 1, 2, 3, 4], "start": "06:30", "end": "23:00"},
            {"days": [5, 6], "start": "22:00", "end": "02:15"},
        ],
        "valid_from": None,
        "valid_until": None,
        "card_uids": ["04A1B2C3", "04FFEE01"],
        "pin_hash": None,
    }
    assert doc["people"][3]["valid_until"] == "2025-03-01T18:00:00+08:00"
    first = doc["templates"][0]
    assert first["person_id"] == "s-0001"
    raw = base64.b64decode(first["encoding"])
    assert raw == make_gallery().encodings[0].astype("<f4").tobytes()


def test_json_output_is_deterministic() -> None:
    assert gallery_to_json(make_gallery()) == gallery_to_json(make_gallery())


def test_empty_gallery_round_trips() -> None:
    assert_same_gallery(gallery_from_json(gallery_to_json(Gallery.empty())), Gallery.empty())


def _set(path: str, value: Any) -> Any:
    """Return a mutator that sets doc[path] (dotted, [i] indices) to value."""

    def mutate(doc: dict[str, Any]) -> None:
        parts = path.replace("]", "").replace("[", ".").split(".")
        target: Any = doc
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = parts[-1]
        if value is _DELETE:
            del target[last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


_DELETE = object()
_NAN_ENCODING = base64.b64encode(np.full(128, np.nan, "<f4").tobytes()).decode()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            _set("people[3].status", "expelled"),
            "people[3].status: 'expelled' is not one of active, suspended, graduated",
        ),
        (_set("people[1].kind", 3), "people[1].kind: 3 is not one of student, staff, visito"),
        (_set("people[0].pin_hash", _DELETE), "people[0]: missing field 'pin_hash'"),
        (_set("people[0].nickname", "x"), "people[0]: unknown field 'nickname'"),
        (_set("people[0].person_id", ""), "people[0].person_id: must not be empty"),
        (_set("people[2].person_id", "s-0001"), "people[2].person_id: duplicate person_id"),
        (_set("people[0].buildings", "B1"), "people[0].buildings: expected an array, got string"),
        (_set("people[0].card_uids[1]", "04A1B2C3"), "people[0].card_uids[1]: duplicate"),
        (_set("people[0].windows[0].start", "7:00"), "people[0].windows[0].start: '7:00'"),
        (_set("people[0].windows[1].end", "24:00"), "people[0].windows[1].end: '24:00'"),
        (_set("people[0].windows[0].days[0]", 7), "windows[0].days: 7 is not a weekday"),
        (_set("people[0].windows[0].days", []), "windows[0].days: must not be empty"),
        (_set("people[0].windows[0].days[1]", True), "days[1]: expected an integer"),
        (
            _set("people[3].valid_until", "2025-03-01T18:00:00"),
            "people[3].valid_until: '2025-03-01T18:00:00' has no UTC offset",
        ),
        (
            _set("people[3].valid_from", "tomorrow"),
            "people[3].valid_from: 'tomorrow' is not an ISO-8601 datetime",
        ),
        (
            _set("people[3].valid_from", "2025-03-02T00:00:00+08:00"),
            "people[3]: valid_from 2025-03-02T00:00:00+08:00 is after valid_until",
        ),
        (_set("templates[2].person_id", "nobody"), "templates[2].person_id: 'nobody' is not"),
        (_set("templates[1].encoding", "AAAA"), "templates[1].encoding: decodes to 3 bytes"),
        (_set("templates[1].encoding", "not base64!"), "templates[1].encoding: not valid"),
        (_set("templates[0].encoding", _NAN_ENCODING), "templates[0].encoding: contains NaN"),
        (_set("format", 3), "format: unsupported gallery format 3, expected one of 1, 2"),
        (_set("format", 2), "gallery: missing field 'impostors'"),
        (_set("version", -1), "version: must be >= 0"),
        (_set("version", "3"), "version: expected an integer, got string"),
        (_set("people", {}), "people: expected an array, got object"),
        (_set("templates", _DELETE), "gallery: missing field 'templates'"),
    ],
)
def test_invalid_json_is_rejected_with_the_place_and_problem(mutate: Any, message: str) -> None:
    doc = gallery_doc()
    mutate(doc)
    with pytest.raises(ValueError) as info:
        gallery_from_json(dump(doc))
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b'{"format": 1,', "invalid JSON at line 1"),
        (b"[]", "gallery: expected an object, got array"),
        (b'{"format":1,"format":1}', "duplicate JSON key 'format'"),
        (b'{"format":NaN}', "NaN is not allowed"),
    ],
)
def test_malformed_json_documents_are_rejected(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gallery_from_json(data)


def test_writing_refuses_values_the_schema_cannot_hold() -> None:
    """Seconds in a window or a naive datetime would be silently lost or misread: refuse."""
    with_seconds = Person(
        person_id="a",
        windows=(TimeWindow(days=frozenset({0}), start=time(7, 0, 30), end=time(8, 0)),),
    )
    naive = Person(person_id="a", valid_until=datetime(2025, 1, 1))
    for person, message in [
        (with_seconds, r"people\[0\].windows\[0\].start: 07:00:30"),
        (naive, r"people\[0\].valid_until: datetime has no UTC offset"),
    ]:
        g = Gallery(1, {"a": person}, (), np.zeros((0, 128), np.float32))
        with pytest.raises(ValueError, match=message):
            gallery_to_json(g)


# --- encryption -------------------------------------------------------------------------------


def test_encrypted_round_trip() -> None:
    g = make_gallery(version=3)
    blob = encrypt_gallery(g, KEY)
    assert blob[:4] == b"DGG1"
    assert_same_gallery(decrypt_gallery(blob, KEY), g)


def test_encryption_uses_a_fresh_nonce_each_time() -> None:
    g = make_gallery()
    assert encrypt_gallery(g, KEY)[4:16] != encrypt_gallery(g, KEY)[4:16]


def test_wrong_key_is_a_key_error() -> None:
    blob = encrypt_gallery(make_gallery(), KEY)
    with pytest.raises(GalleryKeyError, match="wrong key or tampered gallery file blob"):
        decrypt_gallery(blob, OTHER_KEY)


@pytest.mark.parametrize("position", [4, 15, 16, 100, -1])
def test_any_flipped_byte_after_the_magic_is_detected(position: int) -> None:
    blob = bytearray(encrypt_gallery(make_gallery(), KEY))
    blob[position] ^= 0x01
    with pytest.raises(GalleryKeyError):
        decrypt_gallery(bytes(blob), KEY)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "truncated: 0 bytes"),
        (b"DGG1" + b"\0" * 20, "truncated: 24 bytes, need at least 32"),
        (b"GIF89a" + b"\0" * 100, "bad magic"),
        (b'{"format":1}' + b"\0" * 40, "bad magic"),
    ],
)
def test_corrupt_blobs_are_gallery_errors_not_key_errors(blob: bytes, message: str) -> None:
    with pytest.raises(GalleryError, match=f"corrupt gallery file blob: {message}") as info:
        decrypt_gallery(blob, KEY)
    assert not isinstance(info.value, GalleryKeyError)


def test_authenticated_but_invalid_content_names_the_problem() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    doc = gallery_doc()
    doc["people"][3]["status"] = "expelled"
    nonce = os.urandom(12)
    blob = b"DGG1" + nonce + AESGCM(KEY).encrypt(nonce, dump(doc), b"DGG1")
    with pytest.raises(GalleryError, match=r"people\[3\].status: 'expelled' is not one of"):
        decrypt_gallery(blob, KEY, source="/var/lib/gallery.bin")


def test_key_of_wrong_length_is_refused() -> None:
    with pytest.raises(GalleryKeyError, match="must be 32 bytes, got 16"):
        encrypt_gallery(make_gallery(), KEY[:16])


def test_encrypted_file_does_not_contain_templates_or_names_in_clear(tmp_path: Path) -> None:
    g = make_gallery()
    store = GalleryStore(tmp_path / "gallery.bin", KEY)
    store.save(g)
    on_disk = (tmp_path / "gallery.bin").read_bytes()
    for row in g.encodings:
        raw = row.astype("<f4").tobytes()
        assert raw[:16] not in on_disk
        assert base64.b64encode(raw)[:16] not in on_disk
    for person_id in g.people:
        assert person_id.encode() not in on_disk
    assert b"04A1B2C3" not in on_disk


# --- keys -------------------------------------------------------------------------------------


def test_generated_keys_are_urlsafe_base64_of_32_random_bytes() -> None:
    a, b = generate_key(), generate_key()
    assert a != b
    assert len(base64.urlsafe_b64decode(a)) == 32
    assert load_key(key_file=None, key_env="K", environ={"K": a}) == base64.urlsafe_b64decode(a)


def test_key_from_env() -> None:
    text = base64.urlsafe_b64encode(KEY).decode()
    assert load_key(key_file=None, key_env="DG_KEY", environ={"DG_KEY": text}) == KEY


def test_key_without_padding_is_accepted() -> None:
    text = base64.urlsafe_b64encode(KEY).decode().rstrip("=")
    assert load_key(key_file=None, key_env="DG_KEY", environ={"DG_KEY": text}) == KEY


def test_key_from_private_file_with_trailing_newline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gallery.key"
    path.write_text(base64.urlsafe_b64encode(KEY).decode() + "\n")
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="edge.gate.gallery"):
        assert load_key(key_file=path, key_env=None) == KEY
    assert caplog.records == []


def test_key_file_readable_by_others_logs_a_warning_without_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = generate_key()
    path = tmp_path / "gallery.key"
    path.write_text(text)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="edge.gate.gallery"):
        load_key(key_file=path, key_env=None)
    assert len(caplog.records) == 1
    assert str(path) in caplog.text
    assert "0o644" in caplog.text
    assert text not in caplog.text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not*base64*at*all", "gallery key env var DG_KEY is not valid base64"),
        (base64.urlsafe_b64encode(b"k" * 16).decode(), "env var DG_KEY decodes to 16 bytes"),
        (base64.urlsafe_b64encode(b"k" * 33).decode(), "env var DG_KEY decodes to 33 bytes"),
        ("   ", "gallery key env var DG_KEY is empty"),
    ],
)
def test_bad_key_text_names_the_env_var_but_not_the_value(value: str, message: str) -> None:
    with pytest.raises(GalleryKeyError, match=message) as info:
        load_key(key_file=None, key_env="DG_KEY", environ={"DG_KEY": value})
    if value.strip():
        assert value not in str(info.value)


def test_bad_key_file_names_the_path_but_not_the_value(tmp_path: Path) -> None:
    path = tmp_path / "gallery.key"
    secret = base64.urlsafe_b64encode(b"s" * 24).decode()
    path.write_text(secret)
    path.chmod(0o600)
    with pytest.raises(GalleryKeyError, match="decodes to 24 bytes") as info:
        load_key(key_file=path, key_env=None)
    assert str(path) in str(info.value)
    assert secret not in str(info.value)


def test_missing_key_file_and_unset_env_var_are_key_errors(tmp_path: Path) -> None:
    with pytest.raises(GalleryKeyError, match=r"gallery\.key does not exist"):
        load_key(key_file=tmp_path / "gallery.key", key_env=None)
    with pytest.raises(GalleryKeyError, match="env var DG_KEY is not set"):
        load_key(key_file=None, key_env="DG_KEY", environ={})


def test_key_needs_exactly_one_source(tmp_path: Path) -> None:
    with pytest.raises(GalleryKeyError, match="not both"):
        load_key(key_file=tmp_path / "k", key_env="DG_KEY", environ={"DG_KEY": generate_key()})
    with pytest.raises(GalleryKeyError, match="no source given"):
        load_key(key_file=None, key_env=None, environ={})


# --- store ------------------------------------------------------------------------------------


def test_missing_file_loads_as_empty_version_zero(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = GalleryStore(tmp_path / "gallery.bin", KEY)
    with caplog.at_level(logging.INFO, logger="edge.gate.gallery"):
        g = store.load()
    assert g == Gallery.empty()
    assert store.current_version() == 0
    assert "no gallery file" in caplog.text
    assert not (tmp_path / "gallery.bin").exists()


def test_constructor_touches_nothing(tmp_path: Path) -> None:
    GalleryStore(tmp_path / "sub" / "gallery.bin", KEY)
    assert list(tmp_path.iterdir()) == []


def test_install_then_load_from_a_fresh_store(tmp_path: Path) -> None:
    path = tmp_path / "state" / "gallery.bin"
    g = make_gallery(version=4)
    installed = GalleryStore(path, KEY).install(encrypt_gallery(g, KEY))
    assert_same_gallery(installed, g)
    fresh = GalleryStore(path, KEY)
    assert fresh.current_version() == 4
    assert_same_gallery(fresh.load(), g)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["gallery.bin"]


def test_stale_version_is_refused_and_current_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "gallery.bin"
    store = GalleryStore(path, KEY)
    store.install(encrypt_gallery(make_gallery(version=5), KEY))
    before = path.read_bytes()
    for version in (5, 3):
        with pytest.raises(GalleryError, match=f"stale gallery version {version}, current 5"):
            store.install(encrypt_gallery(make_gallery(version=version, seed=9), KEY))
    assert path.read_bytes() == before
    assert GalleryStore(path, KEY).load().version == 5


def test_force_installs_an_older_version(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "gallery.bin", KEY)
    store.install(encrypt_gallery(make_gallery(version=5), KEY))
    store.install(encrypt_gallery(make_gallery(version=2), KEY), force=True)
    assert store.current_version() == 2
    assert GalleryStore(tmp_path / "gallery.bin", KEY).load().version == 2


@pytest.mark.parametrize(
    ("bad_blob", "error"),
    [
        (lambda good: good[:-1], GalleryKeyError),
        (lambda good: good[:-10] + bytes(10), GalleryKeyError),
        (lambda good: encrypt_gallery(make_gallery(version=9), OTHER_KEY), GalleryKeyError),
        (lambda good: b"DGG1" + b"\0" * 3, GalleryError),
        (lambda good: b"PK\x03\x04 not a gallery at all " * 4, GalleryError),
    ],
)
def test_bad_update_leaves_current_gallery_intact_and_loadable(
    tmp_path: Path, bad_blob: Any, error: type[Exception]
) -> None:
    path = tmp_path / "gallery.bin"
    store = GalleryStore(path, KEY)
    current = make_gallery(version=5)
    store.install(encrypt_gallery(current, KEY))
    before = path.read_bytes()
    with pytest.raises(error):
        store.install(bad_blob(encrypt_gallery(make_gallery(version=6), KEY)))
    assert path.read_bytes() == before
    assert_same_gallery(GalleryStore(path, KEY).load(), current)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery.bin"]


def test_previous_file_is_kept_as_prev(tmp_path: Path) -> None:
    path = tmp_path / "gallery.bin"
    store = GalleryStore(path, KEY)
    store.install(encrypt_gallery(make_gallery(version=1), KEY))
    first = path.read_bytes()
    store.install(encrypt_gallery(make_gallery(version=2), KEY))
    second = path.read_bytes()
    assert (tmp_path / "gallery.bin.prev").read_bytes() == first
    store.install(encrypt_gallery(make_gallery(version=3), KEY))
    assert (tmp_path / "gallery.bin.prev").read_bytes() == second
    assert store.prev_path == tmp_path / "gallery.bin.prev"
    assert GalleryStore(store.prev_path, KEY).load().version == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery.bin", "gallery.bin.prev"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "truncated: 0 bytes"),
        (b"DGG1\x00\x01", "truncated: 6 bytes"),
        (b"\x89PNG\r\n\x1a\n" + os.urandom(200), "bad magic"),
    ],
)
def test_truncated_or_garbage_file_names_the_path(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "gallery.bin"
    path.write_bytes(content)
    with pytest.raises(GalleryError, match=f"corrupt gallery file {path}: {message}") as info:
        GalleryStore(path, KEY).load()
    assert not isinstance(info.value, GalleryKeyError)


def test_file_truncated_mid_ciphertext_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "gallery.bin"
    GalleryStore(path, KEY).save(make_gallery())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(GalleryKeyError, match=f"tampered gallery file {path}"):
        GalleryStore(path, KEY).load()


def test_wrong_key_on_load_is_a_key_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "gallery.bin"
    GalleryStore(path, KEY).save(make_gallery())
    with pytest.raises(GalleryKeyError, match=f"wrong key or tampered gallery file {path}"):
        GalleryStore(path, OTHER_KEY).load()


def test_flipped_byte_in_file_is_a_key_error(tmp_path: Path) -> None:
    path = tmp_path / "gallery.bin"
    GalleryStore(path, KEY).save(make_gallery())
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x80
    path.write_bytes(bytes(data))
    with pytest.raises(GalleryKeyError):
        GalleryStore(path, KEY).load()


def test_install_replaces_an_unreadable_current_file_after_key_rotation(tmp_path: Path) -> None:
    """A current file under the old key must not block recovery; it stays as .prev."""
    path = tmp_path / "gallery.bin"
    GalleryStore(path, OTHER_KEY).save(make_gallery(version=8))
    old = path.read_bytes()
    store = GalleryStore(path, KEY)
    store.install(encrypt_gallery(make_gallery(version=1), KEY))
    assert store.load().version == 1
    assert (tmp_path / "gallery.bin.prev").read_bytes() == old


def test_current_version_sees_a_file_replaced_by_another_store(tmp_path: Path) -> None:
    path = tmp_path / "gallery.bin"
    daemon = GalleryStore(path, KEY)
    daemon.install(encrypt_gallery(make_gallery(version=1), KEY))
    GalleryStore(path, KEY).save(make_gallery(version=7))
    assert daemon.current_version() == 7


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "gallery.bin", KEY)
    g = make_gallery(version=12)
    store.save(g)
    assert_same_gallery(store.load(), g)
    assert store.current_version() == 12


def test_logs_never_contain_key_or_templates(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    g = make_gallery(version=2)
    store = GalleryStore(tmp_path / "gallery.bin", KEY)
    with caplog.at_level(logging.DEBUG, logger="edge.gate.gallery"):
        store.install(encrypt_gallery(g, KEY))
        store.load()
        with pytest.raises(GalleryError):
            store.install(encrypt_gallery(g, KEY))
    text = caplog.text
    assert "installed gallery version 2" in text
    assert base64.urlsafe_b64encode(KEY).decode() not in text
    assert KEY.hex() not in text
    assert json.loads(gallery_to_json(g))["templates"][0]["encoding"][:12] not in text
