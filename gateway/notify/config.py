"""The ``notifications:`` section of the gateway YAML: channels, routes, digests, retries."""

from __future__ import annotations

from datetime import time
from ipaddress import ip_address
from pathlib import Path
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from contracts.settings import Secret, StrictModel, TimeOfDayText, TimeZoneName
from gateway.alerts.types import AlertType, Severity, SeverityValue

ChannelName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
MessageFormat = Literal["text", "markdown"]


def clock_time(value: str) -> time:
    """A quoted 'HH:MM' as a time of day; ValueError otherwise."""
    try:
        parsed = time.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected a time of day HH:MM, got {value!r}") from None
    if len(value) != 5 or parsed.second:
        raise ValueError(f"expected a time of day HH:MM, got {value!r}")
    return parsed


def _check_clock_time(value: str) -> str:
    clock_time(value)
    return value


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: localhost or a loopback address (no DNS lookup)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class _RobotChannel(StrictModel):
    name: ChannelName
    url: Secret = Field(description="the webhook URL as issued (it holds the token: a secret)")


class WeComChannel(_RobotChannel):
    """WeCom (企业微信) group robot: POST JSON to its webhook URL (which holds the key)."""

    type: Literal["wecom"]
    format: MessageFormat = "markdown"


class DingTalkChannel(_RobotChannel):
    """DingTalk (钉钉) robot: POST JSON, signed with the robot's secret when one is set."""

    type: Literal["dingtalk"]
    secret: Secret | None = Field(default=None, description="the robot's signing secret (SEC...)")
    format: MessageFormat = "markdown"


class FeishuChannel(_RobotChannel):
    """Feishu/Lark (飞书) custom bot: POST a text message, signed when a secret is set."""

    type: Literal["feishu"]
    secret: Secret | None = Field(default=None, description="the bot's signing secret")


class WebhookChannel(StrictModel):
    """Any HTTP receiver: the notice as JSON, optionally with a bearer token and an HMAC."""

    type: Literal["webhook"]
    name: ChannelName
    url: str = Field(pattern=r"^https?://", description="where to POST")
    token: Secret | None = Field(default=None, description="sent as Authorization: Bearer")
    hmac_secret: Secret | None = Field(
        default=None, description="signs the body: X-Dormguard-Signature: sha256=<hex>"
    )


class EmailChannel(StrictModel):
    """SMTP e-mail to a fixed list of addresses."""

    type: Literal["email"]
    name: ChannelName
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "plain"] = Field(
        default="starttls", description="STARTTLS on a plain port, TLS from the start, or none"
    )
    username: str | None = None
    password: Secret | None = None
    sender: str = Field(min_length=3, description="the From address")
    to: list[str] = Field(min_length=1, description="recipients")
    ca_file: Path | None = Field(
        default=None,
        description="PEM CA certificate(s) to verify the server with instead of the system's "
        "(a campus mail server with a certificate from an internal CA)",
    )

    @model_validator(mode="after")
    def _password_with_user(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("give username and password together (or neither)")
        return self

    @model_validator(mode="after")
    def _no_clear_password_over_the_network(self) -> Self:
        if self.security == "plain" and self.password is not None and not is_loopback(self.host):
            raise ValueError(
                f"security: plain would send the SMTP password to {self.host} in clear: "
                "use starttls or ssl (plain with a password only to a loopback host)"
            )
        if self.security == "plain" and self.ca_file is not None:
            raise ValueError("ca_file needs security: starttls or ssl")
        return self


ChannelConfig = Annotated[
    WeComChannel | DingTalkChannel | FeishuChannel | WebhookChannel | EmailChannel,
    Field(discriminator="type"),
]


class QuietHours(StrictModel):
    """A nightly window in which a route's notices wait until it ends."""

    start: Annotated[TimeOfDayText, Field(description="HH:MM local time, quoted")]
    end: Annotated[TimeOfDayText, Field(description="HH:MM local time, quoted")]
    critical_overrides: bool = Field(
        default=True, description="critical alerts are sent at once even in quiet hours"
    )

    _start = field_validator("start", "end")(_check_clock_time)

    @property
    def start_time(self) -> time:
        """The start as a time of day."""
        return clock_time(self.start)

    @property
    def end_time(self) -> time:
        """The end as a time of day."""
        return clock_time(self.end)


class RouteConfig(StrictModel):
    """Which alerts go to which channels, and to whom next when nobody acknowledges."""

    name: ChannelName
    types: list[AlertType] = Field(default_factory=list, description="empty: every type")
    min_severity: SeverityValue = Severity.INFO
    buildings: list[str] = Field(default_factory=list, description="empty: every building")
    channels: list[ChannelName] = Field(min_length=1, description="told when an alert is raised")
    escalate_to: list[ChannelName] = Field(
        default_factory=list,
        description="told one after another while the alert stays unacknowledged",
    )
    escalate_after_min: float | None = Field(
        default=None, gt=0, description="minutes unacknowledged before each escalation step"
    )
    quiet_hours: QuietHours | None = None
    notify_clear: bool = Field(default=True, description="tell the same channels when it clears")

    @model_validator(mode="after")
    def _escalation_complete(self) -> Self:
        if bool(self.escalate_to) != (self.escalate_after_min is not None):
            raise ValueError("escalate_to and escalate_after_min go together")
        return self


class DigestConfig(StrictModel):
    """One message a day listing the alerts of the past 24 hours (e.g. welfare warnings)."""

    name: ChannelName
    channels: list[ChannelName] = Field(min_length=1)
    at: Annotated[TimeOfDayText, Field(description="HH:MM local time, quoted")] = "08:00"
    types: list[AlertType] = Field(default_factory=lambda: [AlertType.WELFARE])
    buildings: list[str] = Field(default_factory=list, description="empty: every building")
    send_empty: bool = Field(default=False, description="send 'nothing to report' days too")

    _at = field_validator("at")(_check_clock_time)

    @property
    def at_time(self) -> time:
        """The sending time as a time of day."""
        return clock_time(self.at)


class RetryPolicy(StrictModel):
    """Exponential back-off between delivery attempts."""

    max_attempts: int = Field(default=8, ge=1, le=100)
    first_delay_s: float = Field(default=30.0, gt=0)
    factor: float = Field(default=2.0, ge=1.0)
    max_delay_s: float = Field(default=3600.0, gt=0)


class StudentNoticesConfig(StrictModel):
    """Where students' "notify me" notices go besides their page (e.g. the campus app's webhook,
    which reads ``data.person_id`` to reach the student)."""

    channels: list[ChannelName] = Field(
        default_factory=list, description="told when a student's watch fires; empty: page only"
    )


class NotificationsConfig(StrictModel):
    """Notifications to guards, counsellors and facilities staff outside the console."""

    timezone: TimeZoneName = Field(
        default="Asia/Shanghai", description="zone of quiet hours and digest times"
    )
    channels: list[ChannelConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    digests: list[DigestConfig] = Field(default_factory=list)
    students: StudentNoticesConfig = Field(default_factory=StudentNoticesConfig)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout_s: float = Field(default=10.0, gt=0, description="per HTTP request or SMTP session")
    poll_interval_s: float = Field(default=1.0, gt=0, description="how often due notices go out")
    lease_s: float = Field(
        default=300.0,
        gt=0,
        description="a notice being sent is retried after this long if the sender died meanwhile",
    )

    @model_validator(mode="after")
    def _names_known(self) -> Self:
        names = [c.name for c in self.channels]
        if len(names) != len(set(names)):
            raise ValueError("notifications.channels: channel names must be unique")
        known = set(names)
        groups: list[tuple[str, list[tuple[str, list[str]]]]] = [
            ("routes", [(r.name, [*r.channels, *r.escalate_to]) for r in self.routes]),
            ("digests", [(d.name, list(d.channels)) for d in self.digests]),
        ]
        for what, items in groups:
            seen: set[str] = set()
            for i, (name, used) in enumerate(items):
                if name in seen:
                    raise ValueError(f"notifications.{what}[{i}]: name {name!r} repeats")
                seen.add(name)
                for channel in used:
                    if channel not in known:
                        raise ValueError(f"notifications.{what}[{i}]: unknown channel {channel!r}")
        for channel in self.students.channels:
            if channel not in known:
                raise ValueError(f"notifications.students.channels: unknown channel {channel!r}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The local time zone."""
        return ZoneInfo(self.timezone)
