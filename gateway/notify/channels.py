"""HTTP channels: WeCom and DingTalk robots, Feishu/Lark bots, a generic JSON webhook.

The only module that imports httpx. Vendor errors are translated (STYLE.md 4): network
failures, HTTP 429/5xx and a vendor error code in a 200 answer (rate limits, a clock too far
off for the signature) are ``ConnectionError`` and retried; other HTTP 4xx are ``ValueError``
and fail at once. Messages never name the URL: robot URLs carry their token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote_plus

import httpx

from gateway.notify.messages import Message
from gateway.notify.signing import body_signature, dingtalk_sign, feishu_sign

WallClock = Callable[[], float]  # seconds since the epoch (the signatures' timestamps)


class Channel(Protocol):
    """Somewhere a notice can be sent."""

    name: str

    def send(self, message: Message) -> None:
        """Deliver or raise ConnectionError (retry later) / ValueError (give up)."""


def post_json(
    url: str, body: dict[str, Any], timeout_s: float, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST ``body`` as UTF-8 JSON; transient failures as ConnectionError, refusals ValueError."""
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return post_bytes(url, data, timeout_s, headers)


def post_bytes(
    url: str, data: bytes, timeout_s: float, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST JSON bytes; see :func:`post_json`."""
    try:
        response = httpx.post(
            url,
            content=data,
            headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        raise ConnectionError(f"{type(exc).__name__}: {exc}") from None
    if response.status_code == 429 or response.status_code >= 500:
        raise ConnectionError(f"HTTP {response.status_code}")
    if response.status_code >= 400:
        raise ValueError(f"HTTP {response.status_code}: {response.text[:200]}")
    return response


def check_error_code(response: httpx.Response, *fields: str) -> None:
    """Robots answer 200 with an error code: non-zero is a failure (ConnectionError)."""
    try:
        answer = response.json()
    except ValueError:
        raise ConnectionError(f"answer is not JSON: {response.text[:200]!r}") from None
    if not isinstance(answer, dict):
        raise ConnectionError(f"unexpected answer: {response.text[:200]!r}")
    for name in fields:
        if name in answer:
            code = answer[name]
            if code not in (0, "0"):
                message = answer.get("errmsg") or answer.get("msg") or answer.get("StatusMessage")
                raise ConnectionError(f"{name} {code}: {message}")
            return
    raise ConnectionError(f"answer has none of {', '.join(fields)}: {response.text[:200]!r}")


class _Robot:
    """What the group robots share: a secret URL, an optional signing secret, a format."""

    def __init__(
        self,
        name: str,
        url: str,
        timeout_s: float,
        *,
        secret: str | None = None,
        fmt: str = "text",
        wall_clock: WallClock = time.time,
    ) -> None:
        self.name = name
        self._url = url
        self._timeout_s = timeout_s
        self._secret = secret
        self._format = fmt
        self._wall_clock = wall_clock

    def _text_body(self, message: Message) -> dict[str, Any]:
        return {"msgtype": "text", "text": {"content": message.text}}


class WeComRobot(_Robot):
    """WeCom group robot: {"msgtype": "text"|"markdown", ...}; answers {"errcode": 0}."""

    def send(self, message: Message) -> None:
        """Post one message to the group."""
        body = (
            {"msgtype": "markdown", "markdown": {"content": message.markdown}}
            if self._format == "markdown"
            else self._text_body(message)
        )
        check_error_code(post_json(self._url, body, self._timeout_s), "errcode")


class DingTalkRobot(_Robot):
    """DingTalk robot; with a secret, ``timestamp`` (ms) and ``sign`` go in the query string."""

    def send(self, message: Message) -> None:
        """Post one message, signed when the robot has a secret."""
        body = (
            {"msgtype": "markdown", "markdown": {"title": message.title, "text": message.markdown}}
            if self._format == "markdown"
            else self._text_body(message)
        )
        url = self._url
        if self._secret is not None:
            stamp = int(self._wall_clock() * 1000)
            sign = quote_plus(dingtalk_sign(self._secret, stamp))
            url += ("&" if "?" in url else "?") + f"timestamp={stamp}&sign={sign}"
        check_error_code(post_json(url, body, self._timeout_s), "errcode")


class FeishuBot(_Robot):
    """Feishu/Lark custom bot: {"msg_type": "text", ...}; ``timestamp`` (s) and ``sign`` in
    the body when it has a secret; answers {"code": 0} (older: {"StatusCode": 0})."""

    def send(self, message: Message) -> None:
        """Post one text message."""
        body: dict[str, Any] = {"msg_type": "text", "content": {"text": message.text}}
        if self._secret is not None:
            stamp = int(self._wall_clock())
            body = {"timestamp": str(stamp), "sign": feishu_sign(self._secret, stamp), **body}
        check_error_code(post_json(self._url, body, self._timeout_s), "code", "StatusCode")


class JsonWebhook:
    """Any receiver: the notice's JSON; a 2xx answer is success."""

    def __init__(
        self,
        name: str,
        url: str,
        token: str | None,
        hmac_secret: str | None,
        timeout_s: float,
    ) -> None:
        self.name = name
        self._url = url
        self._token = token
        self._hmac_secret = hmac_secret
        self._timeout_s = timeout_s

    def send(self, message: Message) -> None:
        """Post the notice (kind, title, text and the alert or digest data)."""
        body = {"kind": message.kind, "title": message.title, "text": message.text, **message.data}
        data = json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")
        headers: dict[str, str] = {}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        if self._hmac_secret is not None:
            headers["X-Dormguard-Signature"] = body_signature(self._hmac_secret, data)
        post_bytes(self._url, data, self._timeout_s, headers)
