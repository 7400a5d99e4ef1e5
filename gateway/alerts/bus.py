"""The live bus: alert changes fanned out to the WebSocket consoles as they are committed.

``AlertBus.publish`` may be called from any thread (the MQTT ingest thread, the maintenance
thread, a request worker): it never blocks, and a subscriber that cannot keep up is dropped
with a reason instead of slowing the ingest.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any

from gateway.alerts.views import AlertView

log = logging.getLogger(__name__)


class Overflow:
    """Put in a subscriber's queue when it fell too far behind; the reader closes with reason."""

    reason = "too slow: more than the queued alert changes were pending; reconnect"


OVERFLOW = Overflow()


@dataclass(eq=False, slots=True)
class _Subscriber:
    queue: asyncio.Queue[dict[str, Any] | Overflow]
    loop: asyncio.AbstractEventLoop
    dropped: bool = False


class AlertBus:
    """Thread-safe fan-out of alert changes to asyncio subscribers (one queue each)."""

    def __init__(self, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._subscribers: dict[int, _Subscriber] = {}
        self._lock = threading.Lock()

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | Overflow]:
        """A bounded queue of change messages, bound to the running event loop."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | Overflow] = asyncio.Queue(self._queue_size + 1)
        with self._lock:
            self._subscribers[id(queue)] = _Subscriber(queue, loop)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | Overflow]) -> None:
        """Stop delivering to this queue (idempotent)."""
        with self._lock:
            self._subscribers.pop(id(queue), None)

    @property
    def subscribers(self) -> int:
        """How many queues are subscribed."""
        with self._lock:
            return len(self._subscribers)

    def publish(self, message: dict[str, Any]) -> None:
        """Hand one message to every subscriber; callable from any thread, never blocks."""
        with self._lock:
            subscribers = list(self._subscribers.values())
        for sub in subscribers:
            try:
                sub.loop.call_soon_threadsafe(self._deliver, sub, message)
            except RuntimeError:  # the subscriber's loop is closed: it is gone
                self.unsubscribe(sub.queue)

    def _deliver(self, sub: _Subscriber, message: dict[str, Any]) -> None:
        """Runs in the subscriber's loop."""
        if sub.dropped:
            return
        if sub.queue.qsize() < self._queue_size:
            sub.queue.put_nowait(message)
            return
        # One slot is kept free for the overflow marker, so this never raises QueueFull.
        sub.dropped = True
        self.unsubscribe(sub.queue)
        sub.queue.put_nowait(OVERFLOW)
        log.warning("alert subscriber dropped: %d changes pending", self._queue_size)


def alert_message(view: AlertView) -> dict[str, Any]:
    """The WebSocket message of one alert change."""
    return {"type": "alert", "alert": view.model_dump(mode="json")}
