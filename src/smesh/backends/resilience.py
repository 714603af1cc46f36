"""Composable resilience wrappers: each is a backend that wraps a backend.

``Timeout`` bounds one call; ``Retry`` re-issues transient failures with exponential
backoff and jitter; ``CircuitBreaker`` stops hammering a backend that keeps failing;
``RateLimit`` spaces calls to stay under requests- and tokens-per-minute limits, serving
waiters first come, first served. Time comes from an injectable clock and waiting from an
injectable ``sleep``, so tests run on virtual time with a seeded RNG.

A sensible stack, outermost first: ``Retry(CircuitBreaker(RateLimit(Timeout(backend))))``
(see :func:`resilient`): each attempt is rate-limited and timed out on its own, the
breaker sees every attempt, and an open circuit is not retried.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from smesh.backends.base import (
    Backend,
    BackendBase,
    Request,
    Response,
    TruncatedResponse,
    aclose_backend,
)
from smesh.clock import Clock
from smesh.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    CircuitOpen,
    RateLimited,
    UsageError,
)

__all__ = [
    "CircuitBreaker",
    "CircuitOpen",
    "MonotonicClock",
    "RateLimit",
    "RateLimiter",
    "Retry",
    "RetryEvent",
    "Timeout",
    "Wrapper",
    "resilient",
]

Sleep = Callable[[float], Awaitable[None]]


class MonotonicClock:
    """``time.monotonic()`` as a :class:`~smesh.clock.Clock`: immune to wall-clock jumps."""

    __slots__ = ()

    def now(self) -> float:
        """Return ``time.monotonic()``."""
        return time.monotonic()


class Wrapper(BackendBase):
    """Base of the wrappers: forwards ``name`` and ``aclose`` to the wrapped backend."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name

    async def complete(self, request: Request) -> Response:
        """Forward to the wrapped backend."""
        return await self.inner.complete(request)

    async def aclose(self) -> None:
        """Close the wrapped backend."""
        await aclose_backend(self.inner)

    def __getattr__(self, attribute: str) -> Any:
        # Reach through wrappers for backend-specific extras (e.g. LocalBackend.base_url).
        if attribute == "inner":
            raise AttributeError(attribute)
        return getattr(self.inner, attribute)


class Timeout(Wrapper):
    """Fail a call with :class:`~smesh.errors.BackendTimeout` after ``seconds``.

    Args:
        inner: the backend to bound.
        seconds: the limit for one call, > 0.
    """

    def __init__(self, inner: Backend, seconds: float) -> None:
        if not seconds > 0:
            raise UsageError(f"timeout must be > 0 seconds, not {seconds!r}")
        super().__init__(inner)
        self.seconds = float(seconds)

    async def complete(self, request: Request) -> Response:
        """Call the wrapped backend, cancelling it after :attr:`seconds`."""
        try:
            async with asyncio.timeout(self.seconds):
                return await self.inner.complete(request)
        except TimeoutError as exc:
            if isinstance(exc, BackendTimeout):
                raise
            raise BackendTimeout(
                f"{self.name}: no answer within {self.seconds:g} s", backend=self.name
            ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryEvent:
    """One retry decision, passed to ``on_retry`` (for logs and tests).

    Attributes:
        attempt: the attempt that failed, from 1.
        error: what it failed with.
        delay: seconds waited before the next attempt.
    """

    attempt: int
    error: BackendError
    delay: float


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, CircuitOpen):
        return False
    return isinstance(exc, RateLimited | BackendTimeout | BackendUnavailable)


class Retry(Wrapper):
    """Retry transient failures (429, 5xx/unreachable, timeouts) with backoff and jitter.

    The n-th retry waits ``min(max_delay, base_delay * multiplier**(n-1))``, of which the
    upper half is jittered ("equal jitter": never zero, never in lockstep). A
    :class:`~smesh.errors.RateLimited` with ``retry_after`` waits exactly that long, unless it
    exceeds ``max_retry_after``, in which case the error is raised at once.

    Args:
        inner: the backend to retry.
        attempts: total attempts, >= 1.
        base_delay: first backoff, seconds.
        max_delay: cap on one backoff, seconds.
        multiplier: growth factor per retry.
        max_retry_after: the longest provider-requested wait we honour.
        grow_truncated: retry a :class:`TruncatedResponse` once per attempt with
            ``max_tokens`` doubled (up to ``max_tokens_cap``) instead of failing.
        max_tokens_cap: ceiling for ``grow_truncated``.
        rng: seeded source of jitter.
        sleep: how to wait (inject a fake for tests).
        on_retry: called before each wait.
    """

    def __init__(
        self,
        inner: Backend,
        *,
        attempts: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        multiplier: float = 2.0,
        max_retry_after: float = 120.0,
        grow_truncated: bool = False,
        max_tokens_cap: int = 4096,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        on_retry: Callable[[RetryEvent], None] | None = None,
    ) -> None:
        if attempts < 1:
            raise UsageError(f"attempts must be >= 1, not {attempts}")
        if base_delay < 0 or max_delay < 0 or multiplier < 1:
            raise UsageError("delays must be >= 0 and multiplier >= 1")
        super().__init__(inner)
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.multiplier = multiplier
        self.max_retry_after = max_retry_after
        self.grow_truncated = grow_truncated
        self.max_tokens_cap = max_tokens_cap
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._on_retry = on_retry

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (from 1), jitter included."""
        cap = min(self.max_delay, self.base_delay * self.multiplier ** (retry - 1))
        return cap / 2 + self._rng.uniform(0, cap / 2)

    async def complete(self, request: Request) -> Response:
        """Call the wrapped backend, retrying transient failures."""
        current = request
        for attempt in range(1, self.attempts + 1):
            try:
                return await self.inner.complete(current)
            except TruncatedResponse as exc:
                bigger = min(self.max_tokens_cap, current.max_tokens * 2)
                if (
                    not self.grow_truncated
                    or attempt == self.attempts
                    or bigger <= current.max_tokens
                ):
                    raise
                current = msgspec.structs.replace(current, max_tokens=bigger)
                self._notify(attempt, exc, 0.0)
                continue
            except BackendError as exc:
                if not _retryable(exc) or attempt == self.attempts:
                    raise
                delay = self.backoff(attempt)
                if isinstance(exc, RateLimited) and exc.retry_after is not None:
                    if exc.retry_after > self.max_retry_after:
                        raise
                    delay = max(0.0, exc.retry_after)
                self._notify(attempt, exc, delay)
                if delay > 0:
                    await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _notify(self, attempt: int, error: BackendError, delay: float) -> None:
        if self._on_retry is not None:
            self._on_retry(RetryEvent(attempt=attempt, error=error, delay=delay))


class CircuitBreaker(Wrapper):
    """Fail fast after repeated failures; let one trial call through after a cool-down.

    Closed: calls pass; ``failure_threshold`` consecutive transient failures (unreachable,
    5xx, timeouts) open it. Open: calls raise :class:`CircuitOpen` for ``reset_timeout``
    seconds. Half-open: ``half_open_calls`` trial calls pass; a success closes the circuit, a
    failure opens it again. Other errors (auth, bad output) neither trip nor reset it.

    Args:
        inner: the backend to guard.
        failure_threshold: consecutive failures that open the circuit.
        reset_timeout: seconds the circuit stays open.
        half_open_calls: trial calls allowed at once while half-open.
        clock: time source (monotonic by default).
    """

    def __init__(
        self,
        inner: Backend,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        half_open_calls: int = 1,
        clock: Clock | None = None,
    ) -> None:
        if failure_threshold < 1 or half_open_calls < 1 or reset_timeout < 0:
            raise UsageError("failure_threshold and half_open_calls must be >= 1")
        super().__init__(inner)
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.half_open_calls = half_open_calls
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trials = 0

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open``."""
        if self._opened_at is None:
            return "closed"
        if self._clock.now() - self._opened_at >= self.reset_timeout:
            return "half_open"
        return "open"

    async def complete(self, request: Request) -> Response:
        """Call the wrapped backend unless the circuit is open."""
        state = self.state
        if state == "open":
            assert self._opened_at is not None
            retry_in = self.reset_timeout - (self._clock.now() - self._opened_at)
            raise CircuitOpen(
                f"{self.name}: circuit open after {self._failures} failures; "
                f"next try in {retry_in:.1f} s",
                retry_in=retry_in,
                backend=self.name,
            )
        trial = state == "half_open"
        if trial:
            if self._trials >= self.half_open_calls:
                raise CircuitOpen(
                    f"{self.name}: circuit half-open, trial call in progress",
                    retry_in=0.0,
                    backend=self.name,
                )
            self._trials += 1
        try:
            response = await self.inner.complete(request)
        except BackendError as exc:
            if _retryable(exc) and not isinstance(exc, CircuitOpen):
                self._failures += 1
                if trial or self._failures >= self.failure_threshold:
                    self._opened_at = self._clock.now()
            raise
        finally:
            if trial:
                self._trials -= 1
        self._failures = 0
        self._opened_at = None
        return response


class RateLimiter:
    """Requests- and tokens-per-minute budget, shareable by several wrappers of one backend.

    Two token buckets refill continuously (``limit / 60`` per second) up to one minute's
    worth. A call reserves one request and an estimate of its tokens (prompt estimate plus
    ``max_tokens``); after the call the estimate is corrected with the reported usage. Waiters
    queue on a FIFO lock, so a big request is never starved by a stream of small ones.

    Args:
        requests_per_minute: request limit, or None for none.
        tokens_per_minute: token limit, or None for none.
        max_wait: the longest a caller waits before getting
            :class:`~smesh.errors.RateLimited`, seconds.
        clock: time source (monotonic by default).
        sleep: how to wait.
    """

    def __init__(
        self,
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        max_wait: float = 300.0,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        for label, value in (("requests", requests_per_minute), ("tokens", tokens_per_minute)):
            if value is not None and not value > 0:
                raise UsageError(f"{label}_per_minute must be > 0, not {value!r}")
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.max_wait = max_wait
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._sleep = sleep
        self._lock = asyncio.Lock()  # asyncio.Lock wakes waiters in FIFO order
        start = self._clock.now()
        self._requests = float(requests_per_minute or 0.0)
        self._tokens = float(tokens_per_minute or 0.0)
        self._stamp = start

    def _refill(self) -> None:
        now = self._clock.now()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        if self.requests_per_minute is not None:
            rpm = self.requests_per_minute
            self._requests = min(rpm, self._requests + elapsed * rpm / 60)
        if self.tokens_per_minute is not None:
            tpm = self.tokens_per_minute
            self._tokens = min(tpm, self._tokens + elapsed * tpm / 60)

    def _wait_needed(self, tokens: float) -> float:
        wait = 0.0
        if self.requests_per_minute is not None and self._requests < 1:
            wait = max(wait, (1 - self._requests) * 60 / self.requests_per_minute)
        if self.tokens_per_minute is not None and self._tokens < tokens:
            wait = max(wait, (tokens - self._tokens) * 60 / self.tokens_per_minute)
        return wait

    async def acquire(self, tokens: int = 0, *, backend: str | None = None) -> float:
        """Wait for room for one request of ``tokens`` tokens; return the tokens reserved.

        Raises:
            RateLimited: the wait would exceed ``max_wait``.
        """
        reserve = float(tokens)
        if self.tokens_per_minute is not None:
            # A request larger than a whole minute's budget could never fit; let it through
            # on a full bucket instead of waiting forever.
            reserve = min(reserve, self.tokens_per_minute)
        try:
            # The real-time bound covers the queue on the lock as well as our own sleeps.
            async with asyncio.timeout(self.max_wait + 1.0), self._lock:
                waited = 0.0
                while True:
                    self._refill()
                    wait = self._wait_needed(reserve)
                    if wait <= 1e-9:
                        break
                    if waited + wait > self.max_wait:
                        raise RateLimited(
                            f"{backend or 'backend'}: local rate limit needs a {wait:.1f} s "
                            f"wait (max_wait {self.max_wait:g} s)",
                            retry_after=wait,
                            backend=backend,
                        )
                    await self._sleep(wait)
                    waited += wait
                if self.requests_per_minute is not None:
                    self._requests -= 1
                if self.tokens_per_minute is not None:
                    self._tokens -= reserve
        except TimeoutError:
            raise RateLimited(
                f"{backend or 'backend'}: queued longer than max_wait {self.max_wait:g} s "
                "for the local rate limit",
                backend=backend,
            ) from None
        return reserve

    def settle(self, reserved: float, used: int) -> None:
        """Correct a reservation with the tokens actually used (may leave the bucket owing)."""
        if self.tokens_per_minute is not None:
            self._refill()
            self._tokens = min(self.tokens_per_minute, self._tokens + reserved - used)


class RateLimit(Wrapper):
    """Keep calls to ``inner`` within a :class:`RateLimiter`'s budget.

    Args:
        inner: the backend to limit.
        limiter: a shared limiter; or pass ``requests_per_minute``/``tokens_per_minute``
            (and ``clock``/``sleep``/``max_wait``) to make one.
    """

    def __init__(self, inner: Backend, limiter: RateLimiter | None = None, **limits: Any) -> None:
        super().__init__(inner)
        if limiter is not None and limits:
            raise UsageError("pass either a limiter or limits, not both")
        self.limiter = limiter if limiter is not None else RateLimiter(**limits)

    async def complete(self, request: Request) -> Response:
        """Wait for budget, call the wrapped backend, then settle the token estimate."""
        prompt = request.estimated_prompt_tokens()
        reserved = await self.limiter.acquire(prompt + request.max_tokens, backend=self.name)
        try:
            response = await self.inner.complete(request)
        except BaseException:
            # A failed call still cost a request; give its token estimate back.
            self.limiter.settle(reserved, 0)
            raise
        self.limiter.settle(reserved, response.input_tokens + response.output_tokens)
        return response


def resilient(
    backend: Backend,
    *,
    timeout: float | None = 120.0,
    attempts: int = 4,
    failure_threshold: int | None = 5,
    reset_timeout: float = 30.0,
    requests_per_minute: float | None = None,
    tokens_per_minute: float | None = None,
    rng: random.Random | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock | None = None,
) -> Backend:
    """Wrap ``backend`` in the usual stack: ``Retry(CircuitBreaker(RateLimit(Timeout(b))))``.

    Layers whose setting is None (or, for retries, ``attempts=1``) are left out.
    """
    wrapped: Backend = backend
    if timeout is not None:
        wrapped = Timeout(wrapped, timeout)
    if requests_per_minute is not None or tokens_per_minute is not None:
        wrapped = RateLimit(
            wrapped,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            clock=clock,
            sleep=sleep,
        )
    if failure_threshold is not None:
        wrapped = CircuitBreaker(
            wrapped,
            failure_threshold=failure_threshold,
            reset_timeout=reset_timeout,
            clock=clock,
        )
    if attempts > 1:
        wrapped = Retry(wrapped, attempts=attempts, rng=rng, sleep=sleep)
    return wrapped
