"""A local HTTP receiver standing in for WeCom, DingTalk, Feishu and webhook endpoints.

Each POST is recorded (path, query, headers, raw body, parsed JSON); the answer is the next
one queued for that path, else 200 ``{"errcode": 0, "errmsg": "ok", "code": 0}``. Nothing
leaves the machine.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """The server's state: requests received and answers to give."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._answers: dict[str, list[tuple[int, Any]]] = {}
        self._standing: dict[str, tuple[int, Any]] = {}
        self._lock = threading.Lock()
        self.url = ""

    def answer(self, path: str, status: int, body: Any) -> None:
        """Queue one answer for the next POST to ``path``."""
        with self._lock:
            self._answers.setdefault(path, []).append((status, body))

    def answer_always(self, path: str, status: int | None, body: Any = None) -> None:
        """Give this answer to every POST to ``path`` (after the queued ones); None: stop."""
        with self._lock:
            if status is None:
                self._standing.pop(path, None)
            else:
                self._standing[path] = (status, body)

    def on(self, path: str) -> list[Received]:
        """The requests to one path, in order."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _take(self, request: Received) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(request)
            queued = self._answers.get(request.path)
            if queued:
                return queued.pop(0)
            if request.path in self._standing:
                return self._standing[request.path]
        return 200, {"errcode": 0, "errmsg": "ok", "code": 0, "msg": "success"}


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length", "0"))
            request = Received(
                path=parts.path,
                query={k: v[0] for k, v in parse_qs(parts.query).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length),
            )
            status, body = receiver._take(request)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def http_receiver() -> Iterator[Receiver]:
    """A running receiver on a free loopback port; ``receiver.url`` is its base URL."""
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
