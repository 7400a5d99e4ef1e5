"""Frame sources for the gate daemon: cameras, streams, video files and image folders via OpenCV.

Every source runs one grabber thread (started in ``start()``) that reads continuously and keeps
only the newest frame. ``latest()`` hands out that frame once; when the consumer is slower than
the source, the frames in between are dropped, so the consumer never works through a backlog and
the gate never lags behind the person standing in front of it.

A source that cannot open or read marks itself degraded (``status().healthy`` False, ``detail``
naming the source and what failed), releases what it holds and retries with exponential backoff,
counting the retries in ``status().reconnects``. It never raises into the consumer.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

SourceKind = Literal["camera", "stream", "file", "folder"]
CaptureKind = Literal["camera", "stream", "file"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
STREAM_SCHEMES = ("rtsp://", "http://", "https://")

_DEV_VIDEO = re.compile(r"^/dev/video(\d+)$")
_FILE_FPS_FALLBACK = 15.0
# A container's FPS property outside this range is junk (0, NaN, 90000 time bases).
_FILE_FPS_SANE = (0.5, 240.0)
_FOLDER_FPS_DEFAULT = 10.0
# Bounds how long open/read of a network stream may block, and with it how long stop() waits.
_STREAM_TIMEOUT_MS = 5000
_JOIN_TIMEOUT_S = 6.0
_JITTER = 0.1
# 2**30 times any sane initial backoff is far past any max_backoff_s; the cap avoids overflow.
_MAX_BACKOFF_EXPONENT = 30


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


def open_source(spec: SourceSpec) -> FrameSource:
    """Build the frame source ``spec`` describes (not started); ValueError if spec is invalid."""
    validate_spec(spec)
    if spec.kind == "folder":
        return FolderSource(
            spec.target,
            fps=spec.fps if spec.fps is not None else _FOLDER_FPS_DEFAULT,
            initial_backoff_s=spec.initial_backoff_s,
            max_backoff_s=spec.max_backoff_s,
        )
    target: int | str = camera_index(spec.target) if spec.kind == "camera" else spec.target
    return CaptureSource(
        spec.kind,
        target,
        loop=spec.loop,
        fps_limit=spec.fps,
        width=spec.width,
        height=spec.height,
        initial_backoff_s=spec.initial_backoff_s,
        max_backoff_s=spec.max_backoff_s,
    )


class _Grabber:
    """Newest-frame hand-off, status and thread lifecycle shared by the sources."""

    def __init__(self, name: str, initial_backoff_s: float, max_backoff_s: float) -> None:
        self.name = name
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._cond = threading.Condition()
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._newest: Frame | None = None
        self._returned_seq = 0
        self._frames = 0
        self._reconnects = 0
        self._skipped_bad = 0
        self._healthy = False
        self._detail = f"{name}: not started"

    def start(self) -> None:
        """Start the grabber thread; opening happens there, so start() never blocks on I/O."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                if self._running and not self._stop_requested.is_set():
                    return
                raise RuntimeError(f"{self.name}: previous grabber thread has not exited yet")
            self._stop_requested.clear()
            self._running = True
            self._healthy = False
            self._detail = f"{self.name}: opening"
            self._thread = threading.Thread(
                target=self._thread_main, name=f"frames {self.name}", daemon=True
            )
            self._thread.start()

    def latest(self, timeout: float) -> Frame | None:
        """The newest frame newer than the last one returned, waiting up to ``timeout`` s."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while True:
                frame = self._newest
                if frame is not None and frame.seq > self._returned_seq:
                    self._returned_seq = frame.seq
                    return frame
                if not self._running:
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def status(self) -> SourceStatus:
        """Current health, detail and counters."""
        with self._cond:
            newest = self._newest
            return SourceStatus(
                healthy=self._healthy,
                detail=self._detail,
                reconnects=self._reconnects,
                frames=self._frames,
                skipped_bad=self._skipped_bad,
                last_frame_age_s=None if newest is None else time.monotonic() - newest.captured_at,
            )

    def stop(self) -> None:
        """Stop the grabber thread and release the device or file."""
        self._stop_requested.set()
        with self._cond:
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout=_JOIN_TIMEOUT_S)
            if thread.is_alive():
                # Blocked inside OpenCV; it releases its capture when the call returns.
                logger.warning("%s: grabber did not stop within %.1f s", self.name, _JOIN_TIMEOUT_S)
        with self._cond:
            self._running = False
            self._healthy = False
            self._detail = f"{self.name}: stopped"
            self._cond.notify_all()

    # --- for the grabber thread ---------------------------------------------------------------

    def _run(self) -> None:
        raise NotImplementedError

    def _thread_main(self) -> None:
        try:
            self._run()
        except Exception as exc:
            logger.exception("%s: grabber thread failed", self.name)
            self._set_health(False, f"{self.name}: grabber failed: {type(exc).__name__}")
        finally:
            with self._cond:
                self._running = False
                self._cond.notify_all()

    def _stopping(self) -> bool:
        return self._stop_requested.is_set()

    def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; True when stop() was called meanwhile."""
        return self._stop_requested.wait(max(0.0, seconds))

    def _backoff_then_count(self, failures: int) -> bool:
        """Sleep the backoff for the n-th consecutive failure; True when stopping instead."""
        exponent = min(failures - 1, _MAX_BACKOFF_EXPONENT)
        delay = min(self._max_backoff_s, self._initial_backoff_s * 2.0**exponent)
        delay *= 1.0 + random.uniform(-_JITTER, _JITTER)
        logger.debug("%s: retry %d in %.2f s", self.name, failures, delay)
        if self._sleep(delay):
            return True
        with self._cond:
            self._reconnects += 1
        return False

    def _publish(self, image: npt.NDArray[np.uint8]) -> None:
        with self._cond:
            if self._stopping():
                return
            self._frames += 1
            self._newest = Frame(image=image, seq=self._frames, captured_at=time.monotonic())
            if not self._healthy:
                self._healthy = True
                self._detail = f"{self.name}: ok"
                if self._reconnects:
                    logger.info(
                        "%s: delivering frames (%d reconnects so far)", self.name, self._reconnects
                    )
                else:
                    logger.info("%s: delivering frames", self.name)
            self._cond.notify_all()

    def _set_health(self, healthy: bool, detail: str) -> None:
        with self._cond:
            if self._stopping():
                return
            changed = detail != self._detail
            self._healthy = healthy
            self._detail = detail
            self._cond.notify_all()
        if not healthy and changed:
            logger.warning("%s", detail)
        elif not healthy:
            logger.debug("%s (again)", detail)

    def _count_bad(self) -> None:
        with self._cond:
            self._skipped_bad += 1


class _Pump(Enum):
    STOPPED = "stopped"
    FAILED = "failed"
    END_OF_FILE = "end of file"


def _as_bgr(image: Any) -> npt.NDArray[np.uint8] | None:
    """The image as a 3-channel uint8 BGR array, or None when OpenCV returned something else."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0:
        return None
    if image.ndim == 2:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGRA2BGR), dtype=np.uint8)
    return None


class CaptureSource(_Grabber):
    """A V4L2 camera index, an RTSP/HTTP stream or a video file read through cv2.VideoCapture.

    Live sources (camera, stream) are read as fast as they deliver, which drains OpenCV's own
    buffer so the newest frame is really new. Files are paced at ``fps_limit``, else at the
    file's FPS property, else at 15 fps; at their end they rewind when ``loop`` is set and
    otherwise report ``"ended"``. ``width``/``height``/``fps_limit`` are requested from cameras
    (the driver may pick the nearest mode it supports); streams ignore ``fps_limit``.
    """

    def __init__(
        self,
        kind: CaptureKind,
        target: int | str,
        *,
        loop: bool = True,
        fps_limit: float | None = None,
        width: int | None = None,
        height: int | None = None,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        name = redact_url(str(target)) if kind == "stream" else str(target)
        super().__init__(f"{kind} {name}", initial_backoff_s, max_backoff_s)
        self.kind = kind
        self.target = target
        self.loop = loop
        self.fps_limit = fps_limit
        self.width = width
        self.height = height

    def _run(self) -> None:
        failures = 0
        while not self._stopping():
            if failures and self._backoff_then_count(failures):
                return
            cap, problem = self._open()
            if cap is None:
                failures += 1
                self._set_health(False, f"{self.name}: {problem}")
                continue
            try:
                outcome, delivered = self._pump(cap)
            finally:
                cap.release()
            if delivered:
                failures = 0
            if outcome is _Pump.STOPPED:
                return
            if outcome is _Pump.END_OF_FILE:
                if self.loop:
                    # Reopening rewinds any container; seeking to frame 0 is unreliable in some.
                    logger.debug("%s: end of file, rewinding", self.name)
                    continue
                self._set_health(False, f"{self.name}: ended")
                return
            failures += 1
            what = "read failed" if delivered else "opened but no frame could be read"
            self._set_health(False, f"{self.name}: {what}")

    def _open(self) -> tuple[Any, str]:
        """An opened cv2.VideoCapture and "", or None and what went wrong."""
        if self.kind == "file" and not Path(str(self.target)).is_file():
            return None, "is not a file" if Path(str(self.target)).exists() else "does not exist"
        try:
            if self.kind == "camera":
                cap = cv2.VideoCapture(int(self.target), cv2.CAP_V4L2)
            elif self.kind == "stream":
                timeouts = [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                    _STREAM_TIMEOUT_MS,
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                    _STREAM_TIMEOUT_MS,
                ]
                cap = cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG, timeouts)
            else:
                cap = cv2.VideoCapture(str(self.target))
        except cv2.error as exc:
            return None, f"cannot open ({str(exc).strip()})"
        if not cap.isOpened():
            cap.release()
            return None, "cannot open"
        if self.kind == "camera":
            self._configure_camera(cap)
        return cap, ""

    def _configure_camera(self, cap: Any) -> None:
        # One driver buffer: a frame read is the newest the camera has, not one from a queue.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self.width is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height is not None:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps_limit is not None:
            cap.set(cv2.CAP_PROP_FPS, self.fps_limit)
        logger.info(
            "%s: opened at %dx%d, %.1f fps",
            self.name,
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            cap.get(cv2.CAP_PROP_FPS),
        )

    def _file_fps(self, cap: Any) -> float:
        if self.fps_limit is not None:
            return self.fps_limit
        reported = float(cap.get(cv2.CAP_PROP_FPS))
        low, high = _FILE_FPS_SANE
        if math.isfinite(reported) and low <= reported <= high:
            return reported
        return _FILE_FPS_FALLBACK

    def _pump(self, cap: Any) -> tuple[_Pump, int]:
        """Read from an open capture until stop, failure or end of file; returns frames read."""
        interval = 1.0 / self._file_fps(cap) if self.kind == "file" else 0.0
        next_due = time.monotonic()
        delivered = 0
        while True:
            if interval:
                self._sleep(next_due - time.monotonic())
            if self._stopping():
                return _Pump.STOPPED, delivered
            try:
                ok, raw = cap.read()
            except cv2.error as exc:
                logger.warning("%s: read raised %s", self.name, str(exc).strip())
                ok, raw = False, None
            image = _as_bgr(raw) if ok else None
            if image is None:
                if self._stopping():
                    return _Pump.STOPPED, delivered
                # A file that gave frames and now gives none has ended; a read error half-way
                # through a file looks the same to OpenCV and is treated the same.
                if self.kind == "file" and delivered:
                    return _Pump.END_OF_FILE, delivered
                return _Pump.FAILED, delivered
            self._publish(image)
            delivered += 1
            if interval:
                # Never burst to catch up after a stall: the consumer wants now, not the past.
                next_due = max(next_due + interval, time.monotonic())


class FolderSource(_Grabber):
    """Images of a folder (sorted *.jpg, *.jpeg, *.png, *.bmp), looped and paced at ``fps``.

    The folder is listed again at the start of every pass, so images added or removed show up
    on the next loop. An image cv2.imread cannot decode is skipped, counted in
    ``skipped_bad`` and logged with its path; the source carries on with the next one.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        fps: float = _FOLDER_FPS_DEFAULT,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        super().__init__(f"folder {folder}", initial_backoff_s, max_backoff_s)
        self.folder = Path(folder)
        self.fps = fps

    def _run(self) -> None:
        failures = 0
        warned: set[Path] = set()
        interval = 1.0 / self.fps
        next_due = time.monotonic()
        while not self._stopping():
            if failures and self._backoff_then_count(failures):
                return
            problem = self._folder_problem()
            paths = [] if problem else self._image_paths()
            if not problem and not paths:
                suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
                problem = f"{self.name}: no images ({suffixes})"
            if problem:
                failures += 1
                self._set_health(False, problem)
                continue
            shown = 0
            for path in paths:
                if self._sleep(next_due - time.monotonic()):
                    return
                image = self._read(path, warned)
                if image is None:
                    continue
                self._publish(image)
                shown += 1
                next_due = max(next_due + interval, time.monotonic())
            if self._stopping():
                return
            if shown:
                failures = 0
            else:
                failures += 1
                self._set_health(
                    False, f"{self.name}: none of its {len(paths)} images could be decoded"
                )

    def _folder_problem(self) -> str:
        if not self.folder.exists():
            return f"{self.name} does not exist"
        if not self.folder.is_dir():
            return f"{self.name} is not a directory"
        return ""

    def _image_paths(self) -> list[Path]:
        try:
            entries = list(self.folder.iterdir())
        except OSError as exc:
            logger.warning("%s: cannot list: %s", self.name, exc)
            return []
        return sorted(p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())

    def _read(self, path: Path, warned: set[Path]) -> npt.NDArray[np.uint8] | None:
        if not path.is_file():
            logger.debug("%s: %s vanished before it was read", self.name, path)
            return None
        image = _as_bgr(cv2.imread(str(path), cv2.IMREAD_COLOR))
        if image is None:
            self._count_bad()
            # Once per file at warning level: a looping folder would repeat it every pass.
            if path not in warned:
                warned.add(path)
                logger.warning("%s: skipping undecodable image %s", self.name, path)
            else:
                logger.debug("%s: skipping undecodable image %s", self.name, path)
        return image
