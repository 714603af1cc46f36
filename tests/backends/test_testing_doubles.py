"""ScriptedBackend and FunctionBackend."""

from __future__ import annotations

import pytest

from smesh.backends import Backend, Request
from smesh.errors import BackendTimeout, BadResponse
from smesh.testing import FunctionBackend, ScriptedBackend, UnconsumedReplies, UnexpectedCall

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


@pytest.mark.asyncio
async def test_scripted_replays_in_order_and_records_calls() -> None:
    backend = ScriptedBackend(["first", {"ok": True}], name="s")
    assert isinstance(backend, Backend)
    one = await backend.complete(Request.of("a"))
    two = await backend.complete(Request.of("b", json_schema=SCHEMA))
    assert (one.text, one.backend) == ("first", "s")
    assert two.parsed == {"ok": True}
    assert [c.messages[0].content for c in backend.calls] == ["a", "b"]
    assert one.output_tokens > 0 and one.input_tokens > 0
    await backend.aclose()


@pytest.mark.asyncio
async def test_scripted_raises_scripted_exceptions() -> None:
    backend = ScriptedBackend([BackendTimeout("slow", backend="s"), "after"])
    with pytest.raises(BackendTimeout):
        await backend.complete(Request.of("a"))
    assert (await backend.complete(Request.of("a"))).text == "after"


@pytest.mark.asyncio
async def test_scripted_fails_loudly_on_unexpected_call() -> None:
    backend = ScriptedBackend(["only"])
    await backend.complete(Request.of("a"))
    with pytest.raises(UnexpectedCall, match="unexpected call #2"):
        await backend.complete(Request.of("second prompt"))


@pytest.mark.asyncio
async def test_scripted_complains_about_unconsumed_replies_at_close() -> None:
    backend = ScriptedBackend(["used", "never used"])
    await backend.complete(Request.of("a"))
    with pytest.raises(UnconsumedReplies, match="never used"):
        backend.assert_all_consumed()
    with pytest.raises(UnconsumedReplies):
        async with backend:
            pass
    relaxed = ScriptedBackend(["x"], strict=False)
    await relaxed.aclose()  # no complaint when not strict


@pytest.mark.asyncio
async def test_scripted_schema_check_applies_to_canned_text() -> None:
    backend = ScriptedBackend(["not json"])
    with pytest.raises(BadResponse):
        await backend.complete(Request.of("a", json_schema=SCHEMA))


@pytest.mark.asyncio
async def test_function_backend_sync_and_async_callables() -> None:
    sync = FunctionBackend(lambda r: r.messages[-1].content.upper())
    assert (await sync.complete(Request.of("abc"))).text == "ABC"

    async def decide(request: Request) -> str:
        return f"{len(request.messages)} msgs"

    asynchronous = FunctionBackend(decide, name="fn")
    response = await asynchronous.complete(Request.of("x"))
    assert (response.text, response.backend) == ("1 msgs", "fn")
    assert len(asynchronous.calls) == 1


@pytest.mark.asyncio
async def test_function_backend_simulated_latency_uses_injected_sleep() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    backend = FunctionBackend(
        lambda r: "ok", latency=lambda r: 0.1 * r.max_tokens, sleep=fake_sleep
    )
    response = await backend.complete(Request.of("x", max_tokens=30))
    assert slept == [pytest.approx(3.0)]
    assert response.latency_s >= 3.0


@pytest.mark.asyncio
async def test_function_backend_propagates_raised_errors() -> None:
    def boom(request: Request) -> str:
        raise BadResponse("nope", backend="fn")

    with pytest.raises(BadResponse, match="nope"):
        await FunctionBackend(boom).complete(Request.of("x"))
