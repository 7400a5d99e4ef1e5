"""Encoding several faces of one frame at once, in worker processes.

dlib keeps the interpreter lock while it computes an encoding, so threads do not help (two
threads were never faster than one, docs/benchmarks.md, rush hour); processes do, when a core
is free. Each worker loads the models once; it gets the face's
crop (the face and a margin of one face width around it, so dlib's landmarks and its aligned
150x150 chip see exactly the pixels they would in the whole frame) and returns the encodings.

A frame with fewer than two faces to encode never touches the pool: one face is encoded in the
gate's own process, as before, and pays no pickling or hand-over. A worker that dies or stops
answering within `timeout_s` breaks the pool: the error is logged once, the frame is encoded in
process, and so is every later frame (restart the daemon to get the pool back).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from time import monotonic, sleep

import numpy as np

from faces.box import Box
from faces.engine import DlibFaceEngine, FaceEngine

log = logging.getLogger(__name__)

MIN_FACES_FOR_POOL = 2

_worker_engine: FaceEngine | None = None


def _start_worker(factory: Callable[[], FaceEngine]) -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    global _worker_engine
    engine = factory()
    start = getattr(engine, "start", None)
    if callable(start):
        start()
    _worker_engine = engine


def _encode_in_worker(rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
    assert _worker_engine is not None, "worker started without an engine"
    return _worker_engine.encode(rgb, boxes)


def _ready(hold_s: float) -> int:
    sleep(hold_s)  # so that one worker cannot take every start-up job
    return os.getpid()


def face_crop(rgb: np.ndarray, box: Box) -> tuple[np.ndarray, Box]:
    """The face and a margin of one face width around it, and the box in the crop's pixels."""
    margin = max(box.width, box.height)
    height, width = rgb.shape[:2]
    top, left = max(0, box.top - margin), max(0, box.left - margin)
    bottom, right = min(height, box.bottom + margin), min(width, box.right + margin)
    crop = np.ascontiguousarray(rgb[top:bottom, left:right])
    return crop, Box(
        top=box.top - top, right=box.right - left, bottom=box.bottom - top, left=box.left - left
    )


def resolve_workers(setting: int | str) -> int:
    """`auto` is the CPUs this process may run on (at most 4); 1 means no pool."""
    if setting == "auto":
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cpus = os.cpu_count() or 1
        return max(1, min(cpus, 4))
    return int(setting)


class EncoderPool:
    """Encodes a frame's faces: one in process, several at once in `workers` processes."""

    def __init__(
        self,
        engine: FaceEngine,
        workers: int,
        *,
        timeout_s: float = 5.0,
        start_timeout_s: float = 60.0,
        worker_engine: Callable[[], FaceEngine] = DlibFaceEngine,
        min_faces: int = MIN_FACES_FOR_POOL,
    ) -> None:
        self.engine = engine
        self.workers = workers
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.worker_engine = worker_engine
        self.min_faces = min_faces  # fewer faces than this are encoded in process
        self.failure: str | None = None  # why the pool was given up, if it was
        self.pooled_frames = 0
        self._pool: ProcessPoolExecutor | None = None

    @property
    def running(self) -> bool:
        """Whether frames with several faces go to the worker processes."""
        return self._pool is not None

    def start(self) -> None:
        """Start the workers and wait until each has loaded the models."""
        if self.workers < 2 or self._pool is not None:
            return
        context = multiprocessing.get_context("spawn")  # the gate has threads: never fork
        self._pool = ProcessPoolExecutor(
            self.workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(self.worker_engine,),
        )
        # A worker runs its initializer (loads the models) before its first job: once every
        # worker has answered one, the first real frame pays no model loading.
        deadline = monotonic() + self.start_timeout_s
        answered: set[int] = set()
        try:
            while len(answered) < self.workers:
                ready = [self._pool.submit(_ready, 0.05) for _ in range(self.workers)]
                for future in ready:
                    answered.add(future.result(timeout=max(0.0, deadline - monotonic())))
        except (BrokenProcessPool, FutureTimeout, OSError) as exc:
            self._give_up(f"the encoder workers did not start: {exc!r}")
            return
        log.info("face encoder pool started: %s worker processes", self.workers)

    def encode(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        """128-d encodings of the given faces, in order (the engine's own `encode` contract)."""
        if len(boxes) < self.min_faces or self._pool is None:
            return self.engine.encode(rgb, boxes)
        try:
            futures: list[Future[list[np.ndarray]]] = []
            for box in boxes:
                crop, crop_box = face_crop(rgb, box)
                futures.append(self._pool.submit(_encode_in_worker, crop, [crop_box]))
            deadline = monotonic() + self.timeout_s
            encodings: list[np.ndarray] = []
            for future in futures:
                found = future.result(timeout=max(0.0, deadline - monotonic()))
                if len(found) != 1:
                    raise ValueError(f"a worker returned {len(found)} encodings for one face")
                encodings.append(found[0])
        except (BrokenProcessPool, FutureTimeout, OSError, ValueError) as exc:
            reason = "timed out" if isinstance(exc, FutureTimeout) else repr(exc)
            self._give_up(f"an encoder worker failed ({reason})")
            return self.engine.encode(rgb, boxes)
        self.pooled_frames += 1
        return encodings

    def stop(self) -> None:
        """Stop the workers (queued work is dropped; the frame loop has ended)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _give_up(self, reason: str) -> None:
        self.failure = reason
        log.error(
            "%s: faces are encoded in the gate's own process from now on "
            "(one at a time; restart the gate to use %s workers again)",
            reason,
            self.workers,
        )
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # A hung worker never finishes its job: end the workers, then let the pool go.
        for process in list(getattr(pool, "_processes", {}).values()):
            if process.is_alive():
                process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
