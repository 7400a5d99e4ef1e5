"""Application-level signatures on the messages that move a door or change who may enter.

The broker's ACL is one defence; this is the second. Commands and gallery updates (which carry
the gate's access list) are signed by the gateway with Ed25519; a gate holds only the public keys
and refuses anything unsigned, signed by an unknown key, or altered. The signature covers the
topic (so a message for one gate cannot be replayed to another), every payload field and the
signature's own key id and nonce. Freshness (maximum age, nonces remembered) is the gate's job:
``edge/gate/replay.py``.

What is signed is a canonical JSON text of the payload *as parsed from the wire* (sorted keys,
no spaces), not a re-serialisation of the pydantic model, so both sides agree byte for byte
whatever library versions they run.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts.models import Signature, WireModel

DOMAIN = b"dormguard-signed-v1\n"
PUBLIC_PREFIX = "ed25519:"

SignatureProblem = Literal["unsigned", "unknown_key", "bad_signature"]


class SignatureError(ValueError):
    """A message whose signature does not hold; ``problem`` says which way it failed."""

    def __init__(self, problem: SignatureProblem, detail: str) -> None:
        super().__init__(detail)
        self.problem: SignatureProblem = problem


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name of a public key: 16 hex digits of the SHA-256 of its raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_text(public: Ed25519PublicKey) -> str:
    """The public key as gates configure it: ``ed25519:<base64 of the 32 raw bytes>``."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key from ``ed25519:<base64>``; ValueError says what is wrong with it."""
    value = text.strip()
    if not value.startswith(PUBLIC_PREFIX):
        raise ValueError(f"public key must start with {PUBLIC_PREFIX!r} (got {value[:12]!r}...)")
    try:
        raw = base64.b64decode(value[len(PUBLIC_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("public key is not valid base64 after 'ed25519:'") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, this one {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def generate_private_key_text() -> str:
    """A new private key as the gateway stores it: base64 of the 32-byte seed."""
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(raw).decode("ascii")


def parse_private_key(text: str) -> Ed25519PrivateKey:
    """A private key from base64 of its 32-byte seed or an unencrypted PKCS#8 PEM block.

    ValueError says what is wrong, never the key itself.
    """
    value = text.strip()
    if not value:
        raise ValueError("signing key is empty")
    if value.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(value.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"signing key PEM cannot be read: {type(exc).__name__}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"signing key is a {type(key).__name__}, not an Ed25519 key")
        return key
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("signing key is neither PEM nor base64 of a 32-byte seed") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 signing key seed has 32 bytes, this one {len(raw)}")
    return Ed25519PrivateKey.from_private_bytes(raw)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the one text both sides sign and verify."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def signing_input(topic: str, document: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: domain, topic and the payload without the signature value."""
    body = dict(document)
    signature = body.get("signature")
    if isinstance(signature, Mapping):
        body["signature"] = {k: v for k, v in signature.items() if k != "value"}
    return DOMAIN + topic.encode("utf-8") + b"\n" + canonical_json(body)


M = TypeVar("M", bound=WireModel)


class MessageSigner:
    """Signs outgoing commands and gallery updates with the gateway's private key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.key_id = key_id(private.public_key())

    @property
    def public_key(self) -> str:
        """The public key to put in the gates' ``command_auth.trusted_keys``."""
        return public_key_text(self._private.public_key())

    def sign(self, topic: str, message: M) -> bytes:
        """The message's wire bytes with a fresh nonce and the signature filled in."""
        unsigned = message.model_copy(
            update={
                "signature": Signature(key_id=self.key_id, nonce=secrets.token_hex(16), value="")
            }
        )
        document = json.loads(unsigned.to_bytes())
        value = self._private.sign(signing_input(topic, document))
        document["signature"]["value"] = base64.b64encode(value).decode("ascii")
        return canonical_json(document)


@dataclass(frozen=True, slots=True)
class Verified:
    """A signature that holds: which key made it, and the nonce it carried."""

    key_id: str
    nonce: str


class MessageVerifier:
    """Checks signatures against the gateway public keys a gate trusts (several in a rotation)."""

    def __init__(self, trusted: Iterable[Ed25519PublicKey]) -> None:
        self._keys = {key_id(k): k for k in trusted}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> MessageVerifier:
        """From ``ed25519:<base64>`` strings; ValueError names the bad one by position."""
        keys = []
        for i, text in enumerate(texts):
            try:
                keys.append(parse_public_key(text))
            except ValueError as exc:
                raise ValueError(f"trusted key #{i + 1}: {exc}") from None
        return cls(keys)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    def verify(self, topic: str, payload: bytes) -> Verified:
        """Verify a raw message; SignatureError (unsigned, unknown_key, bad_signature) if not."""
        try:
            document = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise SignatureError("bad_signature", "payload is not JSON") from None
        signature = document.get("signature") if isinstance(document, dict) else None
        if signature is None:
            raise SignatureError("unsigned", "the message carries no signature")
        if not isinstance(signature, dict) or not all(
            isinstance(signature.get(k), str) for k in ("key_id", "nonce", "value")
        ):
            raise SignatureError("bad_signature", "signature must hold key_id, nonce and value")
        public = self._keys.get(signature["key_id"])
        if public is None:
            raise SignatureError(
                "unknown_key",
                f"signed by key {signature['key_id'][:16]!r}, which this gate does not trust",
            )
        try:
            value = base64.b64decode(signature["value"], validate=True)
            public.verify(value, signing_input(topic, document))
        except (binascii.Error, ValueError, InvalidSignature):
            raise SignatureError(
                "bad_signature", f"signature by key {signature['key_id']} does not match"
            ) from None
        return Verified(signature["key_id"], signature["nonce"])
