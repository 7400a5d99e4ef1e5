"""The web console: static files (HTML, CSS, JavaScript modules) the gateway serves as they are.

No build step: ``index.html`` loads ``static/app.js`` as an ES module, which imports the rest.
The files carry no data; every figure the console shows comes from the authenticated API.
"""

from __future__ import annotations

from pathlib import Path

WEB_ROOT = Path(__file__).resolve().parent
"""Directory holding index.html."""

STATIC_ROOT = WEB_ROOT / "static"
"""Directory served under /static."""

INDEX_HTML = WEB_ROOT / "index.html"

__all__ = ["INDEX_HTML", "STATIC_ROOT", "WEB_ROOT"]
