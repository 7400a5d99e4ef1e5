"""Process plumbing shared by the daemons' entry points."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)


def stop_on_signals(request_stop: Callable[[], object]) -> None:
    """Call `request_stop` on SIGINT or SIGTERM (Ctrl-C, systemd stop)."""

    def _handler(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        request_stop()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
