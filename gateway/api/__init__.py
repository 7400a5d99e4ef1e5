"""The gateway's HTTP API: ``create_app(services)`` builds a FastAPI app over the given services.

Nothing is created at import time: each app carries its services (``app.state.services``) and
its own Prometheus registry. Every route declares the roles that may call it (see deps.py and
docs/api.md); only /healthz and POST /api/auth/login answer without a token.
"""

from __future__ import annotations

from fastapi import FastAPI

from gateway.api.routes import (
    access,
    alerts,
    auth,
    dead_letters,
    devices,
    enrolment,
    gates,
    health,
    metrics,
    occupancy,
    people,
    silences,
    users,
    ws,
)
from gateway.services import Services

PUBLIC_PATHS = frozenset({"/healthz", "/api/auth/login"})
"""Routes that answer without a token (besides the OpenAPI docs in development mode)."""


def create_app(services: Services, *, ws_ping_interval_s: float = 20.0) -> FastAPI:
    """The API over ``services``; OpenAPI docs are served only in development mode."""
    development = services.config.mode == "development"
    app = FastAPI(
        title="dormguard gateway",
        version="1",
        docs_url="/docs" if development else None,
        redoc_url=None,
        openapi_url="/openapi.json" if development else None,
    )
    app.state.services = services
    app.state.ws_ping_interval_s = ws_ping_interval_s
    app.state.metrics_registry = metrics.build_registry(services)
    for module in (
        health,
        auth,
        users,
        alerts,
        silences,
        ws,
        access,
        occupancy,
        devices,
        people,
        enrolment,
        gates,
        dead_letters,
        metrics,
    ):
        app.include_router(module.router)
    return app


__all__ = ["PUBLIC_PATHS", "create_app"]
