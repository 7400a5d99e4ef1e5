"""Notifications end to end over a real SQLite file: alerts -> outbox -> channels -> receivers.

The receivers are local: an HTTP server checking each service's payload shape and signature
(tests/notify_receiver.py) and an aiosmtpd SMTP server. No traffic leaves the machine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from gateway.alerts.types import AlertType, Severity
from gateway.auth.roles import Role
from gateway.db import open_engine, session_factory
from gateway.db.schema import NoticeRow
from gateway.notify.outbox import claim_due
from gateway.notify.schedule import NoticeScheduler
from gateway.notify.sender import NoticeSender, build_channels
from gateway.services import Services
from tests.gatewaykit import (
    FakeClock,
    clock_of,
    close_services,
    gateway_client,
    login,
    make_config,
    make_services,
    signal,
)
from tests.notify_receiver import Receiver, http_receiver

DING_SECRET = "SEC0123456789abcdef"
FEISHU_SECRET = "feishu-signing-secret"
HOOK_TOKEN = "hook-bearer-token-1234"
HOOK_HMAC = "hook-hmac-secret-5678"


class Mailbox:
    """aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver() as r:
        yield r


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    with socket.socket() as probe:  # aiosmtpd's Controller cannot take port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def env_of(receiver: Receiver) -> dict[str, str]:
    return {
        "WECOM_URL": f"{receiver.url}/cgi-bin/webhook/send?key=wecom-key",
        "DING_URL": f"{receiver.url}/robot/send?access_token=ding-token",
        "DING_SECRET": DING_SECRET,
        "FEISHU_URL": f"{receiver.url}/open-apis/bot/v2/hook/feishu-hook",
        "FEISHU_SECRET": FEISHU_SECRET,
        "HOOK_TOKEN": HOOK_TOKEN,
        "HOOK_HMAC": HOOK_HMAC,
    }


def notifications(receiver: Receiver, smtp_port: int = 1, **extra: Any) -> dict[str, Any]:
    """Every channel type, pointed at the local receivers; one route to all of them."""
    data: dict[str, Any] = {
        "channels": [
            {"type": "wecom", "name": "wecom", "url": {"env": "WECOM_URL"}},
            {
                "type": "dingtalk",
                "name": "ding",
                "url": {"env": "DING_URL"},
                "secret": {"env": "DING_SECRET"},
                "format": "text",
            },
            {
                "type": "feishu",
                "name": "feishu",
                "url": {"env": "FEISHU_URL"},
                "secret": {"env": "FEISHU_SECRET"},
            },
            {
                "type": "webhook",
                "name": "hook",
                "url": f"{receiver.url}/hook",
                "token": {"env": "HOOK_TOKEN"},
                "hmac_secret": {"env": "HOOK_HMAC"},
            },
            {
                "type": "email",
                "name": "mail",
                "host": "127.0.0.1",
                "port": smtp_port,
                "security": "plain",
                "sender": "dormguard@campus.example",
                "to": ["guards@campus.example", "duty@campus.example"],
            },
        ],
        "routes": [{"name": "guards", "channels": ["wecom", "ding", "feishu", "hook", "mail"]}],
        "retry": {"max_attempts": 3, "first_delay_s": 10, "max_delay_s": 60},
        "timeout_s": 5,
    }
    data.update(extra)
    return data


@contextmanager
def notifying(tmp_path: Path, notify: dict[str, Any]) -> Iterator[Services]:
    """Services over a fresh SQLite file with this ``notifications:`` section."""
    services = make_services(tmp_path, config=make_config(notifications=notify))
    try:
        yield services
    finally:
        close_services(services)


def sender_of(services: Services, receiver: Receiver) -> NoticeSender:
    config = services.config.notifications
    channels = build_channels(config, env_of(receiver))
    return NoticeSender(services.sessions, channels, services.clock, config)


def rows(services: Services) -> list[NoticeRow]:
    with services.sessions() as session:
        return list(session.scalars(select(NoticeRow).order_by(NoticeRow.id)))


def raise_door(services: Services, **kw: Any) -> int:
    return services.alerts.apply([signal(AlertType.DOOR_FORCED_OPEN, **kw)])[-1].id


def test_a_raise_reaches_every_channel_in_its_documented_shape_and_signed(
    tmp_path: Path, receiver: Receiver, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    with notifying(tmp_path, notifications(receiver, port)) as services:
        alert_id = raise_door(services)
        assert [(r.channel, r.kind, r.status) for r in rows(services)] == [
            (c, "raise", "queued") for c in ("wecom", "ding", "feishu", "hook", "mail")
        ]
        assert sender_of(services, receiver).send_due() == 5
        assert {r.status for r in rows(services)} == {"sent"}

        (wecom,) = receiver.on("/cgi-bin/webhook/send")
        assert wecom.query == {"key": "wecom-key"}
        assert wecom.json["msgtype"] == "markdown"
        assert "door forced open" in wecom.json["markdown"]["content"]

        (ding,) = receiver.on("/robot/send")
        assert ding.query["access_token"] == "ding-token"
        stamp = ding.query["timestamp"]
        assert abs(int(stamp) - time.time() * 1000) < 60_000  # milliseconds
        expected = base64.b64encode(
            hmac.new(
                DING_SECRET.encode(), f"{stamp}\n{DING_SECRET}".encode(), hashlib.sha256
            ).digest()
        ).decode()
        assert ding.query["sign"] == expected  # parse_qs undid the URL encoding
        assert ding.json == {"msgtype": "text", "text": {"content": ding.json["text"]["content"]}}
        assert f"alert #{alert_id}" in ding.json["text"]["content"]

        (feishu,) = receiver.on("/open-apis/bot/v2/hook/feishu-hook")
        body = feishu.json
        assert body["msg_type"] == "text" and "door forced open" in body["content"]["text"]
        key = f"{body['timestamp']}\n{FEISHU_SECRET}".encode()
        assert (
            body["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        )
        assert abs(int(body["timestamp"]) - time.time()) < 60  # seconds

        (hook,) = receiver.on("/hook")
        assert hook.headers["authorization"] == f"Bearer {HOOK_TOKEN}"
        digest = hmac.new(HOOK_HMAC.encode(), hook.body, hashlib.sha256).hexdigest()
        assert hook.headers["x-dormguard-signature"] == f"sha256={digest}"
        assert hook.json["kind"] == "raise"
        assert hook.json["alert"]["id"] == alert_id
        assert hook.json["alert"]["type"] == "door_forced_open"

        ((mail_from, rcpts, content),) = box.messages
        assert mail_from == "dormguard@campus.example"
        assert rcpts == ["guards@campus.example", "duty@campus.example"]
        mail = message_from_bytes(content)
        assert "door forced open" in mail["Subject"]


def test_a_vendor_error_code_is_retried_with_back_off_then_fails(
    tmp_path: Path, receiver: Receiver
) -> None:
    notify = notifications(receiver, routes=[{"name": "g", "channels": ["wecom"]}])
    with notifying(tmp_path, notify) as services:
        raise_door(services)
        for _ in range(3):
            receiver.answer("/cgi-bin/webhook/send", 200, {"errcode": 45009, "errmsg": "limit"})
        sender = sender_of(services, receiver)
        clock = clock_of(services)
        assert sender.send_due() == 0
        (row,) = rows(services)
        assert (row.status, row.attempts, row.last_error) == ("retrying", 1, "errcode 45009: limit")
        assert row.next_attempt_at == clock.now + timedelta(seconds=10)
        assert sender.send_due() == 0  # not due yet
        clock.advance(10)
        sender.send_due()
        (row,) = rows(services)
        assert (row.status, row.attempts) == ("retrying", 2)
        assert row.next_attempt_at == clock.now + timedelta(seconds=20)
        clock.advance(20)
        sender.send_due()
        (row,) = rows(services)
        assert (row.status, row.attempts) == ("failed", 3)
        assert len(receiver.on("/cgi-bin/webhook/send")) == 3


def test_a_refused_request_fails_at_once_and_a_server_error_is_retried(
    tmp_path: Path, receiver: Receiver
) -> None:
    notify = notifications(receiver, routes=[{"name": "g", "channels": ["hook", "feishu"]}])
    with notifying(tmp_path, notify) as services:
        raise_door(services)
        receiver.answer("/hook", 403, {"error": "forbidden"})
        receiver.answer("/open-apis/bot/v2/hook/feishu-hook", 503, {})
        sender_of(services, receiver).send_due()
        hook, feishu = rows(services)
        assert (hook.status, hook.attempts) == ("failed", 1)
        assert hook.last_error is not None and hook.last_error.startswith("HTTP 403")
        assert (feishu.status, feishu.last_error) == ("retrying", "HTTP 503")


def test_an_unreachable_receiver_is_retried_and_no_secret_url_is_recorded(
    tmp_path: Path, receiver: Receiver
) -> None:
    notify = notifications(receiver, routes=[{"name": "g", "channels": ["wecom"]}])
    with notifying(tmp_path, notify) as services:
        raise_door(services)
        env = env_of(receiver) | {"WECOM_URL": "http://127.0.0.1:9/send?key=wecom-key"}
        channels = build_channels(services.config.notifications, env)
        NoticeSender(
            services.sessions, channels, services.clock, services.config.notifications
        ).send_due()
        (row,) = rows(services)
        assert row.status == "retrying"
        assert row.last_error is not None and "wecom-key" not in row.last_error


def test_notices_are_written_in_the_alerts_transaction_and_roll_back_with_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    with notifying(tmp_path, notifications(receiver)) as services:
        with pytest.raises(RuntimeError), services.sessions.begin() as session:
            services.alerts.apply_in(session, [signal()])
            raise RuntimeError("the batch failed before its commit")
        assert rows(services) == []
        with services.sessions.begin() as session:
            services.alerts.apply_in(session, [signal()])
        assert len(rows(services)) == 5


def test_only_matching_alerts_make_notices_and_repeats_do_not(
    tmp_path: Path, receiver: Receiver
) -> None:
    notify = notifications(
        receiver,
        routes=[
            {"name": "g", "channels": ["wecom"], "min_severity": "critical", "buildings": ["b1"]}
        ],
    )
    with notifying(tmp_path, notify) as services:
        raise_door(services, severity=Severity.MAJOR)  # too mild
        raise_door(services, originator="gate:campus/b2/main", building="b2")  # elsewhere
        assert rows(services) == []
        raise_door(services, originator="gate:campus/b1/west")
        raise_door(services, originator="gate:campus/b1/west")  # counts on the open alert
        assert len(rows(services)) == 1


def test_queued_notices_survive_a_restart_and_are_delivered_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    notify = notifications(receiver, routes=[{"name": "g", "channels": ["wecom", "hook"]}])
    with notifying(tmp_path, notify) as services:
        raise_door(services)
        first = sender_of(services, receiver)
        first.start()
        first.stop()  # stopped before its first poll: nothing was sent
        assert receiver.requests == []

    # A new gateway process: its own engine over the same file.
    engine = open_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    try:
        sessions = session_factory(engine)
        config = services.config.notifications
        sender = NoticeSender(
            sessions, build_channels(config, env_of(receiver)), FakeClock(), config
        )
        assert sender.send_due() == 2
        assert sender.send_due() == 0
        assert len(receiver.requests) == 2
    finally:
        engine.dispose()


def test_a_notice_claimed_by_a_sender_that_died_is_retried_after_its_lease(
    tmp_path: Path, receiver: Receiver
) -> None:
    notify = notifications(receiver, routes=[{"name": "g", "channels": ["hook"]}], lease_s=60)
    with notifying(tmp_path, notify) as services:
        raise_door(services)
        clock = clock_of(services)
        (claimed,) = claim_due(services.sessions, clock.now, 60, 10)  # then the sender "dies"
        sender = sender_of(services, receiver)
        assert sender.send_due() == 0  # leased
        clock.advance(61)
        assert sender.send_due() == 1
        (row,) = rows(services)
        assert (row.status, row.attempts) == ("sent", 2)
        assert claimed.attempts == 1


def test_unacknowledged_alerts_escalate_to_the_next_channel_once_per_step(
    tmp_path: Path, receiver: Receiver
) -> None:
    route = {"name": "g", "channels": ["wecom"], "escalate_to": ["ding", "hook"]}
    notify = notifications(receiver, routes=[route | {"escalate_after_min": 5}])
    with notifying(tmp_path, notify) as services:
        alert_id = raise_door(services)
        scheduler = NoticeScheduler(services.sessions, services.config.notifications)
        clock = clock_of(services)
        assert scheduler.tick(clock.advance(299)) == 0
        assert scheduler.tick(clock.advance(1)) == 1
        assert scheduler.tick(clock.advance(1)) == 0  # the same step is not repeated
        assert [(r.channel, r.kind) for r in rows(services)] == [
            ("wecom", "raise"),
            ("ding", "escalation"),
        ]
        sender_of(services, receiver).send_due()
        (ding,) = receiver.on("/robot/send")
        assert "Not acknowledged" in ding.json["text"]["content"]
        services.alerts.acknowledge(alert_id, "guard-user")
        assert scheduler.tick(clock.advance(3600)) == 0  # no step 2 for the hook


def test_an_escalation_held_by_quiet_hours_is_cancelled_when_a_guard_acknowledges_first(
    tmp_path: Path, receiver: Receiver
) -> None:
    # The fake clock starts at 22:00 UTC = 06:00 in Shanghai: quiet until 07:00.
    route = {
        "name": "g",
        "channels": ["wecom"],
        "escalate_to": ["ding"],
        "escalate_after_min": 5,
        "quiet_hours": {"start": "23:00", "end": "07:00", "critical_overrides": False},
    }
    with notifying(tmp_path, notifications(receiver, routes=[route])) as services:
        alert_id = raise_door(services)
        clock = clock_of(services)
        scheduler = NoticeScheduler(services.sessions, services.config.notifications)
        assert scheduler.tick(clock.advance(300)) == 1
        services.alerts.acknowledge(alert_id, "guard-user")
        clock.advance(3600)
        assert sender_of(services, receiver).send_due() == 1  # the raise only
        assert [(r.kind, r.status) for r in rows(services)] == [
            ("raise", "sent"),
            ("escalation", "cancelled"),
        ]
        assert receiver.on("/robot/send") == []


def test_a_silenced_alert_notifies_when_its_silence_ends_and_it_still_holds(
    tmp_path: Path, receiver: Receiver
) -> None:
    notify = notifications(receiver, routes=[{"name": "g", "channels": ["wecom"]}])
    with notifying(tmp_path, notify) as services:
        clock = clock_of(services)
        door = "gate:campus/b1/west"
        start, end = clock.now - timedelta(minutes=1), clock.now + timedelta(hours=1)
        silence = services.alerts.create_silence(door, [], start, end, "repair", "admin")
        services.alerts.apply([signal(AlertType.DOOR_HELD_OPEN, door, at=clock.now)])
        assert rows(services) == []  # recorded silently
        clock.advance(60)
        services.alerts.end_silence(silence.id, "admin")
        assert [(r.channel, r.kind) for r in rows(services)] == [("wecom", "raise")]


def test_a_clear_tells_the_channels_that_were_told_about_the_raise(
    tmp_path: Path, receiver: Receiver
) -> None:
    notify = notifications(
        receiver,
        routes=[
            {"name": "g", "channels": ["wecom"]},
            {"name": "quiet", "channels": ["hook"], "notify_clear": False},
        ],
    )
    with notifying(tmp_path, notify) as services:
        alert_id = raise_door(services)
        services.alerts.clear(alert_id, "guard-user")
        assert [(r.channel, r.kind) for r in rows(services)] == [
            ("wecom", "raise"),
            ("hook", "raise"),
            ("wecom", "clear"),
        ]
        held = signal(AlertType.DOOR_HELD_OPEN, "gate:campus/b1/west", severity=Severity.MAJOR)
        services.alerts.apply([held])
        services.alerts.apply(
            [signal(AlertType.DOOR_HELD_OPEN, "gate:campus/b1/west", action="clear")]
        )
        assert [(r.channel, r.kind) for r in rows(services)][-3:] == [
            ("wecom", "raise"),
            ("hook", "raise"),
            ("wecom", "clear"),
        ]


def test_quiet_hours_hold_a_notice_until_they_end(tmp_path: Path, receiver: Receiver) -> None:
    # The fake clock starts at 22:00 UTC = 06:00 in Shanghai.
    route = {"name": "g", "channels": ["wecom"], "quiet_hours": {"start": "23:00", "end": "07:00"}}
    with notifying(tmp_path, notifications(receiver, routes=[route])) as services:
        raise_door(services, severity=Severity.MAJOR)
        (row,) = rows(services)
        clock = clock_of(services)
        assert row.next_attempt_at == clock.now + timedelta(hours=1)
        sender = sender_of(services, receiver)
        assert sender.send_due() == 0
        clock.advance(3600)
        assert sender.send_due() == 1


def test_the_daily_digest_lists_the_days_welfare_alerts_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    notify = notifications(
        receiver,
        routes=[],
        digests=[{"name": "welfare", "channels": ["hook"], "at": "07:00"}],
    )
    with notifying(tmp_path, notify) as services:
        clock = clock_of(services)  # 06:00 local
        welfare = signal(
            AlertType.WELFARE,
            "person:s1/no_exit",
            severity=Severity.WARNING,
            title="s1 has not gone out for 3 days",
            at=clock.now,
        )
        services.alerts.apply([welfare])
        scheduler = NoticeScheduler(services.sessions, services.config.notifications)
        assert scheduler.tick(clock.now) == 0  # before 07:00
        assert scheduler.tick(clock.advance(3600)) == 1
        assert scheduler.tick(clock.advance(60)) == 0  # once a day
        sender_of(services, receiver).send_due()
        (hook,) = receiver.on("/hook")
        assert hook.json["kind"] == "digest"
        assert hook.json["day"] == "2025-03-02"
        assert [a["title"] for a in hook.json["alerts"]] == ["s1 has not gone out for 3 days"]


def test_the_alert_detail_shows_its_notifications_to_those_who_see_the_alert(
    tmp_path: Path, receiver: Receiver
) -> None:
    notify = notifications(receiver, routes=[{"name": "g", "channels": ["wecom", "hook"]}])
    receiver.answer("/hook", 400, {"error": "bad"})
    with gateway_client(tmp_path, config=make_config(notifications=notify)) as (client, services):
        alert_id = raise_door(services)
        sender_of(services, receiver).send_due()
        response = client.get(f"/api/alerts/{alert_id}", headers=login(client, Role.GUARD))
        assert response.status_code == 200, response.text
        shown = [
            {k: n[k] for k in ("channel", "kind", "status", "attempts")}
            for n in response.json()["notifications"]
        ]
        assert shown == [
            {"channel": "wecom", "kind": "raise", "status": "sent", "attempts": 1},
            {"channel": "hook", "kind": "raise", "status": "failed", "attempts": 1},
        ]
        assert response.json()["notifications"][1]["last_error"].startswith("HTTP 400")
        hidden = client.get(f"/api/alerts/{alert_id}", headers=login(client, Role.FACILITIES))
        assert hidden.status_code == 404


def test_a_channel_whose_secret_is_missing_is_named_at_start(receiver: Receiver) -> None:
    config = make_config(notifications=notifications(receiver)).notifications
    with pytest.raises(ValueError, match="channel 'wecom': environment variable WECOM_URL"):
        build_channels(config, {})


def test_without_routes_an_alert_writes_no_notice(tmp_path: Path) -> None:
    with notifying(tmp_path, {}) as services:
        services.alerts.apply([signal()])
        assert rows(services) == []
