"""The gate daemon's configuration: one pydantic tree, validated at start."""

from __future__ import annotations

import re
from datetime import datetime, time
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from contracts.settings import MqttSettings, Secret, StrictModel, TimeOfDayText, TimeZoneName
from contracts.signing import MessageVerifier
from contracts.topics import check_segment
from edge.gate.liveness import LivenessRule
from edge.gate.matching import IMPOSTOR_MARGIN, IMPOSTOR_RADIUS
from edge.gate.model import AccessPolicy, Curfew
from edge.gate.nir import NirRule, alignment_matrix
from edge.gate.replay import FreshnessRule
from edge.gate.voting import ConfirmRule

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _parse_hhmm(value: str) -> time:
    if not _HHMM.match(value):
        raise ValueError(f"{value!r} is not a time of day in HH:MM form")
    return datetime.strptime(value, "%H:%M").time()  # noqa: DTZ007 - a time of day


class GateSection(StrictModel):
    id: str = Field(description="gate id, unique within the building")
    direction: Literal["in", "out"] = Field(default="in", description="entry or exit gate")

    @field_validator("id")
    @classmethod
    def _segment(cls, v: str) -> str:
        return check_segment(v, "gate id")


class SourceSection(StrictModel):
    kind: Literal["camera", "stream", "file", "folder"]
    target: str = Field(description="camera index or /dev/videoN, stream URL, file or folder")
    fps: float | None = Field(default=None, gt=0, le=120)
    loop: bool = True
    width: int | None = Field(default=None, ge=64)
    height: int | None = Field(default=None, ge=48)
    initial_backoff_s: float = Field(default=0.5, gt=0)
    max_backoff_s: float = Field(default=10.0, gt=0)


class DetectionSection(StrictModel):
    scale: float = Field(default=0.5, gt=0.05, le=1.0, description="downscale before HOG")
    upsample: int = Field(default=0, ge=0, le=2)
    min_face_px: int = Field(default=60, ge=20, description="smallest face side, full-frame px")
    max_faces: int = Field(default=4, ge=1, le=16)
    max_encodes_per_track: int = Field(default=4, ge=1)
    min_encode_interval_s: float = Field(default=0.0, ge=0)
    track_max_age_s: float = Field(default=1.0, gt=0)
    new_look_after_s: float = Field(
        default=0.3,
        gt=0,
        description="a face seen again after this long gone (missing from two frames or "
        "more) is judged afresh: the next person in a queue steps into the spot the last "
        "one left",
    )


class EncodingSection(StrictModel):
    """How the new faces of a frame are turned into encodings (docs/configuration.md)."""

    workers: int | Literal["auto"] = Field(
        default=1,
        description="faces encoded at once: 1 in the gate's own process, one at a time; 2-8 "
        "worker processes for frames with two or more new faces (a single face is still "
        "encoded in process); auto: one per CPU the gate may use, at most 4",
    )
    timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="a frame's faces not back from the workers by then: the pool is given up "
        "and faces are encoded in process",
    )

    @field_validator("workers")
    @classmethod
    def _workers_range(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 8:
            raise ValueError(f"workers must be 1-8 or 'auto', got {value}")
        return value


class MatchingSection(StrictModel):
    tolerance: float = Field(default=0.5, gt=0.1, lt=1.0, description="max distance to match")
    min_margin: float = Field(default=0.05, ge=0, lt=1.0, description="min gap to 2nd identity")
    impostor_radius: float = Field(
        default=IMPOSTOR_RADIUS,
        ge=0,
        lt=1.0,
        description="a probe this close to an impostor example of its best match is refused "
        "for that person (wrong-match feedback, docs/decisions/0014)",
    )
    impostor_margin: float = Field(
        default=IMPOSTOR_MARGIN,
        ge=0,
        lt=1.0,
        description="a probe must be this much closer to the person's nearest template than to "
        "any of their impostor examples, or it is refused for them",
    )


class ConfirmationSection(StrictModel):
    k: int = Field(default=2, ge=1, le=10, description="consistent matches needed")
    window_s: float = Field(default=1.5, gt=0)
    strong_distance: float = Field(default=0.40, gt=0, description="one-frame grant below this")
    strong_margin: float = Field(default=0.12, ge=0)
    reject_after: int = Field(default=3, ge=1, description="unknown votes before a denial")
    reverify_s: float = Field(
        default=1.0,
        gt=0,
        description="re-check a decided face after this long, so the next person stepping "
        "into the same spot is recognised on their own",
    )
    cooldown_s: float = Field(
        default=10.0,
        ge=0,
        description="the same outcome for the same face is not re-reported within this time",
    )

    def confirm_rule(self) -> ConfirmRule:
        """The pure voting rule these settings stand for (all but the per-track timings)."""
        return ConfirmRule(**self.model_dump(exclude={"reverify_s", "cooldown_s"}))


class NirSection(StrictModel):
    """The near-infrared camera beside the colour one (``liveness.mode: passive+nir``)."""

    source: SourceSection = Field(description="the NIR camera, same form as the colour source")
    alignment: list[list[float]] | None = Field(
        default=None,
        description="colour pixels -> NIR pixels from a calibration: a 2x3 affine or a 3x3 "
        "homography, as rows (default: the identity scaled to the NIR resolution)",
    )
    max_dt_s: float = Field(
        default=0.1,
        gt=0,
        le=1.0,
        description="colour and NIR frames further apart in time are not compared",
    )
    pass_frames: int = Field(
        default=3, ge=1, le=60, description="frames that must show skin under NIR before a grant"
    )
    fail_frames: int = Field(
        default=3, ge=1, le=60, description="frames without skin under NIR that refuse the face"
    )
    min_face_overlap: float = Field(
        default=0.3, ge=0, le=1, description="IoU of the NIR face detection with the mapped box"
    )
    min_brightness: float = Field(
        default=0.5, ge=0, description="face box mean over its surround's (screens are dark)"
    )
    min_spread: float = Field(
        default=0.15, ge=0, description="face box std over mean (prints are flat)"
    )
    min_texture: float = Field(
        default=0.03, ge=0, description="face box mean gradient over mean (prints are smooth)"
    )
    stale_after_s: float = Field(
        default=2.0, gt=0, description="no NIR frame for this long: the face path is down"
    )

    @field_validator("alignment")
    @classmethod
    def _alignment_shape(cls, value: list[list[float]] | None) -> list[list[float]] | None:
        if value is not None:
            alignment_matrix(value)  # ValueError says what is wrong
        return value

    def rule(self) -> NirRule:
        """The pure rule these settings stand for."""
        return NirRule(
            min_face_overlap=self.min_face_overlap,
            min_brightness=self.min_brightness,
            min_spread=self.min_spread,
            min_texture=self.min_texture,
            pass_frames=self.pass_frames,
            fail_frames=self.fail_frames,
            max_dt_s=self.max_dt_s,
        )


class LivenessSection(StrictModel):
    """Presentation-attack detection before a face is granted (docs/liveness.md)."""

    mode: Literal["off", "passive", "passive+nir"] = Field(
        default="off",
        description="passive: a blink or non-rigid landmark motion is required before a grant; "
        "passive+nir: that and skin seen by the near-infrared camera (liveness.nir)",
    )
    nir: NirSection | None = Field(
        default=None, description="the NIR camera and its thresholds (mode passive+nir only)"
    )
    max_wait_s: float = Field(
        default=2.0, gt=0, le=10, description="wait this long for the evidence, then refuse"
    )
    nonrigid_min: float = Field(
        default=0.016,
        gt=0,
        lt=1,
        description="landmark motion a plane cannot make (median over the frames), as a "
        "fraction of the eye distance",
    )
    min_frames: int = Field(
        default=8, ge=3, le=60, description="frames of the face before motion is judged"
    )
    closed_ratio: float = Field(
        default=0.7, gt=0, lt=1, description="eyes shut below this share of their open ratio"
    )
    mouth_min: float = Field(
        default=0.2, gt=0, lt=2, description="range of the inner lips' opening that counts"
    )
    screen_frames: int = Field(
        default=2,
        ge=0,
        le=60,
        description="frames with a screen's outline around the face that refuse it (0: off)",
    )

    @model_validator(mode="after")
    def _nir_with_its_mode(self) -> Self:
        if self.mode == "passive+nir" and self.nir is None:
            raise ValueError(
                "liveness.mode 'passive+nir' needs a 'liveness.nir' section (at least its source)"
            )
        if self.mode != "passive+nir" and self.nir is not None:
            raise ValueError(
                f"liveness.nir is used only with liveness.mode 'passive+nir', not {self.mode!r}: "
                "remove the section or change the mode"
            )
        return self

    def rule(self) -> LivenessRule:
        """The pure rule these settings stand for."""
        return LivenessRule(
            nonrigid_min=self.nonrigid_min,
            closed_ratio=self.closed_ratio,
            mouth_min=self.mouth_min,
            screen_frames=self.screen_frames,
            max_wait_s=self.max_wait_s,
            min_frames=self.min_frames,
        )


class CurfewSection(StrictModel):
    start: TimeOfDayText = Field(description="HH:MM local")
    end: TimeOfDayText = Field(description="HH:MM local")

    @field_validator("start", "end")
    @classmethod
    def _time(cls, v: str) -> str:
        _parse_hhmm(v)
        return v


class PolicySection(StrictModel):
    timezone: TimeZoneName = "Asia/Shanghai"
    curfew: CurfewSection | None = None
    anti_passback: bool = False
    anti_passback_window_s: float = Field(default=4 * 3600.0, gt=0)

    def access_policy(self) -> AccessPolicy:
        """The pure policy settings these stand for."""
        curfew = None
        if self.curfew is not None:
            curfew = Curfew(_parse_hhmm(self.curfew.start), _parse_hhmm(self.curfew.end))
        return AccessPolicy(
            timezone=self.timezone,
            curfew=curfew,
            anti_passback=self.anti_passback,
            anti_passback_window_s=self.anti_passback_window_s,
        )


class ContactSection(StrictModel):
    kind: Literal["none", "mqtt", "gpio"] = "none"
    topic: str | None = Field(default=None, description="MQTT topic of the contact sensor")
    pin: int | None = Field(default=None, ge=0)
    held_open_after_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _needs_target(self) -> Self:
        if self.kind == "mqtt" and not self.topic:
            raise ValueError("contact kind 'mqtt' needs 'topic'")
        if self.kind == "gpio" and self.pin is None:
            raise ValueError("contact kind 'gpio' needs 'pin'")
        return self


class DoorSection(StrictModel):
    kind: Literal["simulated", "gpio", "mqtt_relay"] = "simulated"
    open_time_s: float = Field(default=3.0, gt=0, le=120)
    pin: int | None = Field(default=None, ge=0, description="GPIO pin of the lock relay")
    active_high: bool = True
    relay_topic: str | None = Field(default=None, description="e.g. cmnd/gate1-relay/POWER")
    contact: ContactSection = Field(default_factory=ContactSection)

    @model_validator(mode="after")
    def _needs_target(self) -> Self:
        if self.kind == "gpio" and self.pin is None:
            raise ValueError("door kind 'gpio' needs 'pin'")
        if self.kind == "mqtt_relay" and not self.relay_topic:
            raise ValueError("door kind 'mqtt_relay' needs 'relay_topic'")
        if self.relay_topic and any(c in self.relay_topic for c in "+#"):
            raise ValueError("relay_topic must not contain MQTT wildcards")
        return self


class CredentialsSection(StrictModel):
    card_mqtt: bool = Field(default=True, description="accept card/PIN readers over MQTT")
    keyboard_wedge: bool = Field(default=False, description="read card UIDs from stdin")


class GallerySection(StrictModel):
    path: Path = Field(description="encrypted gallery file")
    key: Secret = Field(description="AES-256 key (base64) from a file or environment variable")


class CommandAuthSection(StrictModel):
    """Who may command this gate: commands and gallery updates must be signed by the gateway."""

    trusted_keys: list[str] = Field(
        min_length=1,
        description="the gateway's Ed25519 public keys, 'ed25519:<base64>' (dormguard keys "
        "generate prints one); two during a key rotation. Anything signed otherwise is refused "
        "and reported as an attack",
    )
    max_age_s: float = Field(
        default=60.0, gt=0, le=3600, description="refuse commands older than this (stale unlock)"
    )
    max_future_s: float = Field(
        default=30.0, ge=0, le=600, description="clock skew tolerated for commands dated ahead"
    )
    nonce_store: Path | None = Field(
        default=None,
        description="file of used command nonces (default: next to the outbox, .nonces)",
    )

    @field_validator("trusted_keys")
    @classmethod
    def _keys_parse(cls, value: list[str]) -> list[str]:
        MessageVerifier.from_texts(value)  # ValueError names the bad key by position
        return value

    def freshness_rule(self) -> FreshnessRule:
        """How old, or how far ahead of the gate's clock, a command may be."""
        return FreshnessRule(max_age_s=self.max_age_s, max_future_s=self.max_future_s)


class OutboxSection(StrictModel):
    path: Path
    min_free_mb: int = Field(default=50, ge=1)


class SnapshotSection(StrictModel):
    enabled: bool = Field(default=False, description="keep images of denied/unknown attempts")
    directory: Path | None = None
    retention_days: float = Field(default=7.0, gt=0, le=365)

    @model_validator(mode="after")
    def _needs_dir(self) -> Self:
        if self.enabled and self.directory is None:
            raise ValueError("snapshots enabled but no 'directory' given")
        return self


class ProbeSection(StrictModel):
    """Probe encodings kept for wrong-match reports (encrypted, bounded; docs/decisions/0014)."""

    enabled: bool = Field(
        default=True,
        description="keep the probe behind each face decision so a guard can report a wrong "
        "match; off: wrong-match reports fail at this gate",
    )
    path: Path | None = Field(
        default=None, description="SQLite file; default next to the outbox (<outbox>.probes)"
    )
    retention_days: float = Field(default=7.0, gt=0, le=90, description="kept at most this long")
    max_count: int = Field(default=20000, ge=1, le=1_000_000, description="newest kept only")


class GateConfig(StrictModel):
    """Everything one gate daemon needs."""

    site: str
    building: str
    gate: GateSection
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    source: SourceSection
    detection: DetectionSection = Field(default_factory=DetectionSection)
    encoding: EncodingSection = Field(default_factory=EncodingSection)
    matching: MatchingSection = Field(default_factory=MatchingSection)
    confirmation: ConfirmationSection = Field(default_factory=ConfirmationSection)
    liveness: LivenessSection = Field(default_factory=LivenessSection)
    policy: PolicySection = Field(default_factory=PolicySection)
    door: DoorSection = Field(default_factory=DoorSection)
    credentials: CredentialsSection = Field(default_factory=CredentialsSection)
    gallery: GallerySection
    outbox: OutboxSection
    command_auth: CommandAuthSection
    snapshots: SnapshotSection = Field(default_factory=SnapshotSection)
    probes: ProbeSection = Field(default_factory=ProbeSection)
    heartbeat_s: float = Field(default=10.0, gt=0)

    @field_validator("site", "building")
    @classmethod
    def _segment(cls, v: str) -> str:
        return check_segment(v, "site/building")

    @field_validator("confirmation")
    @classmethod
    def _confirmation_fits_tolerance(
        cls, value: ConfirmationSection, info: ValidationInfo
    ) -> ConfirmationSection:
        matching = info.data.get("matching")
        if isinstance(matching, MatchingSection) and value.strong_distance > matching.tolerance:
            raise ValueError(
                "strong_distance must not exceed matching.tolerance "
                f"({value.strong_distance} > {matching.tolerance})"
            )
        return value

    @property
    def nonce_store(self) -> Path:
        """Where the used command nonces are kept."""
        configured = self.command_auth.nonce_store
        return configured or self.outbox.path.with_name(self.outbox.path.name + ".nonces")

    @property
    def probe_store(self) -> Path:
        """Where the probes of recent face decisions are kept (encrypted)."""
        return self.probes.path or self.outbox.path.with_name(self.outbox.path.name + ".probes")

    @property
    def producer_id(self) -> str:
        return f"gate:{self.site}/{self.building}/{self.gate.id}"
