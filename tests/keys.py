"""The command signing key of a test run: the gateway side signs with it, test gates trust it.

It lives in an environment variable, so gateway and gate processes started by the tests (which
inherit the environment) use the same key as the tests themselves.
"""

from __future__ import annotations

import os
from typing import Any

from contracts.signing import MessageSigner, generate_private_key_text, parse_private_key

SIGNING_KEY_ENV = "DORMGUARD_TEST_SIGNING_KEY"
os.environ.setdefault(SIGNING_KEY_ENV, generate_private_key_text())

TEST_SIGNER = MessageSigner(parse_private_key(os.environ[SIGNING_KEY_ENV]))


def signing_config() -> dict[str, Any]:
    """The gateway's ``command_signing`` section for the test key."""
    return {"private_key": {"env": SIGNING_KEY_ENV}}


def command_auth(**overrides: Any) -> dict[str, Any]:
    """A gate's ``command_auth`` section trusting the test key."""
    return {"trusted_keys": [TEST_SIGNER.public_key], **overrides}
