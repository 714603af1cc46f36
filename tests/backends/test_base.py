"""Request/Response values and the shared truncation and schema rules."""

from __future__ import annotations

import pytest

from smesh.backends.base import (
    Message,
    Request,
    Response,
    TruncatedResponse,
    check_schema,
    estimate_tokens,
    finish_response,
)
from smesh.errors import BadResponse, UsageError

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}, "why": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


def _finish(request: Request, text: str, finish: str = "stop") -> Response:
    return finish_response(
        request,
        text=text,
        model="m",
        backend="b",
        input_tokens=3,
        output_tokens=4,
        latency_s=0.5,
        finish_reason=finish,
    )


def test_request_of_puts_system_first_in_chat_messages() -> None:
    request = Request.of("hi", system="be brief", max_tokens=8)
    assert request.chat_messages() == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"messages": ()},
        {"temperature": -0.1},
        {"temperature": 3},
        {"max_tokens": 0},
        {"max_tokens": 1.5},
        {"max_tokens": True},
        {"json_schema": "not a dict"},
    ],
)
def test_request_rejects_bad_values(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"messages": (Message(role="user", content="x"),)}
    base.update(kwargs)
    with pytest.raises(UsageError):
        Request(**base)  # type: ignore[arg-type]


def test_message_rejects_unknown_role() -> None:
    with pytest.raises(UsageError, match="role"):
        Message(role="robot", content="x")  # type: ignore[arg-type]


def test_request_is_frozen() -> None:
    request = Request.of("hi")
    with pytest.raises(AttributeError):
        request.max_tokens = 3  # type: ignore[misc]


def test_truncated_reply_raises_with_the_partial_text() -> None:
    with pytest.raises(TruncatedResponse) as info:
        _finish(Request.of("hi", max_tokens=4), "half an ans", finish="length")
    assert info.value.partial == "half an ans"
    assert info.value.max_tokens == 4
    assert isinstance(info.value, BadResponse)
    assert info.value.backend == "b"


def test_truncation_may_be_allowed_without_a_schema_only() -> None:
    ok = _finish(Request.of("hi", allow_truncated=True), "partial", finish="length")
    assert ok.finish_reason == "length"
    with pytest.raises(TruncatedResponse):
        _finish(Request.of("hi", allow_truncated=True, json_schema=SCHEMA), '{"a', "length")


def test_schema_reply_is_parsed() -> None:
    response = _finish(Request.of("q", json_schema=SCHEMA), '{"answer": 4, "why": "math"}')
    assert response.parsed == {"answer": 4, "why": "math"}
    assert response.tokens_per_s == pytest.approx(8.0)


@pytest.mark.parametrize(
    "text",
    ["not json", '{"why": "no answer"}', '{"answer": "four"}', '{"answer": 4, "extra": 1}', "[]"],
)
def test_schema_violations_are_bad_responses(text: str) -> None:
    with pytest.raises(BadResponse):
        _finish(Request.of("q", json_schema=SCHEMA), text)


@pytest.mark.parametrize(
    ("value", "schema", "ok"),
    [
        (True, {"type": "integer"}, False),
        (3, {"type": "number", "minimum": 4}, False),
        (3.5, {"type": "number", "maximum": 4}, True),
        ("ab", {"type": "string", "minLength": 3}, False),
        ([1, 2], {"type": "array", "items": {"type": "integer"}, "maxItems": 2}, True),
        ([1, "x"], {"type": "array", "items": {"type": "integer"}}, False),
        ("b", {"enum": ["a", "c"]}, False),
        (None, {"type": ["string", "null"]}, True),
        ({"a": {"b": 1}}, {"properties": {"a": {"properties": {"b": {"type": "string"}}}}}, False),
    ],
)
def test_check_schema_subset(value: object, schema: dict[str, object], ok: bool) -> None:
    assert (check_schema(value, schema) is None) is ok


def test_estimate_tokens_is_about_four_chars() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
