"""``@tool``: name, description, schema from type hints, validation before the call."""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated, Any, Literal

import msgspec
import pytest

from smesh.backends.base import check_schema
from smesh.errors import ToolError, UsageError
from smesh.tools import CallContext, FunctionTool, Reconciled, Tool, ToolSpec, tool

pytestmark = pytest.mark.asyncio
CTX = CallContext(call_id="c1", step=1)


class Point(msgspec.Struct):
    x: int
    y: int = 0


@tool
def describe(
    name: str,
    count: Annotated[int, msgspec.Meta(ge=1, le=10)] = 1,
    mode: Literal["short", "long"] = "short",
    tags: list[str] = ["a"],  # noqa: B006 - checks that defaults are not shared
    where: Point | None = None,
) -> dict[str, Any]:
    """Describe something.

    More detail, wrapped
    over two lines.

    Args:
        name: what to describe.
        count (int): how many times; wraps
            onto a second line.
        mode: how much to say.
        tags: labels.

    Returns:
        a dict.
    """
    tags.append(name)
    return {"name": name, "count": count, "mode": mode, "tags": tags, "where": where}


async def test_name_description_and_schema_come_from_the_function() -> None:
    assert describe.name == "describe"
    assert describe.description == "Describe something.\n\nMore detail, wrapped over two lines."
    schema = describe.parameters
    assert schema["type"] == "object"
    assert schema["required"] == ["name"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["name"] == {"type": "string", "description": "what to describe."}
    assert props["count"]["minimum"] == 1 and props["count"]["maximum"] == 10
    assert props["count"]["description"] == "how many times; wraps onto a second line."
    assert sorted(props["mode"]["enum"]) == ["long", "short"]
    assert "description" not in props["where"]  # undocumented: no description invented
    assert "Point" in schema["$defs"]  # nested types keep their definitions
    assert "title" not in schema
    assert describe.spec() == ToolSpec(
        name="describe", description=describe.description, parameters=schema
    )


async def test_the_schema_is_valid_json_schema_and_agrees_with_validation() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(describe.parameters)
    validator = jsonschema.Draft202012Validator(describe.parameters)
    good = {"name": "x", "count": 3, "where": {"x": 1}}
    bad = [
        {"count": 3},
        {"name": "x", "count": 11},
        {"name": "x", "mode": "huge"},
        {"name": 1},
        {"name": "x", "extra": True},
    ]
    assert validator.is_valid(good)
    describe.validate(good)
    for args in bad:
        assert not validator.is_valid(args), args
        with pytest.raises(ToolError, match="invalid arguments for describe"):
            describe.validate(args)


async def test_validation_converts_arguments_to_their_types() -> None:
    args = describe.validate({"name": "x", "count": "2", "where": {"x": 5}})
    assert args["count"] == 2
    assert args["where"] == Point(x=5)
    out = await describe.invoke(args, CTX)
    assert out["where"] == Point(x=5, y=0)


async def test_mutable_defaults_are_not_shared_between_calls() -> None:
    first = await describe.invoke(describe.validate({"name": "one"}), CTX)
    second = await describe.invoke(describe.validate({"name": "two"}), CTX)
    assert first["tags"] == ["a", "one"]
    assert second["tags"] == ["a", "two"]


async def test_sync_tools_run_in_a_worker_thread_and_async_ones_on_the_loop() -> None:
    threads: list[int] = []

    @tool
    def sync_tool() -> int:
        threads.append(threading.get_ident())
        return 1

    @tool
    async def async_tool() -> int:
        threads.append(threading.get_ident())
        return 2

    assert await sync_tool.invoke({}, CTX) == 1
    assert await async_tool.invoke({}, CTX) == 2
    assert threads[0] != threading.get_ident()
    assert threads[1] == threading.get_ident()


async def test_a_call_context_parameter_is_injected_and_hidden_from_the_model() -> None:
    @tool(side_effect=True, timeout_s=3, concurrent=False, name="pay")
    async def charge(amount: int, ctx: CallContext) -> str:
        return f"{amount}:{ctx.effect_id}"

    assert charge.name == "pay"
    assert charge.side_effect and not charge.concurrent and charge.timeout_s == 3
    assert list(charge.parameters["properties"]) == ["amount"]
    ctx = CallContext(call_id="c", step=2, effect_id="e1")
    assert await charge.invoke(charge.validate({"amount": 5}), ctx) == "5:e1"
    with pytest.raises(ToolError):
        charge.validate({"amount": 5, "ctx": {}})


async def test_the_function_stays_callable_as_plain_python() -> None:
    assert describe("z")["name"] == "z"
    assert describe.__wrapped__.__name__ == "describe"


async def test_reconciler_registration() -> None:
    @tool(side_effect=True)
    def send(to: str) -> str:
        return to

    assert await send.reconcile({"to": "a"}) is None

    @send.reconciler
    async def sent(to: str) -> Reconciled | None:
        return Reconciled(performed=to == "a", result="was sent")

    assert await send.reconcile({"to": "a"}) == Reconciled(True, "was sent")
    assert await send.reconcile({"to": "b"}) == Reconciled(False, "was sent")


@pytest.mark.parametrize(
    "make",
    [
        lambda: tool(lambda *args: 1),
        lambda: tool(lambda **kw: 1),
        lambda: tool(name="bad name!")(lambda: 1),
        lambda: tool(name="")(lambda: 1),
        lambda: tool(timeout_s=0)(lambda: 1),
        lambda: FunctionTool(42),  # type: ignore[arg-type]
    ],
)
async def test_tools_that_cannot_be_described_are_refused(make: Any) -> None:
    with pytest.raises(UsageError):
        make()


class Opaque:
    pass


async def test_unschematizable_hints_are_a_usage_error() -> None:
    def uses(thing: Opaque) -> None:
        return None

    with pytest.raises(UsageError, match="no JSON schema"):
        tool(uses)


class Clock(Tool):
    name = "now"
    description = "the time"

    async def invoke(self, args: dict[str, Any], ctx: CallContext) -> Any:
        return "12:00"


async def test_a_tool_subclass_needs_only_invoke() -> None:
    clock = Clock()
    assert clock.spec().parameters == {"type": "object", "properties": {}}
    assert clock.validate({}) == {}
    assert await clock.invoke({}, CTX) == "12:00"
    assert await clock.reconcile({}) is None
    assert "now" in repr(clock)


async def test_the_default_validation_uses_the_declared_schema() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    clock = Clock(parameters=schema)
    assert clock.validate({"n": 1}) == {"n": 1}
    with pytest.raises(ToolError, match="missing required property 'n'"):
        clock.validate({})
    assert check_schema({"n": "x"}, schema) is not None
    with pytest.raises(UsageError):
        Clock(parameters={"type": "array"})


async def test_a_non_concurrent_tool_has_one_lock() -> None:
    clock = Clock()
    assert clock.lock is clock.lock
    async with clock.lock:
        assert clock.lock.locked()
    await asyncio.sleep(0)


class Forgetful(Tool):
    name = "forgetful"

    def __init__(self) -> None:  # does not call super().__init__()
        self.calls = 0

    async def invoke(self, args: dict[str, Any], ctx: CallContext) -> Any:
        self.calls += 1
        return self.calls


async def test_a_subclass_that_skips_init_still_works() -> None:
    forgetful = Forgetful()
    assert forgetful.lock is forgetful.lock
    assert forgetful.spec().name == "forgetful"
