"""Signed commands and galleries (contracts/signing.py) and command freshness (edge/gate/replay)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts.models import Command, GalleryUpdate
from contracts.registry import parse_message
from contracts.signing import (
    MessageSigner,
    MessageVerifier,
    SignatureError,
    generate_private_key_text,
    parse_private_key,
    parse_public_key,
)
from edge.gate.replay import FreshnessRule, NonceLedger, freshness

TOPIC = "dorm/campus/b1/gate/g1/command"
OTHER_GATE = "dorm/campus/b1/gate/g2/command"
TS = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def new_signer() -> MessageSigner:
    return MessageSigner(parse_private_key(generate_private_key_text()))


def unlock(**fields: object) -> Command:
    values: dict[str, object] = {
        "producer": "gateway:campus",
        "ts": TS,
        "correlation_id": "c-1",
        "command": "unlock",
        "duration_s": 5.0,
        "reason": "visitor at the door",
    }
    values.update(fields)
    return Command.model_validate(values)


def problem(verifier: MessageVerifier, topic: str, payload: bytes) -> str:
    with pytest.raises(SignatureError) as excinfo:
        verifier.verify(topic, payload)
    return excinfo.value.problem


@pytest.fixture(scope="module")
def signer() -> MessageSigner:
    return new_signer()


@pytest.fixture(scope="module")
def verifier(signer: MessageSigner) -> MessageVerifier:
    return MessageVerifier.from_texts([signer.public_key])


def test_a_signed_command_verifies_and_still_satisfies_the_contract(
    signer: MessageSigner, verifier: MessageVerifier
) -> None:
    payload = signer.sign(TOPIC, unlock())
    verified = verifier.verify(TOPIC, payload)
    assert verified.key_id == signer.key_id
    parsed = parse_message(TOPIC, payload)
    assert isinstance(parsed, Command) and parsed.signature is not None
    assert parsed.signature.nonce == verified.nonce
    assert parsed.duration_s == 5.0


def test_every_signature_has_its_own_nonce(
    signer: MessageSigner, verifier: MessageVerifier
) -> None:
    nonces = {verifier.verify(TOPIC, signer.sign(TOPIC, unlock())).nonce for _ in range(50)}
    assert len(nonces) == 50


def test_an_unsigned_command_is_refused_as_unsigned(verifier: MessageVerifier) -> None:
    assert problem(verifier, TOPIC, unlock().to_bytes()) == "unsigned"


def test_a_command_signed_by_another_key_is_refused_as_unknown_key(
    verifier: MessageVerifier,
) -> None:
    assert problem(verifier, TOPIC, new_signer().sign(TOPIC, unlock())) == "unknown_key"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("command", "hold_open"),
        ("duration_s", 86400.0),
        ("ts", "2026-12-03T08:05:00Z"),
        ("correlation_id", "c-2"),
        ("reason", "fire alarm"),
        ("producer", "gateway:other"),
    ],
)
def test_changing_any_field_breaks_the_signature(
    signer: MessageSigner, verifier: MessageVerifier, field: str, value: object
) -> None:
    document = json.loads(signer.sign(TOPIC, unlock()))
    document[field] = value
    assert problem(verifier, TOPIC, json.dumps(document).encode()) == "bad_signature"


def test_changing_the_nonce_or_naming_another_key_breaks_the_signature(
    signer: MessageSigner, verifier: MessageVerifier
) -> None:
    document = json.loads(signer.sign(TOPIC, unlock()))
    document["signature"]["nonce"] = "0" * 32
    assert problem(verifier, TOPIC, json.dumps(document).encode()) == "bad_signature"
    document = json.loads(signer.sign(TOPIC, unlock()))
    document["signature"]["value"] = base64.b64encode(b"\x00" * 64).decode()
    assert problem(verifier, TOPIC, json.dumps(document).encode()) == "bad_signature"


def test_a_command_for_one_gate_does_not_verify_on_another(
    signer: MessageSigner, verifier: MessageVerifier
) -> None:
    payload = signer.sign(OTHER_GATE, unlock())
    assert problem(verifier, TOPIC, payload) == "bad_signature"


def test_whitespace_and_key_order_on_the_wire_do_not_matter(
    signer: MessageSigner, verifier: MessageVerifier
) -> None:
    """Canonical JSON: a broker or bridge that re-encodes the JSON does not break it."""
    document = json.loads(signer.sign(TOPIC, unlock()))
    reordered = json.dumps(dict(reversed(list(document.items()))), indent=2).encode()
    verifier.verify(TOPIC, reordered)


@pytest.mark.parametrize(
    "payload", [b"\xff\xfe", b"not json", b"[1, 2]", b'{"signature": "x"}', b'{"signature": {}}']
)
def test_garbage_is_refused_with_a_reason_never_an_exception(
    verifier: MessageVerifier, payload: bytes
) -> None:
    assert problem(verifier, TOPIC, payload) in ("unsigned", "bad_signature")


def test_gallery_updates_are_signed_the_same_way(
    signer: MessageSigner, verifier: MessageVerifier
) -> None:
    topic = "dorm/campus/b1/gate/g1/gallery"
    update = GalleryUpdate(producer="gw", version=3, correlation_id="g-3", blob_b64="AAEC")
    verifier.verify(topic, signer.sign(topic, update))
    document = json.loads(signer.sign(topic, update))
    document["version"] = 4
    assert problem(verifier, topic, json.dumps(document).encode()) == "bad_signature"


def test_key_rotation_a_gate_trusting_both_keys_accepts_both_then_only_the_new_one() -> None:
    """Rotation: add the new public key to the gates, switch the gateway, drop the old key."""
    old, new = new_signer(), new_signer()
    during = MessageVerifier.from_texts([old.public_key, new.public_key])
    assert during.verify(TOPIC, old.sign(TOPIC, unlock())).key_id == old.key_id
    assert during.verify(TOPIC, new.sign(TOPIC, unlock())).key_id == new.key_id
    after = MessageVerifier.from_texts([new.public_key])
    after.verify(TOPIC, new.sign(TOPIC, unlock()))
    assert problem(after, TOPIC, old.sign(TOPIC, unlock())) == "unknown_key"


def test_a_pem_private_key_is_accepted_and_gives_the_same_public_key() -> None:
    from cryptography.hazmat.primitives import serialization

    seed = generate_private_key_text()
    key = parse_private_key(seed)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    assert MessageSigner(parse_private_key(pem)).public_key == MessageSigner(key).public_key


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("not base64!", "neither PEM nor base64"),
        ("AAAA", "seed has 32 bytes, this one 3"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "cannot be read"),
    ],
)
def test_a_bad_private_key_is_refused_without_echoing_it(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as excinfo:
        parse_private_key(text)
    assert text.strip() == "" or text not in str(excinfo.value)


def test_public_key_text_round_trips(signer: MessageSigner) -> None:
    assert MessageVerifier([parse_public_key(signer.public_key)]).key_ids == (signer.key_id,)


# ----------------------------------------------------------------------------- freshness

RULE = FreshnessRule(max_age_s=60.0, max_future_s=30.0)


@pytest.mark.parametrize(
    ("age_s", "verdict"),
    [
        (0.0, "fresh"),
        (59.9, "fresh"),
        (60.1, "stale"),
        (3600.0, "stale"),
        (-29.9, "fresh"),
        (-30.1, "future_dated"),
        (-86400.0, "future_dated"),
    ],
)
def test_freshness_refuses_old_and_far_future_commands(age_s: float, verdict: str) -> None:
    sent = TS
    assert freshness(sent, sent + timedelta(seconds=age_s), RULE)[0] == verdict


def test_a_nonce_is_remembered_as_long_as_its_command_could_still_be_fresh() -> None:
    assert RULE.remember_s == 90.0


def test_nonce_ledger_refuses_a_second_use_and_remembers_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "nonces"
    ledger = NonceLedger(path)
    ledger.open()
    assert ledger.claim("n-1", expires=1_090.0, now=1_000.0)
    assert not ledger.claim("n-1", expires=1_090.0, now=1_001.0)
    ledger.close()
    reopened = NonceLedger(path)
    reopened.open()
    try:
        assert not reopened.claim("n-1", expires=1_090.0, now=1_002.0), "forgot across a restart"
        assert reopened.claim("n-2", expires=1_100.0, now=1_002.0)
    finally:
        reopened.close()


def test_nonce_ledger_forgets_expired_nonces(tmp_path: Path) -> None:
    ledger = NonceLedger(tmp_path / "nonces")
    ledger.open()
    try:
        for i in range(100):
            assert ledger.claim(f"n-{i}", expires=1_000.0 + i, now=900.0)
        assert ledger.claim("later", expires=2_000.0, now=1_050.5)
        assert len(ledger) == 50  # n-51 .. n-99 and "later"
    finally:
        ledger.close()


def test_a_closed_ledger_says_so(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not open"):
        NonceLedger(tmp_path / "nonces").claim("n", expires=1.0, now=0.0)
