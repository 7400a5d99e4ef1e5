"""The grabber thread every frame source runs, and the newest-frame hand-off to the consumer.

`start()` starts one thread that reads continuously and keeps only the newest frame.
``latest()`` hands out that frame once; when the consumer is slower than the source, the frames
in between are dropped, so the consumer never works through a backlog and the gate never lags
behind the person standing in front of it.

A source that cannot open or read marks itself degraded (``status().healthy`` False, ``detail``
naming the source and what failed), releases what it holds and retries with exponential backoff,
counting the retries in ``status().reconnects``. It never raises into the consumer.
"""

from __future__ import annotations

import logging
import random
import threading
import time

import numpy as np
import numpy.typing as npt

from edge.gate.frames import Frame, SourceStatus

logger = logging.getLogger(__name__)

# Longer than the stream open/read timeout (capture.py), which bounds how long stop() waits.
JOIN_TIMEOUT_S = 6.0
_JITTER = 0.1
# 2**30 times any sane initial backoff is far past any max_backoff_s; the cap avoids overflow.
_MAX_BACKOFF_EXPONENT = 30


class Grabber:
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
            thread.join(timeout=JOIN_TIMEOUT_S)
            if thread.is_alive():
                # Blocked inside OpenCV; it releases its capture when the call returns.
                logger.warning("%s: grabber did not stop within %.1f s", self.name, JOIN_TIMEOUT_S)
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
