"""Timeout, Retry, CircuitBreaker and RateLimit on virtual time (no real sleeping)."""

from __future__ import annotations

import asyncio
import random

import pytest

from smesh.backends import (
    CircuitBreaker,
    CircuitOpen,
    RateLimit,
    RateLimiter,
    Request,
    Retry,
    Timeout,
    TruncatedResponse,
    resilient,
)
from smesh.backends.base import Response
from smesh.backends.resilience import RetryEvent
from smesh.clock import VirtualClock
from smesh.errors import (
    AuthenticationFailed,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    RateLimited,
)
from smesh.testing import FunctionBackend, ScriptedBackend

pytestmark = pytest.mark.asyncio


class FakeTime:
    """A virtual clock whose sleep advances it instantly, recording every wait."""

    def __init__(self) -> None:
        self.clock = VirtualClock(1000.0)
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would


def unavailable() -> BackendUnavailable:
    return BackendUnavailable("HTTP 503", backend="s")


# --- Timeout ---------------------------------------------------------------------------


async def test_timeout_turns_a_hang_into_backend_timeout() -> None:
    never = asyncio.Event()

    async def hang(request: Request) -> str:
        await never.wait()
        return "unreachable"

    wrapped = Timeout(FunctionBackend(hang, name="slow"), 0.02)
    with pytest.raises(BackendTimeout, match=r"slow: no answer within 0\.02 s"):
        await wrapped.complete(Request.of("x"))


async def test_timeout_passes_fast_answers_and_validates() -> None:
    assert (await Timeout(ScriptedBackend(["ok"]), 1).complete(Request.of("x"))).text == "ok"
    with pytest.raises(ValueError):
        Timeout(ScriptedBackend(), 0)


# --- Retry -----------------------------------------------------------------------------


async def test_retry_honours_retry_after_exactly() -> None:
    t = FakeTime()
    inner = ScriptedBackend([RateLimited("429", retry_after=7.5, backend="s"), "ok"])
    response = await Retry(inner, sleep=t.sleep, rng=random.Random(1)).complete(Request.of("x"))
    assert response.text == "ok"
    assert t.sleeps == [7.5]
    assert len(inner.calls) == 2


async def test_retry_backoff_is_exponential_jittered_and_seeded() -> None:
    t = FakeTime()
    events: list[RetryEvent] = []
    inner = ScriptedBackend([unavailable(), BackendTimeout("t", backend="s"), unavailable(), "ok"])
    retry = Retry(
        inner,
        attempts=4,
        base_delay=1.0,
        multiplier=2.0,
        sleep=t.sleep,
        rng=random.Random(42),
        on_retry=events.append,
    )
    assert (await retry.complete(Request.of("x"))).text == "ok"
    # equal jitter: retry n waits in [cap/2, cap] with cap = 1, 2, 4
    for wait, cap in zip(t.sleeps, [1.0, 2.0, 4.0], strict=True):
        assert cap / 2 <= wait <= cap
    assert [e.attempt for e in events] == [1, 2, 3]
    # same seed, same waits
    t2 = FakeTime()
    inner2 = ScriptedBackend([unavailable(), BackendTimeout("t", backend="s"), unavailable(), "ok"])
    await Retry(inner2, attempts=4, base_delay=1.0, sleep=t2.sleep, rng=random.Random(42)).complete(
        Request.of("x")
    )
    assert t2.sleeps == t.sleeps


async def test_retry_gives_up_after_attempts_with_the_last_error() -> None:
    t = FakeTime()
    inner = ScriptedBackend([unavailable(), unavailable(), BackendTimeout("last", backend="s")])
    with pytest.raises(BackendTimeout, match="last"):
        await Retry(inner, attempts=3, sleep=t.sleep, rng=random.Random(0)).complete(
            Request.of("x")
        )
    assert len(t.sleeps) == 2


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationFailed("401", backend="s"),
        BadResponse("garbage", backend="s"),
        CircuitOpen("open", retry_in=3.0, backend="s"),
    ],
)
async def test_retry_does_not_retry_permanent_errors(error: Exception) -> None:
    t = FakeTime()
    inner = ScriptedBackend([error], strict=False)
    with pytest.raises(type(error)):
        await Retry(inner, sleep=t.sleep).complete(Request.of("x"))
    assert t.sleeps == [] and len(inner.calls) == 1


async def test_retry_refuses_absurd_retry_after() -> None:
    t = FakeTime()
    inner = ScriptedBackend([RateLimited("429", retry_after=3600, backend="s")])
    with pytest.raises(RateLimited):
        await Retry(inner, sleep=t.sleep, max_retry_after=60).complete(Request.of("x"))
    assert t.sleeps == []


async def test_retry_can_grow_max_tokens_after_truncation() -> None:
    seen: list[int] = []

    def reply(request: Request) -> str:
        seen.append(request.max_tokens)
        if request.max_tokens < 40:
            raise TruncatedResponse("cut", partial="..", max_tokens=request.max_tokens, backend="f")
        return "complete"

    retry = Retry(FunctionBackend(reply), grow_truncated=True, max_tokens_cap=64)
    assert (await retry.complete(Request.of("x", max_tokens=10))).text == "complete"
    assert seen == [10, 20, 40]
    with pytest.raises(TruncatedResponse):  # off by default
        await Retry(FunctionBackend(reply)).complete(Request.of("x", max_tokens=10))


# --- CircuitBreaker --------------------------------------------------------------------


async def test_breaker_opens_fails_fast_half_opens_and_closes() -> None:
    clock = VirtualClock()
    inner = ScriptedBackend([unavailable(), unavailable(), "recovered", "again"])
    breaker = CircuitBreaker(inner, failure_threshold=2, reset_timeout=10, clock=clock)
    for _ in range(2):
        with pytest.raises(BackendUnavailable):
            await breaker.complete(Request.of("x"))
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen) as info:
        await breaker.complete(Request.of("x"))
    assert info.value.retry_in == pytest.approx(10)
    assert len(inner.calls) == 2  # the open circuit did not call through
    clock.advance(10)
    assert breaker.state == "half_open"
    assert (await breaker.complete(Request.of("x"))).text == "recovered"
    assert breaker.state == "closed"
    assert (await breaker.complete(Request.of("x"))).text == "again"


async def test_breaker_failed_trial_reopens() -> None:
    clock = VirtualClock()
    inner = ScriptedBackend([unavailable(), unavailable()])
    breaker = CircuitBreaker(inner, failure_threshold=1, reset_timeout=5, clock=clock)
    with pytest.raises(BackendUnavailable):
        await breaker.complete(Request.of("x"))
    clock.advance(5)
    with pytest.raises(BackendUnavailable):
        await breaker.complete(Request.of("x"))  # the trial
    assert breaker.state == "open"


async def test_breaker_allows_one_trial_at_a_time() -> None:
    clock = VirtualClock()
    gate = asyncio.Event()

    async def slow(request: Request) -> str:
        await gate.wait()
        return "ok"

    calls = iter([unavailable()])

    async def first_fails(request: Request) -> str:
        for error in calls:
            raise error
        return await slow(request)

    breaker = CircuitBreaker(
        FunctionBackend(first_fails), failure_threshold=1, reset_timeout=1, clock=clock
    )
    with pytest.raises(BackendUnavailable):
        await breaker.complete(Request.of("x"))
    clock.advance(1)
    async with asyncio.TaskGroup() as tg:
        trial = tg.create_task(breaker.complete(Request.of("x")))
        await asyncio.sleep(0)
        with pytest.raises(CircuitOpen, match="trial"):
            await breaker.complete(Request.of("x"))
        gate.set()
    assert trial.result().text == "ok"


async def test_breaker_ignores_non_transient_errors() -> None:
    inner = ScriptedBackend([AuthenticationFailed("401", backend="s")] * 3)
    breaker = CircuitBreaker(inner, failure_threshold=2, clock=VirtualClock())
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            await breaker.complete(Request.of("x"))
    assert breaker.state == "closed"


# --- RateLimit -------------------------------------------------------------------------


async def test_requests_per_minute_spaces_calls() -> None:
    t = FakeTime()
    inner = ScriptedBackend(["a", "b", "c", "d"])
    limited = RateLimit(inner, requests_per_minute=2, clock=t.clock, sleep=t.sleep)
    for _ in range(4):
        await limited.complete(Request.of("x", max_tokens=1))
    # two from the full bucket, then one every 30 s
    assert t.sleeps == [pytest.approx(30), pytest.approx(30)]


async def test_tokens_per_minute_waits_for_budget_and_settles_actual_usage() -> None:
    t = FakeTime()
    big = Response(text="x", model="m", backend="s", input_tokens=10, output_tokens=10)
    inner = ScriptedBackend([big, big, big])
    limiter = RateLimiter(tokens_per_minute=600, clock=t.clock, sleep=t.sleep)
    limited = RateLimit(inner, limiter)
    # each call reserves ~1 + 299 tokens, then settles to 20 actually used
    for _ in range(3):
        await limited.complete(Request.of("x", max_tokens=299))
    assert t.sleeps == []  # settling returned the unused reservation


async def test_rate_limit_is_fifo_fair() -> None:
    t = FakeTime()
    order: list[str] = []

    def reply(request: Request) -> Response:
        label = request.messages[0].content
        order.append(label)
        return Response(
            text=label, model="m", backend="f", input_tokens=0, output_tokens=request.max_tokens
        )

    limiter = RateLimiter(tokens_per_minute=100, clock=t.clock, sleep=t.sleep)
    limited = RateLimit(FunctionBackend(reply), limiter)
    await limited.complete(Request.of("warm", max_tokens=90))  # drains the bucket
    async with asyncio.TaskGroup() as tg:
        tg.create_task(limited.complete(Request.of("big", max_tokens=95)))
        await asyncio.sleep(0)
        for i in range(3):
            tg.create_task(limited.complete(Request.of(f"small{i}", max_tokens=1)))
    # the big request queued first is served first, although the small ones would fit sooner
    assert order == ["warm", "big", "small0", "small1", "small2"]


async def test_rate_limit_max_wait_raises_rate_limited() -> None:
    t = FakeTime()
    limited = RateLimit(
        ScriptedBackend(["a"]), requests_per_minute=1, max_wait=5, clock=t.clock, sleep=t.sleep
    )
    await limited.complete(Request.of("x"))
    with pytest.raises(RateLimited) as info:
        await limited.complete(Request.of("x"))
    assert info.value.retry_after == pytest.approx(60)


# --- composition -----------------------------------------------------------------------


async def test_resilient_stack_retries_through_all_layers() -> None:
    t = FakeTime()
    inner = ScriptedBackend(
        [unavailable(), RateLimited("slow down", retry_after=2, backend="s"), "ok"]
    )
    backend = resilient(
        inner,
        timeout=5,
        attempts=3,
        failure_threshold=5,
        requests_per_minute=600,
        rng=random.Random(3),
        sleep=t.sleep,
        clock=t.clock,
    )
    assert backend.name == "scripted"
    assert (await backend.complete(Request.of("x"))).text == "ok"
    assert t.sleeps[-1] == 2
    assert isinstance(backend, Retry)
    assert backend.remaining == 0  # attribute lookups reach the wrapped backend
