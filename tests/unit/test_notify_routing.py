"""Notification routing, quiet hours, escalation steps, back-off, digests, signatures (pure)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from gateway.alerts.lifecycle import AlertRecord, AlertState
from gateway.alerts.types import AlertType, Severity
from gateway.notify.config import NotificationsConfig, QuietHours, RetryPolicy, RouteConfig
from gateway.notify.messages import alert_message, digest_message
from gateway.notify.routing import (
    digest_window,
    escalation_steps_due,
    plan_clear,
    plan_escalations,
    plan_sounding,
    quiet_until,
    retry_delay_s,
    route_matches,
)
from gateway.notify.signing import body_signature, dingtalk_sign, feishu_sign

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOON = datetime(2025, 3, 1, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


def record(**kw: Any) -> AlertRecord:
    fields: dict[str, Any] = {
        "id": 7,
        "type": AlertType.DOOR_FORCED_OPEN,
        "originator": "gate:campus/b1/east",
        "site": "campus",
        "building": "b1",
        "severity": Severity.MAJOR,
        "title": "door forced open at b1/east",
        "detail": {},
        "state": AlertState.ACTIVE,
        "condition_active": False,
        "count": 1,
        "first_at": NOON,
        "last_at": NOON,
        "annunciated_at": NOON,
    }
    fields.update(kw)
    return AlertRecord(**fields)


def route(**kw: Any) -> RouteConfig:
    data: dict[str, Any] = {"name": "guards", "channels": ["wecom"]}
    data.update(kw)
    return RouteConfig.model_validate(data)


@pytest.mark.parametrize(
    ("options", "matches"),
    [
        ({}, True),
        ({"types": ["door_forced_open"]}, True),
        ({"types": ["welfare"]}, False),
        ({"min_severity": "major"}, True),
        ({"min_severity": "critical"}, False),
        ({"buildings": ["b1", "b2"]}, True),
        ({"buildings": ["b10"]}, False),
    ],
)
def test_a_route_matches_on_type_minimum_severity_and_building(
    options: dict[str, Any], matches: bool
) -> None:
    assert route_matches(route(**options), record()) is matches


def test_a_silenced_raise_notifies_nobody() -> None:
    assert plan_sounding([route()], record(silenced=True), NOON, SHANGHAI) == []


def test_a_raise_goes_to_every_channel_of_every_matching_route_now() -> None:
    routes = [route(channels=["wecom", "mail"]), route(name="other", channels=["ding"])]
    planned = plan_sounding(routes, record(), NOON, SHANGHAI)
    assert [(p.route, p.channel, p.kind, p.due_at) for p in planned] == [
        ("guards", "wecom", "raise", NOON),
        ("guards", "mail", "raise", NOON),
        ("other", "ding", "raise", NOON),
    ]


@pytest.mark.parametrize(
    ("local", "start", "end", "until"),
    [
        ("23:30", "23:00", "07:00", "2025-03-02 07:00"),  # before midnight: ends tomorrow
        ("02:00", "23:00", "07:00", "2025-03-01 07:00"),  # after midnight: ends today
        ("07:00", "23:00", "07:00", None),  # the end is not quiet
        ("12:00", "23:00", "07:00", None),
        ("13:00", "12:30", "14:00", "2025-03-01 14:00"),  # a daytime window
        ("12:00", "12:30", "14:00", None),
    ],
)
def test_quiet_hours_defer_until_their_end_in_local_time(
    local: str, start: str, end: str, until: str | None
) -> None:
    now = datetime.combine(datetime(2025, 3, 1).date(), time.fromisoformat(local), SHANGHAI)
    quiet = QuietHours(start=start, end=end)
    result = quiet_until(now.astimezone(UTC), quiet, SHANGHAI)
    expected = (
        None
        if until is None
        else datetime.strptime(until, "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI).astimezone(UTC)
    )
    assert result == expected


def test_critical_overrides_quiet_hours_only_when_the_route_says_so() -> None:
    night = datetime(2025, 3, 1, 16, 0, tzinfo=UTC)  # 00:00 in Shanghai
    morning = datetime(2025, 3, 1, 23, 0, tzinfo=UTC)  # 07:00
    critical = record(severity=Severity.CRITICAL)
    overriding = route(quiet_hours={"start": "23:00", "end": "07:00"})
    strict = route(quiet_hours={"start": "23:00", "end": "07:00", "critical_overrides": False})
    assert plan_sounding([overriding], critical, night, SHANGHAI)[0].due_at == night
    assert plan_sounding([strict], critical, night, SHANGHAI)[0].due_at == morning
    assert plan_sounding([overriding], record(), night, SHANGHAI)[0].due_at == morning


def test_clears_go_to_the_channels_told_once_each_and_only_where_the_route_wants_them() -> None:
    routes = [route(channels=["wecom", "mail"]), route(name="quiet", notify_clear=False)]
    told = [("guards", "wecom"), ("guards", "wecom"), ("quiet", "wecom"), ("gone", "x")]
    planned = plan_clear(routes, record(), told, NOON, SHANGHAI)
    assert [(p.route, p.channel, p.kind) for p in planned] == [("guards", "wecom", "clear")]


def test_escalation_steps_follow_the_escalation_clock_and_stop_at_the_last_channel() -> None:
    esc = route(escalate_to=["ding", "mail"], escalate_after_min=10)
    assert escalation_steps_due(esc, NOON, NOON + timedelta(minutes=9)) == 0
    assert escalation_steps_due(esc, NOON, NOON + timedelta(minutes=10)) == 1
    assert escalation_steps_due(esc, NOON, NOON + timedelta(minutes=25)) == 2
    assert escalation_steps_due(esc, NOON, NOON + timedelta(hours=5)) == 2
    planned = plan_escalations([esc], record(), NOON + timedelta(minutes=21), SHANGHAI)
    assert [(p.channel, p.dedup_key) for p in planned] == [
        ("ding", "escalation:7:guards:1"),
        ("mail", "escalation:7:guards:2"),
    ]


@pytest.mark.parametrize(
    "rec",
    [
        record(state=AlertState.ACKNOWLEDGED),
        record(state=AlertState.CLEARED),
        record(silenced=True),
    ],
)
def test_acknowledged_cleared_or_silenced_alerts_do_not_escalate(rec: AlertRecord) -> None:
    esc = route(escalate_to=["ding"], escalate_after_min=1)
    assert plan_escalations([esc], rec, NOON + timedelta(hours=1), SHANGHAI) == []


def test_back_off_grows_exponentially_and_is_capped() -> None:
    policy = RetryPolicy(first_delay_s=10, factor=3, max_delay_s=100)
    assert [retry_delay_s(n, policy) for n in (1, 2, 3, 4)] == [10, 30, 90, 100]


def test_the_digest_is_due_from_its_local_time_and_covers_the_24_hours_before() -> None:
    at = time(8, 0)
    assert digest_window(datetime(2025, 3, 1, 23, 59, tzinfo=UTC), at, SHANGHAI) is None
    day, start, end = digest_window(datetime(2025, 3, 2, 0, 0, tzinfo=UTC), at, SHANGHAI) or (
        "",
        NOON,
        NOON,
    )
    assert day == "2025-03-02"
    assert end == datetime(2025, 3, 2, 0, 0, tzinfo=UTC)
    assert end - start == timedelta(days=1)


def test_messages_name_the_alert_in_local_time_and_carry_its_json() -> None:
    message = alert_message("raise", record(count=3), SHANGHAI)
    assert message.title == "[major] Alert: door forced open at b1/east"
    assert "since: 2025-03-01 12:00, 3 times" in message.text
    assert message.markdown.startswith("### [major] Alert")
    assert message.data["alert"]["id"] == 7
    digest = digest_message("welfare", "2025-03-02", [], SHANGHAI)
    assert "nothing to report" in digest.text


def test_dingtalk_signature_is_hmac_of_timestamp_newline_secret_keyed_by_the_secret() -> None:
    expected = base64.b64encode(
        hmac.new(b"SECabc", b"1700000000000\nSECabc", hashlib.sha256).digest()
    ).decode()
    assert dingtalk_sign("SECabc", 1700000000000) == expected


def test_feishu_signature_is_hmac_of_nothing_keyed_by_timestamp_newline_secret() -> None:
    expected = base64.b64encode(hmac.new(b"1700000000\nfs", b"", hashlib.sha256).digest()).decode()
    assert feishu_sign("fs", 1700000000) == expected


def test_the_webhook_signature_is_a_hex_hmac_of_the_body() -> None:
    digest = hmac.new(b"k", b"{}", hashlib.sha256).hexdigest()
    assert body_signature("k", b"{}") == f"sha256={digest}"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"routes": [{"name": "r", "channels": ["nope"]}]}, "unknown channel 'nope'"),
        (
            {
                "channels": [{"type": "wecom", "name": "w", "url": {"env": "U"}}] * 2,
            },
            "unique",
        ),
        (
            {
                "channels": [{"type": "wecom", "name": "w", "url": {"env": "U"}}],
                "routes": [{"name": "r", "channels": ["w"], "escalate_to": ["w"]}],
            },
            "escalate_to and escalate_after_min go together",
        ),
        (
            {
                "channels": [{"type": "wecom", "name": "w", "url": {"env": "U"}}],
                "routes": [{"name": "r", "channels": ["w"], "quiet_hours": {"start": 1380}}],
            },
            "write times of day in quotes",
        ),
        ({"digests": [{"name": "d", "channels": ["x"], "at": "8am"}]}, "HH:MM"),
        (
            {"channels": [{"type": "email", "name": "m", "host": "h", "sender": "a@b", "to": []}]},
            "at least 1",
        ),
    ],
)
def test_bad_notification_config_is_refused_with_the_reason(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        NotificationsConfig.model_validate(data)


def test_the_documented_notification_examples_are_valid_config() -> None:
    """docs/configuration.md's example and the commented one in examples/ both validate."""
    import yaml

    repo = Path(__file__).resolve().parents[2]
    doc = (repo / "docs" / "configuration.md").read_text(encoding="utf-8")
    block = doc.split("```yaml\nnotifications:", 1)[1].split("```", 1)[0]
    NotificationsConfig.model_validate(yaml.safe_load("notifications:" + block)["notifications"])
    example = (repo / "examples" / "gateway.example.yaml").read_text(encoding="utf-8")
    lines = example.split("# notifications:\n", 1)[1].splitlines()
    commented = []
    for line in lines:
        if not line.startswith("#  "):
            break
        commented.append(line[1:])
    config = NotificationsConfig.model_validate(yaml.safe_load("\n".join(commented)))
    assert [r.name for r in config.routes] == ["guards", "facilities"]
