"""Shared plumbing for HTTP backends: one lazily created httpx client, typed errors,
a deadline on the whole exchange and a cap on the bytes read.

httpx is imported only when a request is made, so merely resolving an HTTP backend (or
importing smesh) stays cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from smesh.backends.base import BackendBase
from smesh.errors import (
    AuthenticationFailed,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    ModelNotFound,
    RateLimited,
    UsageError,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "HTTPBackend", "parse_retry_after"]

#: Default cap on one answer: far above any chat reply, far below what hurts memory.
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
#: How much of an error body is read to build its message.
_ERROR_BODY_BYTES = 64 * 1024


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _error_message(body: bytes) -> str:
    """Pull a human message out of an error body in any of the common shapes."""
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:200] or "no body"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("type") or err)[:200]
        return str(err)[:200]
    return str(data)[:200]


class HTTPBackend(BackendBase):
    """Base of the HTTP backends: client lifecycle, POST with JSON, status to error mapping.

    Two bounds hold for every exchange, whatever the server does: ``timeout`` is a deadline
    for the whole of it (connect, send, headers and every read of the body or stream, not
    each read on its own), and at most ``max_response_bytes`` of the answer are read; the
    body is read in pieces and the read stops the moment it passes the cap, so a huge or
    endless answer never sits in memory. Cancelling a call (a budget, Ctrl-C, an outer
    timeout) closes its connection at once, so the server can stop working on it.

    Args:
        name: backend name (``kind:model``).
        base_url: server root, without a trailing slash.
        timeout: seconds for the whole HTTP exchange, streams included; > 0.
        max_response_bytes: the most bytes of an answer that are read (after
            content decoding); a longer one is a :class:`~smesh.errors.BadResponse`.
        headers: extra headers on every request.
        transport: an httpx transport (tests may pass one).
    """

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        timeout: float = 120.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        headers: Mapping[str, str] | None = None,
        transport: Any = None,
    ) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise UsageError(f"{name}: timeout must be a number of seconds > 0, not {timeout!r}")
        if (
            isinstance(max_response_bytes, bool)
            or not isinstance(max_response_bytes, int)
            or max_response_bytes < 1
        ):
            raise UsageError(
                f"{name}: max_response_bytes must be a positive integer, not {max_response_bytes!r}"
            )
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.max_response_bytes = max_response_bytes
        self.headers = dict(headers or {})
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            # httpx's own timeouts bound each phase; the deadline in post_json/post_lines
            # bounds the sum, which is what a caller means by "timeout".
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                headers=self.headers,
                transport=self._transport,
            )
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client (safe to call twice)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _model_missing_hint(self) -> str:
        return "check the model name"

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.timeout

    def _timed_out(self, url: str) -> BackendTimeout:
        return BackendTimeout(
            f"{self.name}: no complete answer from {url} within {self.timeout:g} s",
            backend=self.name,
        )

    def _unreachable(self, url: str, exc: Exception) -> BackendUnavailable:
        return BackendUnavailable(
            f"{self.name}: cannot reach {url} or the connection broke "
            f"({type(exc).__name__}: {exc})",
            backend=self.name,
        )

    def _too_big(self, url: str, detail: str) -> BadResponse:
        return BadResponse(
            f"{self.name}: answer from {url} {detail}, over max_response_bytes="
            f"{self.max_response_bytes}",
            backend=self.name,
        )

    async def _read_body(self, response: httpx.Response, url: str, *, error: bool) -> bytes:
        """Read the body in pieces, never past the cap.

        An error body only feeds a one-line message, so its first bytes are enough and the
        rest is left unread; a success body over the cap is a :class:`BadResponse`.
        """
        limit = (
            min(_ERROR_BODY_BYTES, self.max_response_bytes) if error else self.max_response_bytes
        )
        declared = _content_length(response.headers)
        if not error and declared is not None and declared > limit:
            raise self._too_big(url, f"declares {declared} bytes")
        body = bytearray()
        async for piece in response.aiter_bytes():
            room = limit - len(body)
            if len(piece) > room:
                if error:
                    body += piece[:room]
                    break
                raise self._too_big(url, "is longer")
            body += piece
        return bytes(body)

    async def post_json(
        self, path: str, body: Mapping[str, Any], *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """POST ``body`` as JSON to ``base_url + path`` and return the decoded JSON object.

        Raises:
            BackendUnavailable: unreachable, a dropped connection, or a 5xx answer.
            AuthenticationFailed: 401 or 403.
            RateLimited: 429, with ``retry_after`` from the headers.
            BackendTimeout: no complete answer within ``timeout`` (the whole exchange).
            ModelNotFound: 404.
            BadResponse: a body that is not a JSON object, or longer than
                ``max_response_bytes``.
            BackendError: any other non-2xx answer.
        """
        import httpx

        url = f"{self.base_url}{path}"
        try:
            async with asyncio.timeout_at(self._deadline()):
                client = self._get_client()
                async with client.stream("POST", url, json=body, headers=headers) as response:
                    ok = 200 <= response.status_code < 300
                    content = await self._read_body(response, url, error=not ok)
                    if not ok:
                        self._raise_status(response.status_code, response.headers, content)
        except (TimeoutError, httpx.TimeoutException) as exc:
            if isinstance(exc, BackendError):  # a 408/504 answer, already typed
                raise
            raise self._timed_out(url) from None
        except httpx.DecodingError as exc:
            raise BadResponse(
                f"{self.name}: undecodable body from {url} ({exc})", backend=self.name
            ) from None
        except httpx.TransportError as exc:
            raise self._unreachable(url, exc) from None
        try:
            data = json.loads(content)
        except ValueError:
            raise BadResponse(
                f"{self.name}: malformed JSON from {url}: {content[:80]!r}", backend=self.name
            ) from None
        if not isinstance(data, dict):
            raise BadResponse(f"{self.name}: expected a JSON object from {url}", backend=self.name)
        return data

    async def post_lines(
        self, path: str, body: Mapping[str, Any], *, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[str]:
        """POST ``body`` and yield the answer's non-empty lines as they arrive (SSE, NDJSON).

        Errors are typed as in :meth:`post_json`; ``timeout`` bounds the whole stream and
        ``max_response_bytes`` all of its bytes together. Closing the iterator early closes
        the connection.
        """
        import httpx

        url = f"{self.base_url}{path}"
        deadline = self._deadline()
        received = 0
        try:
            async with contextlib.AsyncExitStack() as stack:
                # The deadline wraps each await, never a yield: a timeout scope must not
                # stay armed while the consumer's code runs between lines.
                async with asyncio.timeout_at(deadline):
                    client = self._get_client()
                    response = await stack.enter_async_context(
                        client.stream("POST", url, json=body, headers=headers)
                    )
                    if not 200 <= response.status_code < 300:
                        content = await self._read_body(response, url, error=True)
                        self._raise_status(response.status_code, response.headers, content)
                pieces = response.aiter_bytes()
                partial = bytearray()
                while True:
                    async with asyncio.timeout_at(deadline):
                        piece = await anext(pieces, None)
                    if piece is None:
                        break
                    received += len(piece)
                    if received > self.max_response_bytes:
                        raise self._too_big(url, "stream is longer")
                    *complete, rest = piece.split(b"\n")
                    if complete:
                        complete[0] = bytes(partial) + complete[0]
                        partial = bytearray(rest)
                        for raw in complete:
                            line = raw.rstrip(b"\r").decode("utf-8", "replace")
                            if line.strip():
                                yield line
                    else:
                        partial += rest
                tail = partial.decode("utf-8", "replace")
                if tail.strip():
                    yield tail
        except (TimeoutError, httpx.TimeoutException) as exc:
            if isinstance(exc, BackendError):
                raise
            raise self._timed_out(url) from None
        except httpx.DecodingError as exc:
            raise BadResponse(
                f"{self.name}: undecodable stream from {url} ({exc})", backend=self.name
            ) from None
        except httpx.TransportError as exc:
            raise self._unreachable(url, exc) from None

    def raise_for_status(self, response: httpx.Response) -> None:
        """Map a non-2xx answer (already read) to the typed error."""
        self._raise_status(response.status_code, response.headers, response.content)

    def _raise_status(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        if 200 <= status < 300:
            return
        message = _error_message(body)
        where = f"{self.name}: HTTP {status}"
        if status in (401, 403):
            raise AuthenticationFailed(f"{where}: {message}", backend=self.name)
        if status == 429:
            retry_after = parse_retry_after(headers)
            raise RateLimited(
                f"{where}: rate limited: {message}", retry_after=retry_after, backend=self.name
            )
        if status == 404:
            raise ModelNotFound(
                f"{where}: {message} ({self._model_missing_hint()})", backend=self.name
            )
        if status in (408, 504):
            raise BackendTimeout(f"{where}: {message}", backend=self.name)
        if status >= 500:
            raise BackendUnavailable(f"{where}: server error: {message}", backend=self.name)
        raise BackendError(f"{where}: request rejected: {message}", backend=self.name)


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def decode_line(line: str, *, backend: str) -> dict[str, Any]:
    """Decode one JSON object from a streamed line, else raise :class:`BadResponse`."""
    try:
        data = json.loads(line)
    except ValueError:
        raise BadResponse(
            f"{backend}: malformed stream line {line[:80]!r}", backend=backend
        ) from None
    if not isinstance(data, dict):
        raise BadResponse(f"{backend}: stream line is not a JSON object", backend=backend)
    return data


def require(data: Mapping[str, Any], key: str, kind: type, *, backend: str) -> Any:
    """Return ``data[key]`` if it has type ``kind``, else raise :class:`BadResponse`."""
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadResponse(
            f"{backend}: malformed reply: {key!r} missing or not {kind.__name__}", backend=backend
        )
    return value
