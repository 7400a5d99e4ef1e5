"""Config pieces edge and gateway share: strict models, secrets, time fields, MQTT, TLS."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator


class StrictModel(BaseModel):
    """Config base: unknown keys are errors, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def known_time_zone(name: str) -> str:
    """The name itself if it is an IANA time zone; ValueError otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a tz folder
        raise ValueError(f"unknown time zone {name!r} (use an IANA name)") from exc
    return name


TimeZoneName = Annotated[str, AfterValidator(known_time_zone)]
"""A config field holding an IANA time zone name, e.g. 'Asia/Shanghai'."""


def not_a_yaml_number(value: object) -> object:
    """The value as it is, unless YAML has read an unquoted time of day as a number."""
    if isinstance(value, int):
        raise ValueError(
            "write times of day in quotes, e.g. '23:00' (YAML reads 23:00 as a number)"
        )
    return value


TimeOfDayText = Annotated[str, BeforeValidator(not_a_yaml_number)]
"""A config field holding a time of day as written, e.g. '23:00' (each daemon parses it)."""


class Secret(StrictModel):
    """A secret read from a file or an environment variable, never written in the YAML."""

    file: Path | None = Field(default=None, description="file holding the secret")
    env: str | None = Field(default=None, description="environment variable holding the secret")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.file is None) == (self.env is None):
            raise ValueError("give exactly one of 'file' or 'env'")
        return self

    def read(self, environ: dict[str, str] | None = None) -> str:
        """The secret's value; ValueError names the source (never the value)."""
        if self.file is not None:
            try:
                value = self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"cannot read secret file {self.file}: {exc.strerror}") from exc
            except UnicodeDecodeError:
                raise ValueError(f"secret file {self.file} is not UTF-8 text") from None
            if not value:
                raise ValueError(f"secret file {self.file} is empty")
            return value
        env = os.environ if environ is None else environ
        assert self.env is not None
        if not env.get(self.env):
            raise ValueError(f"environment variable {self.env} is not set")
        return env[self.env]


class TlsSettings(StrictModel):
    ca_file: Path = Field(description="CA certificate that signed the broker's certificate")
    cert_file: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    key_file: Path | None = Field(default=None, description="client private key")

    @model_validator(mode="after")
    def _cert_with_key(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("mutual TLS needs both cert_file and key_file (or neither)")
        return self


class MqttSettings(StrictModel):
    host: str = Field(default="127.0.0.1", description="broker host")
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str | None = Field(default=None, description="defaults to the producer id")
    username: str | None = Field(default=None, description="per-device user (see deploy/)")
    password: Secret | None = None
    tls: TlsSettings | None = None
    protocol: Literal["5", "3.1.1"] = Field(
        default="5", description="MQTT protocol version; 5 for persistent sessions"
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_max_s: float = Field(default=30.0, gt=0)


class BridgeMqttSettings(MqttSettings):
    """MQTT for the device bridge: 3.1.1 by default.

    The vendor devices speak 3.1.1 and the bridge uses no MQTT 5 feature; paho parses 3.1.1
    PUBLISH packets markedly faster (see docs/benchmarks.md).
    """

    protocol: Literal["5", "3.1.1"] = Field(default="3.1.1", description="MQTT protocol version")
