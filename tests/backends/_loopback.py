"""Loopback HTTP servers for the backend tests (real sockets, 127.0.0.1 only).

``FakeAPIServer`` replays canned answers; ``RawServer`` hands each connection to a function
that may misbehave on purpose (drip, flood, hang, cut the answer short).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
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


# --- a raw server for misbehaving on purpose ---------------------------------------------

Behaviour = Callable[["RawConnection"], None]


class RawConnection:
    """One accepted connection, with helpers for the ways a server can misbehave.

    Every wait is bounded by the server's stop event, so a test that forgets nothing still
    ends promptly when it stops the server.
    """

    def __init__(self, sock: socket.socket, server: RawServer) -> None:
        self.sock = sock
        self.server = server
        self.request = b""

    @property
    def stopping(self) -> bool:
        return self.server.stop_event.is_set()

    def read_request(self) -> bytes:
        """Read one request (headers and a Content-Length body) and keep it."""
        self.sock.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            piece = self.sock.recv(65536)
            if not piece:
                return data
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            piece = self.sock.recv(65536)
            if not piece:
                break
            body += piece
        self.request = head + b"\r\n\r\n" + body
        self.server.requests.append(self.request)
        return self.request

    def send(self, data: bytes) -> bool:
        """Send ``data``; False (and the close noted) when the client has gone."""
        try:
            self.sock.sendall(data)
        except OSError:
            self.server.note_closed()
            return False
        return True

    def drip(self, data: bytes, interval: float, *, limit: float = 20.0) -> None:
        """Send ``data`` one byte every ``interval`` s (cycling), for at most ``limit`` s."""
        ends = time.monotonic() + limit
        i = 0
        while time.monotonic() < ends and not self.stopping:
            if not self.send(data[i % len(data) : i % len(data) + 1]):
                return
            i += 1
            if self.server.stop_event.wait(interval):
                return

    def send_repeated(self, block: bytes, total: int) -> int:
        """Send ``total`` bytes made of ``block`` repeated; return how many went out."""
        sent = 0
        view = memoryview(block)
        while sent < total and not self.stopping:
            piece = view[: min(len(block), total - sent)]
            if not self.send(bytes(piece)):
                break
            sent += len(piece)
        self.server.bytes_sent += sent
        return sent

    def hold(self, *, limit: float = 20.0) -> None:
        """Send nothing; note when the client closes the connection (bounded by ``limit``)."""
        self.sock.settimeout(0.01)
        ends = time.monotonic() + limit
        while time.monotonic() < ends and not self.stopping:
            try:
                if self.sock.recv(65536) == b"":
                    self.server.note_closed()
                    return
            except TimeoutError:
                continue
            except OSError:
                self.server.note_closed()
                return


class RawServer:
    """A TCP server on 127.0.0.1 (ephemeral port) handing each connection to ``behaviour``.

    Attributes:
        requests: raw requests read by :meth:`RawConnection.read_request`.
        closed_at: ``time.monotonic()`` of each client close the server noticed.
        bytes_sent: bytes sent through :meth:`RawConnection.send_repeated`.
    """

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.requests: list[bytes] = []
        self.closed_at: list[float] = []
        self.bytes_sent = 0
        self.stop_event = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def note_closed(self) -> None:
        self.closed_at.append(time.monotonic())

    def _accept(self) -> None:
        while not self.stop_event.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            try:
                self.behaviour(RawConnection(sock, self))
            except OSError:
                self.note_closed()

    def __enter__(self) -> RawServer:
        self._accepter.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self._accepter.join(timeout=5)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)
