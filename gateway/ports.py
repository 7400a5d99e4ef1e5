"""The small interfaces and shared types the gateway's services are built on.

The services container (gateway.services) and the services it holds (alerts, commands,
enrolment) all import these from here, so the container imports nothing that imports it back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

Clock = Callable[[], datetime]


class Publisher(Protocol):
    """Sends a message to the broker (gateway -> edge: commands, gallery updates).

    Raises ConnectionError when the broker cannot take it now; the caller reports that.
    """

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish one message and wait until the broker has it (QoS 1 PUBACK)."""
        ...


@dataclass
class Counters:
    """Monotonic counters for /metrics (thread-safe increments)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    alerts_raised: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        """Increase one counter by n."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)
