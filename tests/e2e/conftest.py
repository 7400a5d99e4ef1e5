"""Fixtures for the browser tests: one real gateway and API server per module, one Chromium.

The gateway runs in this process (ingest on the module's mosquitto, SQLite files); the API is
served by uvicorn in a thread on a fixed port so a test can stop and restart it. Each test gets a
fresh browser context (empty sessionStorage and localStorage) at 1280x800, or with ``phone`` at
390x844 as a touch phone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from gateway.api import create_app
from gateway.app import Gateway
from gateway.auth.roles import Role
from tests.broker import Broker, free_port
from tests.e2e.harness import (
    PHONE_VIEWPORT,
    VIEWPORT,
    EdgePublisher,
    LiveServer,
    launch_chromium,
    start_gateway,
    username,
)
from tests.gatewaykit import PASSWORD
from tests.gatewayproc import Publisher


@pytest.fixture(scope="module")
def gateway(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path_factory.mktemp("e2e-gateway"), broker.port)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def server(gateway: Gateway) -> Iterator[LiveServer]:
    live = LiveServer(create_app(gateway.services), free_port()).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def edge(broker: Broker) -> Iterator[EdgePublisher]:
    publisher = Publisher(broker.port, client_id="e2e-edge")
    yield EdgePublisher(publisher)
    publisher.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


class PageProblems:
    """Uncaught script errors and missing translations seen by a page."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def on_console(self, message: Any) -> None:
        if message.type == "warning" and message.text.startswith("i18n: missing key"):
            self.errors.append(message.text)

    def on_page_error(self, error: Any) -> None:
        self.errors.append(f"uncaught: {error}")


def checked_page(context: BrowserContext) -> Iterator[Page]:
    """A page of ``context``; fails the test if a script error or a missing translation showed."""
    new_page = context.new_page()
    new_page.set_default_timeout(15_000)
    problems = PageProblems()
    new_page.on("console", problems.on_console)
    new_page.on("pageerror", problems.on_page_error)
    yield new_page
    context.close()
    assert problems.errors == [], problems.errors


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; the test fails if a script error or a missing translation showed up."""
    yield from checked_page(browser.new_context(viewport=VIEWPORT))  # type: ignore[arg-type]


@pytest.fixture
def phone(browser: Browser, server: LiveServer) -> Iterator[Page]:
    """A fresh page on a touch phone (390x844), browser notifications allowed for the gateway."""
    context = browser.new_context(
        viewport=PHONE_VIEWPORT,  # type: ignore[arg-type]
        is_mobile=True,
        has_touch=True,
        device_scale_factor=1,
    )
    context.grant_permissions(["notifications"], origin=server.url)
    yield from checked_page(context)


@pytest.fixture
def api(server: LiveServer) -> Iterator[Any]:
    """An httpx client of the same API, logged in as ``api.as_role(role)``."""

    class Api(httpx.Client):
        def as_role(self, role: Role) -> dict[str, str]:
            answer = self.post(
                "/api/auth/login", json={"username": username(role), "password": PASSWORD}
            )
            answer.raise_for_status()
            return {"Authorization": f"Bearer {answer.json()['token']}"}

    with Api(base_url=server.url, timeout=10) as client:
        yield client
