"""Wrong-match feedback, the pure and file-level parts: the gallery's impostor examples, the
matcher's rule, the sealed probe, the gate's probe store and its send_probe answer."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contracts.access import Person, Reason
from contracts.gallery import Gallery, gallery_from_json, gallery_to_json
from contracts.gallery_crypto import decrypt_gallery, encrypt_gallery, open_probe, seal_probe
from contracts.models import Command, CommandResult
from edge.gate.matching import TemplateIndex
from edge.gate.policy import decide_face
from edge.gate.probes import ProbeStore
from edge.gate.voting import Verdict

KEY = bytes(range(32))
DIM = 128


def unit(rng: np.random.Generator) -> np.ndarray:
    vector = rng.standard_normal(DIM)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def towards(a: np.ndarray, b: np.ndarray, share: float) -> np.ndarray:
    """The point ``share`` of the way from a to b."""
    return (a + share * (b - a)).astype(np.float32)


def gallery_with_impostor(rng: np.random.Generator) -> Gallery:
    people = {pid: Person(pid, buildings=frozenset({"b1"})) for pid in ("s-x", "s-y")}
    return Gallery(
        version=3,
        people=people,
        template_owners=("s-x", "s-y"),
        encodings=np.stack([unit(rng), unit(rng)]),
        impostor_owners=("s-x",),
        impostors=unit(rng).reshape(1, DIM),
    )


# --- the gallery document ----------------------------------------------------------------------


def test_impostor_examples_round_trip_through_json_and_encryption() -> None:
    gallery = gallery_with_impostor(np.random.default_rng(1))
    data = gallery_to_json(gallery)
    assert json.loads(data)["format"] == 2
    assert gallery_from_json(data) == gallery
    assert decrypt_gallery(encrypt_gallery(gallery, KEY), KEY) == gallery


def test_a_gallery_without_impostor_examples_is_written_as_format_1_for_older_gates() -> None:
    gallery = dataclasses.replace(
        gallery_with_impostor(np.random.default_rng(2)),
        impostor_owners=(),
        impostors=np.zeros((0, DIM), np.float32),
    )
    document = json.loads(gallery_to_json(gallery))
    assert document["format"] == 1 and "impostors" not in document
    assert gallery_from_json(gallery_to_json(gallery)) == gallery


def _doc() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        gallery_to_json(gallery_with_impostor(np.random.default_rng(3)))
    )
    return document


def _bad(path: str, value: Any) -> dict[str, Any]:
    document = _doc()
    if path == "format1":
        document["format"] = 1
    elif path == "drop":
        del document["impostors"]
    elif path == "extra":
        document["impostors"][0]["photo"] = value
    else:
        document["impostors"][0][path] = value
    return document


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_bad("person_id", "s-nobody"), "impostors[0].person_id: 's-nobody' is not in people"),
        (_bad("person_id", ""), "impostors[0].person_id: must not be empty"),
        (_bad("encoding", "AAAA"), "impostors[0].encoding: decodes to 3 bytes"),
        (_bad("encoding", "not base64!"), "impostors[0].encoding: not valid base64"),
        (
            _bad("encoding", base64.b64encode(np.full(DIM, np.inf, "<f4").tobytes()).decode()),
            "impostors[0].encoding: contains NaN or infinite values",
        ),
        (_bad("extra", "x.jpg"), "impostors[0]: unknown field 'photo'"),
        (_bad("format1", None), "gallery: unknown field 'impostors'"),
        (_bad("drop", None), "gallery: missing field 'impostors'"),
        ({**_doc(), "impostors": {}}, "impostors: expected an array, got object"),
        ({"version": 1}, "gallery: missing field 'format'"),
        ({**_doc(), "format": "2"}, "format: expected an integer, got string"),
        ([], "gallery: expected an object, got array"),
    ],
)
def test_bad_impostor_entries_are_refused_naming_the_place(document: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        gallery_from_json(json.dumps(document).encode())
    assert message in str(info.value)


def test_a_gallery_refuses_impostor_rows_that_do_not_fit_their_owners() -> None:
    good = gallery_with_impostor(np.random.default_rng(4))
    with pytest.raises(ValueError, match="impostor owners not in people: 's-z'"):
        dataclasses.replace(good, impostor_owners=("s-z",))
    with pytest.raises(ValueError, match="1 impostors but 2 impostor owners"):
        dataclasses.replace(good, impostor_owners=("s-x", "s-y"))


# --- the matcher -------------------------------------------------------------------------------


def index_with_impostor(
    x: np.ndarray, y: np.ndarray, impostor: np.ndarray, *, owner: str = "s-x"
) -> TemplateIndex:
    return TemplateIndex.build(
        ["s-x", "s-y"], np.stack([x, y]), impostor_ids=[owner], impostors=impostor.reshape(1, DIM)
    )


def test_the_reported_probe_itself_is_no_longer_matched_as_the_person() -> None:
    rng = np.random.default_rng(5)
    x, y, stranger = unit(rng), unit(rng), unit(rng)
    probe = towards(x, stranger, 0.45)  # close enough to x to pass the loosened tolerance
    plain = TemplateIndex.build(["s-x", "s-y"], np.stack([x, y]))
    assert plain.match(probe, tolerance=0.9, min_margin=0.0).person_id == "s-x"
    index = index_with_impostor(x, y, probe)
    result = index.match(probe, tolerance=0.9, min_margin=0.0)
    assert (result.person_id, result.reason) == (None, "wrong_match")
    assert index.impostor_count == 1


def test_a_probe_closer_to_the_impostor_than_to_the_person_is_refused_for_them() -> None:
    rng = np.random.default_rng(6)
    x, y, stranger = unit(rng), unit(rng), unit(rng)
    reported = towards(x, stranger, 0.45)
    # Another look of the same stranger: farther from the example than the radius, but still
    # nearer to it than to x's template.
    again = towards(x, stranger, 0.6)
    index = index_with_impostor(x, y, reported)
    distance_to_example = float(np.linalg.norm(again - reported))
    assert distance_to_example > 0.2
    assert index.match(again, tolerance=0.95, min_margin=0.0).reason == "wrong_match"


def test_a_genuine_probe_of_the_person_still_matches_them() -> None:
    rng = np.random.default_rng(7)
    x, y, stranger = unit(rng), unit(rng), unit(rng)
    index = index_with_impostor(x, y, towards(x, stranger, 0.45))
    genuine = towards(x, unit(rng), 0.2)
    result = index.match(genuine, tolerance=0.9, min_margin=0.0)
    assert (result.person_id, result.reason) == ("s-x", "match")
    (batched,) = index.match_many(genuine.reshape(1, DIM), tolerance=0.9, min_margin=0.0)
    assert batched == result


def test_the_impostor_check_only_concerns_the_person_it_was_reported_against() -> None:
    """An example reported against s-y does not stop a probe whose best match is s-x."""
    rng = np.random.default_rng(8)
    x, y = unit(rng), unit(rng)
    probe = towards(x, unit(rng), 0.3)
    index = index_with_impostor(x, y, probe, owner="s-y")
    assert index.match(probe, tolerance=0.9, min_margin=0.0).person_id == "s-x"


def test_a_larger_impostor_margin_refuses_probes_between_the_two() -> None:
    rng = np.random.default_rng(9)
    x, y, stranger = unit(rng), unit(rng), unit(rng)
    reported = towards(x, stranger, 0.8)
    between = towards(x, stranger, 0.35)  # a little closer to x than to the example
    index = index_with_impostor(x, y, reported)
    assert index.match(between, tolerance=0.9, min_margin=0.0).reason == "match"
    refused = index.match(between, tolerance=0.9, min_margin=0.0, impostor_margin=0.6)
    assert refused.reason == "wrong_match"


def test_impostor_thresholds_must_be_finite_and_not_negative() -> None:
    index = TemplateIndex.build(["s-x"], np.ones((1, DIM)))
    with pytest.raises(ValueError, match="impostor_radius must be a finite number >= 0"):
        index.match(np.ones(DIM), tolerance=0.5, min_margin=0.0, impostor_radius=-1.0)
    with pytest.raises(ValueError, match="got 2 person ids for 1 impostors"):
        TemplateIndex.build(
            ["s-x"], np.ones((1, DIM)), impostor_ids=["s-x", "s-x"], impostors=np.ones((1, DIM))
        )


def test_a_wrong_match_is_denied_with_its_own_reason_and_nobody_named() -> None:
    from datetime import UTC, datetime

    from contracts.access import Direction, GateInfo
    from edge.gate.model import AccessPolicy

    verdict = Verdict("rejected", None, 0.7, 0.0, 3)
    gate = GateInfo("campus", "b1", "g1", Direction.IN)
    decision = decide_face(
        verdict, None, gate, AccessPolicy(), datetime.now(UTC), last_match="wrong_match"
    )
    assert (decision.granted, decision.reason, decision.person_id) == (
        False,
        Reason.WRONG_MATCH,
        None,
    )


# --- the sealed probe and the gate's store ----------------------------------------------------


def test_a_sealed_probe_opens_only_for_its_own_event_and_key() -> None:
    probe = unit(np.random.default_rng(10))
    sealed = seal_probe(probe, "e" * 32, KEY)
    assert probe.tobytes() not in sealed
    assert np.array_equal(open_probe(sealed, "e" * 32, KEY), probe)
    with pytest.raises(ValueError, match="another event's"):
        open_probe(sealed, "f" * 32, KEY)
    with pytest.raises(ValueError, match="not a sealed dormguard probe"):
        open_probe(sealed[:-1], "e" * 32, KEY)
    with pytest.raises(ValueError, match="a probe has 128 values"):
        seal_probe(np.ones(3), "e" * 32, KEY)


def test_the_probe_store_hands_a_probe_over_once_and_forgets_old_and_surplus_ones(
    tmp_path: Path,
) -> None:
    store = ProbeStore(tmp_path / "probes.db", KEY, retention_s=100.0, max_count=3)
    store.open()
    try:
        rng = np.random.default_rng(11)
        for i in range(5):
            store.keep(f"event-{i:04d}", unit(rng), now=1000.0 + i)
        assert len(store) == 3  # only the newest three
        assert store.take("event-0000", now=1005.0) is None
        sealed = store.take("event-0004", now=1005.0)
        assert sealed is not None and open_probe(sealed, "event-0004", KEY).shape == (DIM,)
        assert store.take("event-0004", now=1005.0) is None  # handed over once
        assert store.take("event-0003", now=1103.5) is None  # past the retention
        assert (tmp_path / "probes.db").stat().st_mode & 0o077 == 0
    finally:
        store.close()


def test_send_probe_is_answered_with_the_sealed_probe_or_why_not(tmp_path: Path) -> None:
    from contracts.access import Direction, GateInfo
    from contracts.signing import MessageVerifier
    from edge.gate.commands import CommandHandler
    from edge.gate.replay import FreshnessRule, NonceLedger
    from edge.gate.reporting import GateReporter
    from edge.mqtt import ReceivedMessage
    from tests.gatekit import RecordingOutbox
    from tests.keys import TEST_SIGNER, command_auth

    signer = TEST_SIGNER
    verifier = MessageVerifier.from_texts(command_auth()["trusted_keys"])
    outbox = RecordingOutbox()
    reporter = GateReporter(
        "gate:campus/b1/g1",
        GateInfo("campus", "b1", "g1", Direction.IN),
        outbox,  # type: ignore[arg-type]
    )
    kept = {"e" * 32: seal_probe(np.ones(DIM), "e" * 32, KEY)}
    handler = CommandHandler(
        verifier,
        NonceLedger(tmp_path / "nonces.db"),
        FreshnessRule(max_age_s=60, max_future_s=30),
        reporter,
        unlock=lambda s: None,
        lock=lambda: None,
        open_time_s=1.0,
        take_probe=lambda event_id: kept.pop(event_id, None),
    )
    handler.start()
    topic = "dorm/campus/b1/gate/g1/command"
    try:
        for event_id in ("e" * 32, "e" * 32):
            command = Command(
                producer="gateway:campus",
                correlation_id=f"c-{len(kept)}",
                reason="wrong-match report 1",
                command="send_probe",
                probe_event_id=event_id,
            )
            handler.on_command(ReceivedMessage(topic, signer.sign(topic, command), 1, False))
    finally:
        handler.stop()
    first, second = [m for m in outbox.parsed() if isinstance(m, CommandResult)]
    assert first.ok and first.probe_b64 is not None
    assert open_probe(base64.b64decode(first.probe_b64), "e" * 32, KEY).shape == (DIM,)
    assert not second.ok and second.probe_b64 is None
    assert "no probe kept for event" in second.detail
