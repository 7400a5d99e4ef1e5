"""What the gate daemon reads frames from: the `FrameSource` interface, its values and specs.

A source serves only the newest frame and reports its own health; it never raises into the
consumer. grabber.py holds the thread that keeps the newest frame, capture.py the OpenCV
sources (camera, stream, video file, image folder) and `open_source`, which builds one from a
`SourceSpec`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

SourceKind = Literal["camera", "stream", "file", "folder"]
CaptureKind = Literal["camera", "stream", "file"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
STREAM_SCHEMES = ("rtsp://", "http://", "https://")

_DEV_VIDEO = re.compile(r"^/dev/video(\d+)$")


@dataclass(frozen=True)
class Frame:
    """One captured BGR uint8 image, its sequence number and its time.monotonic() capture time."""

    image: npt.NDArray[np.uint8]
    seq: int
    captured_at: float


@dataclass(frozen=True)
class SourceStatus:
    """Health and counters of a frame source at one moment."""

    healthy: bool
    detail: str
    reconnects: int
    frames: int
    skipped_bad: int
    last_frame_age_s: float | None


@dataclass(frozen=True)
class SourceSpec:
    """What to open: a camera, stream, video file or image folder, with its capture options."""

    kind: SourceKind
    target: str
    fps: float | None = None
    loop: bool = True
    width: int | None = None
    height: int | None = None
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 10.0


class FrameSource(Protocol):
    """A source of frames that always serves the newest one and reports its own health."""

    def start(self) -> None:
        """Start the grabber thread; opening happens there, so start() never blocks on I/O."""

    def latest(self, timeout: float) -> Frame | None:
        """The newest frame newer than the last one returned, waiting up to ``timeout`` s."""

    def status(self) -> SourceStatus:
        """Current health, detail and counters."""

    def stop(self) -> None:
        """Stop the grabber thread and release the device or file."""


def redact_url(url: str) -> str:
    """The URL with any user name and password replaced by ``***``, for logs and details."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def camera_index(target: str) -> int:
    """The V4L2 index of a camera given as ``"3"`` or ``"/dev/video3"``; ValueError otherwise."""
    text = target.strip()
    match = _DEV_VIDEO.match(text)
    if match:
        return int(match.group(1))
    if text.isascii() and text.isdigit():
        return int(text)
    raise ValueError(
        f"camera target must be a camera index such as 0 or a /dev/videoN path, got {target!r}"
    )


def validate_spec(spec: SourceSpec) -> None:
    """Raise ValueError saying what is wrong with ``spec``; return quietly when it is usable."""
    if spec.kind not in ("camera", "stream", "file", "folder"):
        raise ValueError(f"source kind must be camera, stream, file or folder, got {spec.kind!r}")
    if not spec.target.strip():
        raise ValueError(f"{spec.kind} source needs a target, got an empty string")
    if spec.kind == "camera":
        camera_index(spec.target)
    elif spec.kind == "stream":
        lowered = spec.target.lower()
        if not lowered.startswith(STREAM_SCHEMES):
            raise ValueError(
                "stream target must start with rtsp://, http:// or https://, "
                f"got {redact_url(spec.target)!r}"
            )
        if not urlsplit(spec.target).hostname:
            raise ValueError(f"stream target has no host: {redact_url(spec.target)!r}")
    if spec.fps is not None and not (math.isfinite(spec.fps) and spec.fps > 0):
        raise ValueError(f"fps must be a positive number, got {spec.fps!r}")
    for name, size in (("width", spec.width), ("height", spec.height)):
        if size is None:
            continue
        if spec.kind != "camera":
            raise ValueError(f"{name} applies only to camera sources, not to a {spec.kind}")
        if size <= 0:
            raise ValueError(f"{name} must be a positive number of pixels, got {size!r}")
    if not (math.isfinite(spec.initial_backoff_s) and spec.initial_backoff_s > 0):
        raise ValueError(f"initial_backoff_s must be > 0, got {spec.initial_backoff_s!r}")
    if not (math.isfinite(spec.max_backoff_s) and spec.max_backoff_s >= spec.initial_backoff_s):
        raise ValueError(
            f"max_backoff_s must be >= initial_backoff_s ({spec.initial_backoff_s}), "
            f"got {spec.max_backoff_s!r}"
        )
