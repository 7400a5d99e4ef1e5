"""The OpenAPI document and its pages: served in development mode, off in production.

Production answers 404 for them with or without a login (an admin token opens nothing): the
document maps every route, parameter and role, and nothing in production needs it. Tooling
and tests build it in-process with ``app.openapi()``, which works in either mode.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.auth.roles import Role
from tests.gatewaykit import gateway_client, login

DOC_PATHS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


def test_production_serves_no_openapi_document_or_docs_page_even_to_an_admin(
    tmp_path: Path,
) -> None:
    with gateway_client(tmp_path, mode="production") as (client, _):
        admin = login(client, Role.ADMIN)
        for path in DOC_PATHS:
            assert client.get(path).status_code == 404, path
            assert client.get(path, headers=admin).status_code == 404, path


def test_production_app_still_builds_its_openapi_document_in_process(tmp_path: Path) -> None:
    with gateway_client(tmp_path, mode="production") as (client, _):
        document = client.app.openapi()  # type: ignore[attr-defined]
    assert "/api/alerts" in document["paths"]


@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
def test_development_serves_the_openapi_document_and_docs_page_without_a_login(
    tmp_path: Path, path: str
) -> None:
    with gateway_client(tmp_path, mode="development") as (client, _):
        response = client.get(path)
    assert response.status_code == 200
    if path == "/openapi.json":
        assert "/api/alerts" in response.json()["paths"]
    else:
        assert "swagger" in response.text.lower()


def test_openapi_document_lists_no_route_as_public_that_needs_a_token(tmp_path: Path) -> None:
    """Routes behind a token say so in the document (a bearer security scheme)."""
    with gateway_client(tmp_path, mode="development") as (client, _):
        document = client.get("/openapi.json").json()
    alerts = document["paths"]["/api/alerts"]["get"]
    assert alerts.get("security"), alerts
    assert isinstance(client, TestClient)
