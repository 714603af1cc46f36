"""Ollama, Anthropic and OpenAI backends against real loopback HTTP servers."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from _loopback import Canned, FakeAPIServer

from smesh.backends import Request, Retry, TruncatedResponse
from smesh.backends._http import parse_retry_after
from smesh.backends.anthropic import AnthropicBackend
from smesh.backends.ollama import OllamaBackend, ollama_url
from smesh.backends.openai import OpenAIBackend, create_openrouter
from smesh.errors import (
    AuthenticationFailed,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    ModelNotFound,
    RateLimited,
)

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def ollama_reply(content: str = "4", done_reason: str = "stop") -> dict[str, object]:
    # Shape of a non-streaming /api/chat answer, per Ollama's API docs.
    return {
        "model": "qwen2.5-coder:0.5b",
        "created_at": "2024-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": content},
        "done": True,
        "done_reason": done_reason,
        "total_duration": 1_000_000,
        "prompt_eval_count": 12,
        "eval_count": 3,
    }


def anthropic_reply(
    content: list[dict[str, object]] | None = None, stop: str = "end_turn"
) -> dict[str, object]:
    # Shape of a Messages API answer, per Anthropic's API docs.
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": content if content is not None else [{"type": "text", "text": "Four."}],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 4},
    }


def anthropic_error(kind: str, message: str) -> dict[str, object]:
    return {"type": "error", "error": {"type": kind, "message": message}}


# --- Ollama ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_ollama_chat_wire_format_and_parse(
    api_server: FakeAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", api_server.hostport)  # no scheme, as users write it
    api_server.push(Canned(body=ollama_reply("4")))
    async with OllamaBackend("qwen2.5-coder:0.5b") as backend:
        response = await backend.complete(
            Request.of("2+2?", system="terse", max_tokens=9, temperature=0, stop=("\n",))
        )
    assert (response.text, response.input_tokens, response.output_tokens) == ("4", 12, 3)
    assert response.backend == "ollama:qwen2.5-coder:0.5b"
    seen = api_server.seen[0]
    assert (seen.method, seen.path) == ("POST", "/api/chat")
    assert seen.body["stream"] is False
    assert seen.body["messages"][0] == {"role": "system", "content": "terse"}
    assert seen.body["options"] == {"temperature": 0, "num_predict": 9, "stop": ["\n"]}


@pytest.mark.asyncio
async def test_ollama_schema_goes_in_format(api_server: FakeAPIServer) -> None:
    api_server.push(Canned(body=ollama_reply('{"n": 4}')))
    async with OllamaBackend("m", host=api_server.url) as backend:
        response = await backend.complete(Request.of("2+2", json_schema=SCHEMA))
    assert response.parsed == {"n": 4}
    assert api_server.seen[0].body["format"] == SCHEMA


@pytest.mark.parametrize(
    ("canned", "error"),
    [
        (Canned(401, {"error": "unauthorized"}), AuthenticationFailed),
        (Canned(429, {"error": "busy"}, {"Retry-After": "3"}), RateLimited),
        (Canned(500, {"error": "boom"}), BackendUnavailable),
        (Canned(404, {"error": "model 'm' not found"}), ModelNotFound),
        (Canned(400, {"error": "bad options"}), BackendError),
        (Canned(200, b"{not json"), BadResponse),
        (Canned(200, {"model": "m", "done": True}), BadResponse),
        (Canned(200, ollama_reply("half", done_reason="length")), TruncatedResponse),
    ],
)
@pytest.mark.asyncio
async def test_ollama_errors_are_typed(
    api_server: FakeAPIServer, canned: Canned, error: type[Exception]
) -> None:
    api_server.push(canned)
    async with OllamaBackend("m", host=api_server.url) as backend:
        with pytest.raises(error) as info:
            await backend.complete(Request.of("x"))
    assert getattr(info.value, "backend", None) == "ollama:m"
    if isinstance(info.value, RateLimited):
        assert info.value.retry_after == 3
    if isinstance(info.value, ModelNotFound):
        assert "ollama pull m" in str(info.value)


@pytest.mark.asyncio
async def test_ollama_timeout_and_unreachable(api_server: FakeAPIServer, closed_port: int) -> None:
    api_server.push(Canned(body=ollama_reply(), delay=0.5))
    async with OllamaBackend("m", host=api_server.url, timeout=0.1) as backend:
        with pytest.raises(BackendTimeout):
            await backend.complete(Request.of("x"))
    async with OllamaBackend("m", host=f"127.0.0.1:{closed_port}") as backend:
        with pytest.raises(BackendUnavailable, match="cannot reach"):
            await backend.complete(Request.of("x"))


@pytest.mark.asyncio
async def test_retry_over_real_http_honours_retry_after(api_server: FakeAPIServer) -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    api_server.push(
        Canned(429, {"error": "slow down"}, {"Retry-After": "2"}),
        Canned(503, {"error": "loading"}),
        Canned(body=ollama_reply("ok")),
    )
    inner = OllamaBackend("m", host=api_server.url)
    async with Retry(inner, sleep=fake_sleep, rng=random.Random(0), base_delay=0.5) as backend:
        assert (await backend.complete(Request.of("x"))).text == "ok"
    # retry 2 backs off base * 2 = 1 s, jittered into [0.5, 1]
    assert waits[0] == 2 and 0.5 <= waits[1] <= 1.0
    assert len(api_server.seen) == 3


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("", "http://127.0.0.1:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("example.org:8080", "http://example.org:8080"),
        ("https://ollama.example.org", "https://ollama.example.org:11434"),
        ("[::1]", "http://[::1]:11434"),
    ],
)
def test_ollama_host_normalisation(host: str, url: str) -> None:
    assert ollama_url(host) == url


# --- Anthropic -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_anthropic_messages_wire_format(api_server: FakeAPIServer) -> None:
    api_server.push(Canned(body=anthropic_reply()))
    backend = AnthropicBackend(
        "claude-3-5-haiku-latest", api_key="sk-test", base_url=api_server.url
    )
    async with backend:
        response = await backend.complete(
            Request.of("2+2?", system="terse", max_tokens=20, temperature=1.5, stop=("END",))
        )
    assert (response.text, response.input_tokens, response.output_tokens) == ("Four.", 20, 4)
    assert response.model == "claude-3-5-haiku-20241022"
    seen = api_server.seen[0]
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == "sk-test"
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.body["system"] == "terse"
    assert seen.body["messages"] == [{"role": "user", "content": "2+2?"}]
    assert seen.body["temperature"] == 1.0  # clamped to Anthropic's range
    assert seen.body["stop_sequences"] == ["END"]
    assert seen.body["max_tokens"] == 20


@pytest.mark.asyncio
async def test_anthropic_schema_uses_a_forced_tool(api_server: FakeAPIServer) -> None:
    api_server.push(
        Canned(
            body=anthropic_reply(
                [{"type": "tool_use", "id": "t1", "name": "reply", "input": {"n": 4}}], "tool_use"
            )
        )
    )
    async with AnthropicBackend("c", api_key="k", base_url=api_server.url) as backend:
        response = await backend.complete(Request.of("2+2", json_schema=SCHEMA))
    assert response.parsed == {"n": 4}
    body = api_server.seen[0].body
    assert body["tools"][0]["input_schema"] == SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": "reply"}


@pytest.mark.parametrize(
    ("canned", "error"),
    [
        (
            Canned(401, anthropic_error("authentication_error", "invalid x-api-key")),
            AuthenticationFailed,
        ),
        (
            Canned(429, anthropic_error("rate_limit_error", "slow"), {"retry-after": "11"}),
            RateLimited,
        ),
        (Canned(500, anthropic_error("api_error", "internal")), BackendUnavailable),
        (Canned(529, anthropic_error("overloaded_error", "overloaded")), BackendUnavailable),
        (Canned(200, b"<html>proxy error</html>"), BadResponse),
        (Canned(200, {"type": "message", "content": "not a list"}), BadResponse),
        (Canned(200, anthropic_reply(stop="max_tokens")), TruncatedResponse),
    ],
)
@pytest.mark.asyncio
async def test_anthropic_errors_are_typed(
    api_server: FakeAPIServer, canned: Canned, error: type[Exception]
) -> None:
    api_server.push(canned)
    async with AnthropicBackend("c", api_key="k", base_url=api_server.url) as backend:
        with pytest.raises(error) as info:
            await backend.complete(Request.of("x"))
    if isinstance(info.value, RateLimited):
        assert info.value.retry_after == 11
    if error is AuthenticationFailed:
        assert "invalid x-api-key" in str(info.value)


@pytest.mark.asyncio
async def test_anthropic_timeout_and_missing_key(
    api_server: FakeAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    api_server.push(Canned(body=anthropic_reply(), delay=0.5))
    async with AnthropicBackend("c", api_key="k", base_url=api_server.url, timeout=0.1) as b:
        with pytest.raises(BackendTimeout):
            await b.complete(Request.of("x"))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    async with AnthropicBackend("c", base_url=api_server.url) as b:
        with pytest.raises(AuthenticationFailed, match="ANTHROPIC_API_KEY"):
            await b.complete(Request.of("x"))
    assert len(api_server.seen) == 1  # the keyless call never went out


# --- OpenAI-compatible (wire errors; the happy path runs against the real model) -------


@pytest.mark.parametrize(
    ("canned", "error"),
    [
        (
            Canned(
                401, {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}}
            ),
            AuthenticationFailed,
        ),
        (
            Canned(429, {"error": {"message": "Rate limit"}}, {"retry-after-ms": "1500"}),
            RateLimited,
        ),
        (Canned(502, b"bad gateway"), BackendUnavailable),
        (Canned(200, {"choices": []}), BadResponse),
        (Canned(200, {"choices": [{"message": {"content": 5}}]}), BadResponse),
    ],
)
@pytest.mark.asyncio
async def test_openai_errors_are_typed(
    api_server: FakeAPIServer, canned: Canned, error: type[Exception]
) -> None:
    api_server.push(canned)
    async with OpenAIBackend("m", base_url=api_server.url, api_key="k") as backend:
        with pytest.raises(error) as info:
            await backend.complete(Request.of("x"))
    if isinstance(info.value, RateLimited):
        assert info.value.retry_after == 1.5
    assert api_server.seen[0].path == "/chat/completions"
    assert api_server.seen[0].headers["authorization"] == "Bearer k"


@pytest.mark.asyncio
async def test_hosted_openai_compatible_apis_need_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    async with create_openrouter("meta-llama/llama-3-8b") as backend:
        with pytest.raises(AuthenticationFailed, match="OPENROUTER_API_KEY"):
            await backend.complete(Request.of("x"))


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "5"}) == 5
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({}) is None
    assert parse_retry_after({"Retry-After": "soon"}) is None
    date = "Wed, 21 Oct 2015 07:28:10 GMT"
    assert parse_retry_after({"Retry-After": date}, now=1445412480.0) == 10


# --- streaming -------------------------------------------------------------------------


async def _collect(stream: Any) -> list[str]:
    return [piece async for piece in stream]


@pytest.mark.asyncio
async def test_ollama_streams_ndjson(api_server: FakeAPIServer) -> None:
    lines = [
        {"model": "m", "message": {"role": "assistant", "content": "Hel"}, "done": False},
        {"model": "m", "message": {"role": "assistant", "content": "lo"}, "done": False},
        {
            "model": "m",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "eval_count": 2,
        },
    ]
    api_server.push(Canned(body="\n".join(json.dumps(x) for x in lines) + "\n"))
    async with OllamaBackend("m", host=api_server.url) as backend:
        assert await _collect(backend.stream(Request.of("hi"))) == ["Hel", "lo"]
    assert api_server.seen[0].body["stream"] is True
    truncated = dict(lines[2], done_reason="length")
    api_server.push(Canned(body=json.dumps(lines[0]) + "\n" + json.dumps(truncated) + "\n"))
    async with OllamaBackend("m", host=api_server.url) as backend:
        with pytest.raises(TruncatedResponse) as info:
            await _collect(backend.stream(Request.of("hi")))
    assert info.value.partial == "Hel"


@pytest.mark.asyncio
async def test_openai_streams_server_sent_events(api_server: FakeAPIServer) -> None:
    def event(content: str | None, finish: str | None = None) -> str:
        delta = {} if content is None else {"content": content}
        chunk = {
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk)}\n\n"

    sse = ": keep-alive\n\n" + event("4") + event(".") + event(None, "stop") + "data: [DONE]\n\n"
    api_server.push(Canned(body=sse, headers={"x-accel-buffering": "no"}))
    async with OpenAIBackend("m", base_url=api_server.url) as backend:
        assert await _collect(backend.stream(Request.of("2+2"))) == ["4", "."]
    api_server.push(Canned(body="data: {not json\n\n"))
    async with OpenAIBackend("m", base_url=api_server.url) as backend:
        with pytest.raises(BadResponse, match="malformed stream line"):
            await _collect(backend.stream(Request.of("2+2")))
    api_server.push(Canned(429, {"error": {"message": "slow"}}, {"retry-after": "4"}))
    async with OpenAIBackend("m", base_url=api_server.url) as backend:
        with pytest.raises(RateLimited) as info:
            await _collect(backend.stream(Request.of("2+2")))
    assert info.value.retry_after == 4
