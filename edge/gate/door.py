"""Door actuators (lock relays) and the GPIO door-contact input.

Every actuator unlocks for a duration and relocks by itself; a second ``open()`` while unlocked
extends the unlock to whichever deadline is later. One worker thread per actuator does the
relocking, and every drive of the hardware happens under the actuator's lock, so an unlock and a
relock can never reach the relay out of order.

For a Tasmota relay (:class:`MqttRelayDoor`, commanded on ``cmnd/<topic>/POWER``) also set
Tasmota's ``PulseTime`` so the relay drops on its own even if this daemon, the broker or the
network dies while the door is unlocked: the daemon's OFF is the normal path, ``PulseTime`` is the
hardware fail-safe. Values 1-111 are tenths of a second and 112 up are seconds + 100, so
``PulseTime 50`` is 5 s and ``PulseTime 115`` is 15 s. Choose it a little longer than the longest
open time the gate uses, or the relay will cut an extended unlock short (an extending ``open()``
sends no second ON).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal, Protocol

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Publish = Callable[[str, bytes, int, bool], None]
LockTransition = Literal["unlocked", "locked"]

_GPIO_MISSING = "GPIO door needs the 'gpio' extra: pip install dormguard[gpio]"
# Longest single wait of the relock worker: bounds how late a relock can be when the clock is
# not the wall of real time (an injected test clock) or jumps.
_MAX_WAIT_S = 0.25
_RELOCK_RETRY_S = 1.0
_JOIN_TIMEOUT_S = 5.0


class DoorActuator(Protocol):
    """A door lock that can be unlocked for a while and relocked."""

    def start(self) -> None:
        """Acquire the hardware and start the relock worker."""

    def open(self, duration_s: float) -> None:
        """Unlock for ``duration_s`` seconds, then relock; extends an unlock in progress."""

    def lock(self) -> None:
        """Relock immediately."""

    def stop(self) -> None:
        """Relock and release the hardware."""

    @property
    def is_unlocked(self) -> bool:
        """Whether the door is currently unlocked."""


class ContactInput(Protocol):
    """A hardware door-contact input (GPIO) that calls back on changes."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class _TimedDoor:
    """Unlock/relock bookkeeping shared by the actuators; subclasses implement ``_drive``."""

    # Whether stop() commands "locked" even when the door is believed locked already (real
    # hardware may have been switched by hand, so stop() re-asserts it).
    _relock_on_stop_always: ClassVar[bool] = False

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._unlocked = False
        self._relock_at: float | None = None
        self._running = False
        self._worker: threading.Thread | None = None

    @property
    def is_unlocked(self) -> bool:
        """Whether the door is currently unlocked."""
        with self._cond:
            return self._unlocked

    def start(self) -> None:
        """Acquire the hardware and start the relock worker."""
        with self._cond:
            if self._running:
                return
            self._acquire()
            self._running = True
            self._worker = threading.Thread(
                target=self._relock_loop, name=f"{type(self).__name__}-relock", daemon=True
            )
            self._worker.start()

    def open(self, duration_s: float) -> None:
        """Unlock for ``duration_s`` seconds, then relock; extends an unlock in progress."""
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise ValueError(f"door open duration must be > 0 s, got {duration_s!r}")
        with self._cond:
            if not self._running:
                raise RuntimeError(f"{type(self).__name__}.open() called before start()")
            deadline = self._clock() + duration_s
            if not self._unlocked:
                self._drive(True)
                self._unlocked = True
                logger.info("door unlocked for %.2f s", duration_s)
            if self._relock_at is None or deadline > self._relock_at:
                self._relock_at = deadline
            self._cond.notify_all()

    def lock(self) -> None:
        """Relock immediately."""
        with self._cond:
            if not self._unlocked:
                self._relock_at = None
                return
            try:
                self._drive(False)
            except Exception:
                # Leave the worker to retry the relock; the caller still hears of the failure.
                self._relock_at = self._clock() + _RELOCK_RETRY_S
                self._cond.notify_all()
                raise
            self._unlocked = False
            self._relock_at = None
            self._cond.notify_all()
            logger.info("door locked on request")

    def stop(self) -> None:
        """Relock, stop the relock worker and release the hardware."""
        with self._cond:
            self._running = False
            self._relock_at = None
            self._cond.notify_all()
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.join(timeout=_JOIN_TIMEOUT_S)
        with self._cond:
            try:
                if self._unlocked or (worker is not None and self._relock_on_stop_always):
                    self._drive(False)
                    self._unlocked = False
                    logger.info("door locked on stop")
            finally:
                self._release()

    def _relock_loop(self) -> None:
        with self._cond:
            while self._running:
                if self._relock_at is None:
                    self._cond.wait()
                    continue
                remaining = self._relock_at - self._clock()
                if remaining > 0:
                    self._cond.wait(min(remaining, _MAX_WAIT_S))
                    continue
                try:
                    self._drive(False)
                except Exception:
                    logger.exception("door relock failed, retrying in %.1f s", _RELOCK_RETRY_S)
                    self._relock_at = self._clock() + _RELOCK_RETRY_S
                    continue
                self._unlocked = False
                self._relock_at = None
                logger.info("door relocked after open time")

    def _acquire(self) -> None:
        """Open the hardware; called once from start() under the lock."""

    def _release(self) -> None:
        """Release the hardware; called once from stop() under the lock."""

    def _drive(self, unlocked: bool) -> None:
        raise NotImplementedError


class SimulatedDoor(_TimedDoor):
    """In-memory door that records its lock transitions with their monotonic times."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        super().__init__(clock)
        self._transitions: list[tuple[float, LockTransition]] = []

    @property
    def transitions(self) -> list[tuple[float, LockTransition]]:
        """A copy of the recorded (monotonic time, "unlocked" | "locked") transitions."""
        with self._cond:
            return list(self._transitions)

    def _drive(self, unlocked: bool) -> None:
        self._transitions.append((self._clock(), "unlocked" if unlocked else "locked"))


class MqttRelayDoor(_TimedDoor):
    """Lock relay behind MQTT, such as a Tasmota relay on ``cmnd/<topic>/POWER``.

    ``publish(topic, payload, qos, retain)`` must raise rather than drop when it cannot deliver.
    Commands go at QoS 1 and are never retained: a retained ON would unlock the door again
    whenever the relay reconnects.
    """

    _relock_on_stop_always: ClassVar[bool] = True

    def __init__(
        self,
        publish: Publish,
        command_topic: str,
        on_payload: str = "ON",
        off_payload: str = "OFF",
    ) -> None:
        if not command_topic or any(c in command_topic for c in "+#\x00"):
            raise ValueError(
                f"relay command topic {command_topic!r} must be a non-empty topic name "
                "without '+', '#' or NUL (it is published to, not subscribed)"
            )
        super().__init__()
        self.publish = publish
        self.command_topic = command_topic
        self.on_payload = on_payload
        self.off_payload = off_payload

    def _acquire(self) -> None:
        # Relock on start in case a previous run died while the door was unlocked; best effort,
        # since a broker that is down at boot must not keep the gate from starting.
        try:
            self._drive(False)
        except Exception as exc:
            logger.warning("could not send relock to %s on start: %s", self.command_topic, exc)

    def _drive(self, unlocked: bool) -> None:
        payload = self.on_payload if unlocked else self.off_payload
        self.publish(self.command_topic, payload.encode("utf-8"), 1, False)


class GpioDoor(_TimedDoor):
    """Lock relay or strike on a Raspberry Pi GPIO pin (gpiozero ``OutputDevice``)."""

    _relock_on_stop_always: ClassVar[bool] = True

    def __init__(self, pin: int, active_high: bool = True) -> None:
        super().__init__()
        self.pin = pin
        self.active_high = active_high
        self._device: Any = None

    def _acquire(self) -> None:
        try:
            from gpiozero import OutputDevice
        except ImportError as exc:
            raise RuntimeError(_GPIO_MISSING) from exc
        self._device = OutputDevice(self.pin, active_high=self.active_high, initial_value=False)

    def _release(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            device.close()

    def _drive(self, unlocked: bool) -> None:
        if self._device is None:
            raise RuntimeError("GpioDoor is not started")
        if unlocked:
            self._device.on()
        else:
            self._device.off()


class GpioContact:
    """Door contact (reed switch) on a GPIO pin; calls ``on_change(is_open)`` on every change.

    Wiring assumed: a switch from the pin to ground that is closed while the door is closed
    (gpiozero ``Button`` with the internal pull-up), so "pressed" means the door is closed.
    ``on_change`` runs on gpiozero's thread, and once from start() with the current state.
    """

    def __init__(
        self, pin: int, on_change: Callable[[bool], None], bounce_time_s: float | None = 0.05
    ) -> None:
        self.pin = pin
        self.on_change = on_change
        self.bounce_time_s = bounce_time_s
        self._button: Any = None

    def start(self) -> None:
        """Open the pin, report the current state and watch for changes."""
        if self._button is not None:
            return
        try:
            from gpiozero import Button
        except ImportError as exc:
            raise RuntimeError(_GPIO_MISSING) from exc
        button = Button(self.pin, pull_up=True, bounce_time=self.bounce_time_s)
        button.when_pressed = lambda: self._report(False)
        button.when_released = lambda: self._report(True)
        self._button = button
        self._report(not button.is_pressed)

    def stop(self) -> None:
        """Stop watching and release the pin."""
        button, self._button = self._button, None
        if button is not None:
            button.close()

    def _report(self, is_open: bool) -> None:
        try:
            self.on_change(is_open)
        except Exception:
            # gpiozero would swallow it on its own thread; make it visible instead.
            logger.exception("door contact handler failed (pin=%s, open=%s)", self.pin, is_open)
