"""Shared plumbing for HTTP backends: one lazily created httpx client, typed errors.

httpx is imported only when a request is made, so merely resolving an HTTP backend (or
importing smesh) stays cheap.
"""

from __future__ import annotations

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
)

if TYPE_CHECKING:
    import httpx

__all__ = ["HTTPBackend", "parse_retry_after"]


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

    Args:
        name: backend name (``kind:model``).
        base_url: server root, without a trailing slash.
        timeout: seconds for the whole HTTP exchange.
        headers: extra headers on every request.
        transport: an httpx transport (tests may pass one).
    """

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        timeout: float = 120.0,
        headers: Mapping[str, str] | None = None,
        transport: Any = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

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

    async def post_json(
        self, path: str, body: Mapping[str, Any], *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """POST ``body`` as JSON to ``base_url + path`` and return the decoded JSON object.

        Raises:
            BackendUnavailable: unreachable, or a 5xx answer.
            AuthenticationFailed: 401 or 403.
            RateLimited: 429, with ``retry_after`` from the headers.
            BackendTimeout: no answer in time.
            ModelNotFound: 404.
            BadResponse: a body that is not a JSON object.
            BackendError: any other non-2xx answer.
        """
        import httpx

        url = f"{self.base_url}{path}"
        try:
            response = await self._get_client().post(url, json=body, headers=headers)
        except httpx.TimeoutException:
            raise BackendTimeout(
                f"{self.name}: no answer from {url} within {self.timeout:g} s", backend=self.name
            ) from None
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                f"{self.name}: cannot reach {url} ({type(exc).__name__}: {exc})",
                backend=self.name,
            ) from None
        self.raise_for_status(response)
        try:
            data = json.loads(response.content)
        except ValueError:
            raise BadResponse(
                f"{self.name}: malformed JSON from {url}: {response.content[:80]!r}",
                backend=self.name,
            ) from None
        if not isinstance(data, dict):
            raise BadResponse(f"{self.name}: expected a JSON object from {url}", backend=self.name)
        return data

    async def post_lines(
        self, path: str, body: Mapping[str, Any], *, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[str]:
        """POST ``body`` and yield the answer's non-empty lines as they arrive (SSE, NDJSON).

        Errors are typed as in :meth:`post_json`; ``timeout`` bounds each read.
        """
        import httpx

        url = f"{self.base_url}{path}"
        try:
            async with self._get_client().stream("POST", url, json=body, headers=headers) as rsp:
                if not 200 <= rsp.status_code < 300:
                    await rsp.aread()
                    self.raise_for_status(rsp)
                async for line in rsp.aiter_lines():
                    if line.strip():
                        yield line
        except httpx.TimeoutException:
            raise BackendTimeout(
                f"{self.name}: stream from {url} stalled for {self.timeout:g} s",
                backend=self.name,
            ) from None
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                f"{self.name}: cannot reach {url} ({type(exc).__name__}: {exc})",
                backend=self.name,
            ) from None

    def raise_for_status(self, response: httpx.Response) -> None:
        """Map a non-2xx answer to the typed error."""
        status = response.status_code
        if 200 <= status < 300:
            return
        message = _error_message(response.content)
        where = f"{self.name}: HTTP {status}"
        if status in (401, 403):
            raise AuthenticationFailed(f"{where}: {message}", backend=self.name)
        if status == 429:
            retry_after = parse_retry_after(response.headers)
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
