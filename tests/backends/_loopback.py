"""A loopback HTTP server that replays canned answers (real sockets, 127.0.0.1 only)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Canned:
    """One scripted HTTP answer."""

    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes/str -> sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeAPIServer:
    """A real HTTP/1.1 server on 127.0.0.1 (ephemeral port) that replays canned answers.

    Routes map ``(method, path)`` to a fixed answer; anything else is taken from the queue
    (FIFO). An unexpected request gets a 599 so a test never passes by accident.
    """

    def __init__(self) -> None:
        self.queue: deque[Canned] = deque()
        self.routes: dict[tuple[str, str], Canned] = {}
        self.seen: list[Seen] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                owner.seen.append(
                    Seen(
                        self.command,
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                    )
                )
                canned = owner.routes.get((self.command, self.path))
                if canned is None:
                    canned = owner.queue.popleft() if owner.queue else Canned(599, b"unexpected")
                if canned.delay:
                    time.sleep(canned.delay)
                if isinstance(canned.body, bytes | str):
                    payload = canned.body.encode() if isinstance(canned.body, str) else canned.body
                else:
                    payload = json.dumps(canned.body).encode()
                try:
                    self.send_response(canned.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for key, value in canned.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            do_GET = _serve
            do_POST = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def hostport(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def push(self, *answers: Canned) -> None:
        self.queue.extend(answers)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
