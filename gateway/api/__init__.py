"""The gateway's HTTP API: ``create_app(services)`` builds a FastAPI app over the given services.

Nothing is created at import time: each app carries its services (``app.state.services``) and
its own Prometheus registry. Every route declares the roles that may call it (see deps.py and
docs/api.md); only /healthz, POST /api/auth/login and the web console's static files (``/`` and
``/static/...``, which carry no data) answer without a token.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

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
    student,
    student_ws,
    throttles,
    users,
    ws,
)
from gateway.services import Services
from gateway.web import INDEX_HTML, STATIC_ROOT

STATIC_PATH = "/static"
PUBLIC_PATHS = frozenset({"/healthz", "/api/auth/login", "/", STATIC_PATH})
"""Routes that answer without a token (besides the OpenAPI docs in development mode).

``/`` is the console's index page and ``/static`` a mount: every file under it is public. Both
hold code only; the console fetches every figure from the API with the user's token.
"""

# The console is same-origin only: scripts, styles and connections (fetch, WebSocket) to the
# gateway itself, nothing inline, and no framing (clickjacking of the guard console).
CONSOLE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


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
        throttles,
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
        student,
        student_ws,
        metrics,
    ):
        app.include_router(module.router)
    _serve_console(app)
    return app


def _serve_console(app: FastAPI) -> None:
    """The web console: index.html at / and its modules, styles and icons under /static."""

    @app.get("/", include_in_schema=False)
    def console_index() -> FileResponse:
        return FileResponse(INDEX_HTML, media_type="text/html", headers=CONSOLE_HEADERS)

    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_ROOT), name="static")


__all__ = ["PUBLIC_PATHS", "create_app"]
