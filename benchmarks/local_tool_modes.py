"""Which tool-calling strategy is more reliable on the embedded model: native or json?

    nice -n 5 python benchmarks/local_tool_modes.py [--configs native:1,json:1,...] [--json OUT]

A config is ``MODE:ROUNDS``: ``LocalBackend(tool_mode=MODE, tool_rounds=ROUNDS)`` (``none``:
no limit on rounds of calls before the model must answer).

A fixed probe set, four tools (``add``, ``multiply``, ``get_capital``, ``get_weather``):

* 20 prompts that need a tool: a call counts as correct when the reply's first call has
  the expected name and arguments (numbers equal, either order for the commutative two;
  text equal ignoring case);
* 10 prompts that need none: correct when the reply calls nothing and its text is a
  non-empty answer (not a call written out as JSON);
* 10 follow-ups: the conversation already holds the right call and its result; correct
  when the model answers without calling again and the answer contains the result (what
  ends a tool loop);
* the whole loop: each of the 30 prompts run through ``smesh.tools.ToolLoop`` (max 3
  steps) with real Python tools; a tool prompt succeeds when the final answer contains the
  expected result, a no-tool prompt when it ends with an answer and no call at all.

Each request goes through ``LocalBackend.complete`` exactly as an agent's would
(temperature 0, ``max_tokens`` 128, tool_choice ``auto``). For ``native`` the script also
counts how many calls llama.cpp itself parsed into ``tool_calls`` (the rest were read from
the reply text). A BadResponse or TruncatedResponse counts as a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from smesh.backends.base import Message, Request, Response  # noqa: E402
from smesh.backends.local import LocalBackend  # noqa: E402
from smesh.backends.openai import chat_body  # noqa: E402
from smesh.backends.toolcalls import AssistantTurn, ToolCall, ToolResult, ToolSpec  # noqa: E402
from smesh.errors import BackendError, ToolError  # noqa: E402
from smesh.tools import ToolLoop, tool  # noqa: E402


def _spec(name: str, description: str, **params: str) -> ToolSpec:
    return ToolSpec(
        name=name,
        description=description,
        parameters={
            "type": "object",
            "properties": {k: {"type": v} for k, v in params.items()},
            "required": list(params),
            "additionalProperties": False,
        },
    )


TOOLS = (
    _spec("add", "Add two integers and return their sum.", a="integer", b="integer"),
    _spec("multiply", "Multiply two integers and return their product.", a="integer", b="integer"),
    _spec("get_capital", "Look up the capital city of a country.", country="string"),
    _spec("get_weather", "Get the current weather for a city.", city="string"),
)

#: (prompt, tool, arguments, the tool's result for the follow-up)
NEEDS_TOOL: list[tuple[str, str, dict[str, Any], str]] = [
    ("What is 1234 plus 4321?", "add", {"a": 1234, "b": 4321}, "5555"),
    ("Add 17 and 25.", "add", {"a": 17, "b": 25}, "42"),
    ("What is the sum of 908 and 77?", "add", {"a": 908, "b": 77}, "985"),
    ("Compute 56 + 390.", "add", {"a": 56, "b": 390}, "446"),
    ("How much is 2048 plus 512?", "add", {"a": 2048, "b": 512}, "2560"),
    ("What is 37 times 41?", "multiply", {"a": 37, "b": 41}, "1517"),
    ("Multiply 12 by 13.", "multiply", {"a": 12, "b": 13}, "156"),
    ("What is the product of 250 and 4?", "multiply", {"a": 250, "b": 4}, "1000"),
    ("Compute 99 * 101.", "multiply", {"a": 99, "b": 101}, "9999"),
    ("How much is 15 multiplied by 16?", "multiply", {"a": 15, "b": 16}, "240"),
    ("What is the capital of Peru?", "get_capital", {"country": "Peru"}, "Lima"),
    ("Which city is the capital of Kenya?", "get_capital", {"country": "Kenya"}, "Nairobi"),
    ("Look up the capital of Norway.", "get_capital", {"country": "Norway"}, "Oslo"),
    ("Tell me the capital city of Vietnam.", "get_capital", {"country": "Vietnam"}, "Hanoi"),
    ("What's the capital of Chile?", "get_capital", {"country": "Chile"}, "Santiago"),
    ("What is the weather in Oslo right now?", "get_weather", {"city": "Oslo"}, "rain, 7 C"),
    ("Is it raining in Lima today?", "get_weather", {"city": "Lima"}, "cloudy, 19 C"),
    ("Get the current weather for Nairobi.", "get_weather", {"city": "Nairobi"}, "sunny, 24 C"),
    ("How hot is it in Cairo at the moment?", "get_weather", {"city": "Cairo"}, "clear, 31 C"),
    ("What's the weather like in Hanoi?", "get_weather", {"city": "Hanoi"}, "humid, 29 C"),
]

NO_TOOL = [
    "Say hello in French.",
    "Write a Python function that reverses a string.",
    "What does HTTP stand for?",
    "Name a primary colour.",
    "Translate 'thank you' into Spanish.",
    "What is a Python list comprehension? Answer in one sentence.",
    "Give me a synonym for 'happy'.",
    "Write a haiku about the sea.",
    "What programming language is Django written in?",
    "Explain recursion in one sentence.",
]

#: the follow-ups reuse these NEEDS_TOOL entries (two of each tool, plus two more)
FOLLOW_UPS = [0, 1, 5, 6, 10, 11, 15, 16, 2, 12]

_CAPITALS = {"peru": "Lima", "kenya": "Nairobi", "norway": "Oslo", "vietnam": "Hanoi"}
_CAPITALS["chile"] = "Santiago"
_WEATHER = {e[2].get("city", "").lower(): e[3] for e in NEEDS_TOOL if e[1] == "get_weather"}


@tool
def add(a: int, b: int) -> int:
    """Add two integers and return their sum."""
    return a + b


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers and return their product."""
    return a * b


@tool
def get_capital(country: str) -> str:
    """Look up the capital city of a country."""
    try:
        return _CAPITALS[country.strip().lower()]
    except KeyError:
        raise ToolError(f"no capital known for {country!r}") from None


@tool
def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    try:
        return _WEATHER[city.strip().lower()]
    except KeyError:
        raise ToolError(f"no weather known for {city!r}") from None


LOOP = ToolLoop([add, multiply, get_capital, get_weather], max_steps=3)


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, str):
        return isinstance(got, str) and got.strip().lower() == want.lower()
    return isinstance(got, int | float) and not isinstance(got, bool) and got == want


def call_is_right(call: ToolCall, tool: str, args: dict[str, Any]) -> bool:
    """Right name and arguments (the arithmetic tools' two operands in either order)."""
    got = call.arguments
    if call.name != tool or not isinstance(got, dict) or set(got) != set(args):
        return False
    if all(_same(got[k], v) for k, v in args.items()):
        return True
    swapped = {"a": args.get("b"), "b": args.get("a")}
    return tool in {"add", "multiply"} and all(_same(got[k], v) for k, v in swapped.items())


def looks_like_a_call(text: str) -> bool:
    """A reply whose text is a tool call written out (not an answer)."""
    stripped = text.strip().removeprefix("```json").removeprefix("```").removesuffix("```")
    try:
        value = json.loads(stripped)
    except ValueError:
        return "<tool_call>" in text
    return isinstance(value, dict) and "name" in value and "arguments" in value


async def ask(
    backend: LocalBackend, request: Request, mode: str, stats: dict[str, Any]
) -> Response | None:
    started = time.perf_counter()
    try:
        if mode.startswith("native") and request.messages[-1].role != "tool":
            # what complete() does for a first turn, keeping the raw reply (who parsed it?)
            data = await backend.raw_chat(chat_body(request, backend.model))
            from smesh.backends.local_tools import native_tool_response

            response = native_tool_response(
                data, request, backend=backend.name, model=backend.model, latency_s=0.0
            )
            if data["choices"][0]["message"].get("tool_calls"):
                stats["server_parsed"] += 1
        else:
            response = await backend.complete(request)
    except BackendError as exc:
        stats["errors"].append(f"{type(exc).__name__}: {str(exc)[:120]}")
        response = None
    stats["latency"].append(time.perf_counter() - started)
    return response


async def loop_figures(backend: LocalBackend, verbose: bool) -> tuple[int, int, float]:
    """(tool prompts answered right, no-tool prompts answered without a call, mean steps)."""

    async def model(turns: Any, specs: Any) -> AssistantTurn:
        request = Request(
            messages=tuple(turns), tools=tuple(specs), temperature=0.0, max_tokens=128
        )
        return (await backend.complete(request)).turn()

    right = plain = 0
    steps: list[int] = []
    cases = [(p, r) for p, _, _, r in NEEDS_TOOL] + [(p, None) for p in NO_TOOL]
    for prompt, expected in cases:
        try:
            result = await LOOP.run(model, prompt)
        except BackendError as exc:
            if verbose:
                print(f"  [loop] {prompt!r} -> {type(exc).__name__}")
            continue
        steps.append(result.steps)
        text = (result.text or "").lower()
        if expected is not None:
            right += bool(result.ok and expected.lower() in text and result.calls)
        else:
            plain += bool(result.ok and text.strip() and not result.calls)
        if verbose:
            calls = [(c.tool, c.args, c.status) for c in result.calls]
            print(f"  [loop] {prompt!r} -> {calls} {result.text!r}")
    return right, plain, statistics.mean(steps) if steps else 0.0


async def run_mode(backend: LocalBackend, mode: str, verbose: bool) -> dict[str, Any]:
    stats: dict[str, Any] = {"server_parsed": 0, "errors": [], "latency": []}
    base = {"tools": TOOLS, "temperature": 0.0, "max_tokens": 128}
    right = wrong = missed = 0
    for prompt, name, args, _ in NEEDS_TOOL:
        response = await ask(backend, Request.of(prompt, **base), mode, stats)
        calls = response.tool_calls if response else ()
        if calls and call_is_right(calls[0], name, args):
            right += 1
        elif calls:
            wrong += 1
        else:
            missed += 1
        if verbose:
            print(f"  [{mode}] {prompt!r} -> {calls or (response.text if response else None)!r}")
    plain = 0
    for prompt in NO_TOOL:
        response = await ask(backend, Request.of(prompt, **base), mode, stats)
        ok = bool(
            response
            and not response.tool_calls
            and response.text.strip()
            and not looks_like_a_call(response.text)
        )
        plain += ok
        if verbose:
            print(f"  [{mode}] {prompt!r} -> {response.turn() if response else None!r}")
    answered = 0
    for index in FOLLOW_UPS:
        prompt, name, args, result = NEEDS_TOOL[index]
        call = ToolCall(id="call_1_0", name=name, arguments=args)
        messages = (
            Message(role="user", content=prompt),
            AssistantTurn(tool_calls=(call,)),
            ToolResult(call_id=call.id, name=name, content=result),
        )
        response = await ask(backend, Request(messages=messages, **base), mode, stats)
        ok = bool(response and not response.tool_calls and result.lower() in response.text.lower())
        answered += ok
        if verbose:
            print(f"  [{mode}] follow-up {prompt!r} -> {response.turn() if response else None!r}")
    loop_right, loop_plain, loop_steps = await loop_figures(backend, verbose)
    return {
        "mode": mode,
        "tool_prompts": len(NEEDS_TOOL),
        "correct_calls": right,
        "wrong_calls": wrong,
        "no_call": missed,
        "server_parsed_calls": stats["server_parsed"] if mode.startswith("native") else None,
        "no_tool_prompts": len(NO_TOOL),
        "correct_no_call": plain,
        "follow_ups": len(FOLLOW_UPS),
        "follow_ups_answered": answered,
        "loop_tool_answers": loop_right,
        "loop_no_tool_answers": loop_plain,
        "loop_mean_steps": round(loop_steps, 2),
        "errors": stats["errors"],
        "median_latency_s": round(statistics.median(stats["latency"]), 2),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| mode | correct calls (of 20) | wrong call | no call | no-tool answers (of 10) "
        "| follow-ups answered (of 10) | loop: tool prompts answered right (of 20) "
        "| loop: no-tool prompts answered, no call (of 10) | errors | median s/request |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        parsed = (
            f" ({r['server_parsed_calls']} parsed by llama.cpp)"
            if r["server_parsed_calls"] is not None
            else ""
        )
        lines.append(
            f"| {r['mode']} | {r['correct_calls']}{parsed} | {r['wrong_calls']} | {r['no_call']} "
            f"| {r['correct_no_call']} | {r['follow_ups_answered']} | {r['loop_tool_answers']} "
            f"| {r['loop_no_tool_answers']} | {len(r['errors'])} "
            f"| {r['median_latency_s']} |"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="native:1,json:1,native:none,json:none")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("-v", "--verbose", action="store_true")
    options = parser.parse_args()
    rows = []
    async with LocalBackend(n_parallel=1, ctx_per_slot=2048, n_threads=options.threads) as model:
        await model.start()
        for config in options.configs.split(","):
            mode, _, rounds = config.partition(":")
            model.tool_mode = mode  # type: ignore[assignment]
            model.tool_rounds = None if rounds in {"", "none"} else int(rounds)
            rows.append(await run_mode(model, config, options.verbose))
            print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
    if options.json:
        options.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
