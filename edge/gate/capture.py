"""Frame sources through OpenCV: V4L2 cameras, RTSP/HTTP streams, video files, image folders.

The only module of the gate that reads frames with cv2. Each source is a `Grabber` (its thread,
hand-off and backoff are in grabber.py); `open_source` builds the one a `SourceSpec` describes.
"""

from __future__ import annotations

import logging
import math
import time
from enum import Enum
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.gate.frames import (
    IMAGE_SUFFIXES,
    CaptureKind,
    FrameSource,
    SourceSpec,
    camera_index,
    redact_url,
    validate_spec,
)
from edge.gate.grabber import Grabber

logger = logging.getLogger(__name__)

_FILE_FPS_FALLBACK = 15.0
# A container's FPS property outside this range is junk (0, NaN, 90000 time bases).
_FILE_FPS_SANE = (0.5, 240.0)
_FOLDER_FPS_DEFAULT = 10.0
# Bounds how long open/read of a network stream may block, and with it how long stop() waits
# (grabber.JOIN_TIMEOUT_S).
_STREAM_TIMEOUT_MS = 5000


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


class CaptureSource(Grabber):
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


class FolderSource(Grabber):
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
