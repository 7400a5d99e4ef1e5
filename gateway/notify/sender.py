"""NoticeSender: the thread that delivers due notices, with retries; and the channels it uses.

Runs in the main gateway process (the ingest worker only writes rows). Delivery is at least
once: a crash after a vendor accepted a message but before it was marked sent repeats it once
the claim's lease ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from gateway.notify.channels import Channel, DingTalkRobot, FeishuBot, JsonWebhook, WeComRobot
from gateway.notify.config import ChannelConfig, NotificationsConfig
from gateway.notify.mail import SmtpChannel
from gateway.notify.outbox import FAILED, RETRYING, SENT, ClaimedNotice, claim_due, mark
from gateway.notify.routing import retry_delay_s
from gateway.ports import Clock

log = logging.getLogger(__name__)


def build_channel(config: ChannelConfig, timeout_s: float, env: dict[str, str]) -> Channel:
    """One channel with its secrets read; ValueError names the secret's source, not its value."""
    if config.type == "wecom":
        return WeComRobot(config.name, config.url.read(env), timeout_s, fmt=config.format)
    if config.type == "dingtalk":
        secret = config.secret.read(env) if config.secret else None
        return DingTalkRobot(
            config.name, config.url.read(env), timeout_s, secret=secret, fmt=config.format
        )
    if config.type == "feishu":
        secret = config.secret.read(env) if config.secret else None
        return FeishuBot(config.name, config.url.read(env), timeout_s, secret=secret)
    if config.type == "webhook":
        return JsonWebhook(
            config.name,
            config.url,
            config.token.read(env) if config.token else None,
            config.hmac_secret.read(env) if config.hmac_secret else None,
            timeout_s,
        )
    return SmtpChannel(
        config.name,
        config.host,
        config.port,
        config.security,
        config.sender,
        config.to,
        timeout_s,
        username=config.username,
        password=config.password.read(env) if config.password else None,
        ca_file=str(config.ca_file) if config.ca_file else None,
    )


def build_channels(config: NotificationsConfig, env: dict[str, str]) -> dict[str, Channel]:
    """Every configured channel by name."""
    channels = {}
    for entry in config.channels:
        try:
            channels[entry.name] = build_channel(entry, config.timeout_s, env)
        except ValueError as exc:
            raise ValueError(f"notifications channel {entry.name!r}: {exc}") from None
    return channels


class NoticeSender:
    """Sends due notices every ``poll_interval_s``; marks them sent, retrying or failed."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        channels: Mapping[str, Channel],
        clock: Clock,
        config: NotificationsConfig,
    ) -> None:
        self._sessions = sessions
        self._channels = dict(channels)
        self._clock = clock
        self._config = config
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the sending thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="notice-sender", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the notice in hand (unsent ones stay queued in the database)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def send_due(self, limit: int = 50) -> int:
        """Attempt every notice due now (up to ``limit``); how many were sent."""
        sent = 0
        for notice in claim_due(self._sessions, self._clock(), self._config.lease_s, limit):
            if self._stop.is_set() and self._thread is not None:
                break  # the lease brings it back after a restart
            sent += self._attempt(notice)
        return sent

    def _run(self) -> None:
        while not self._stop.wait(self._config.poll_interval_s):
            try:
                while self.send_due() and not self._stop.is_set():
                    pass
            except Exception:  # a database hiccup must not end the thread
                log.exception("notice sending failed; retrying")

    def _attempt(self, notice: ClaimedNotice) -> int:
        channel = self._channels.get(notice.channel)
        if channel is None:
            self._give_up(notice, "channel is no longer configured")
            return 0
        try:
            channel.send(notice.message)
        except ValueError as exc:
            self._give_up(notice, str(exc))
            return 0
        except ConnectionError as exc:
            self._retry_or_give_up(notice, str(exc))
            return 0
        mark(self._sessions, notice, SENT, self._clock())
        log.info(
            "notice %d (%s, alert %s) sent to %s",
            notice.id,
            notice.kind,
            notice.alert_id,
            notice.channel,
        )
        return 1

    def _retry_or_give_up(self, notice: ClaimedNotice, error: str) -> None:
        retry = self._config.retry
        if notice.attempts >= retry.max_attempts:
            self._give_up(notice, error)
            return
        now = self._clock()
        delay = retry_delay_s(notice.attempts, retry)
        mark(
            self._sessions,
            notice,
            RETRYING,
            now,
            error=error[:2000],
            retry_at=now + timedelta(seconds=delay),
        )
        log.warning(
            "notice %d to %s failed (attempt %d, retry in %.0f s): %s",
            notice.id,
            notice.channel,
            notice.attempts,
            delay,
            error,
        )

    def _give_up(self, notice: ClaimedNotice, error: str) -> None:
        mark(self._sessions, notice, FAILED, self._clock(), error=error[:2000])
        log.error(
            "notice %d (%s, alert %s) to %s failed after %d attempt(s): %s",
            notice.id,
            notice.kind,
            notice.alert_id,
            notice.channel,
            notice.attempts,
            error,
        )
