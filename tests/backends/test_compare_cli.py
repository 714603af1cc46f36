"""``smesh compare`` on doubles and on unavailable backends."""

from __future__ import annotations

import json
from typing import Any

import pytest

from smesh.backends import Request
from smesh.backends import registry as registry_module
from smesh.cli import main
from smesh.errors import BackendTimeout, BackendUnavailable
from smesh.testing import FunctionBackend

KEYS = {
    "backend",
    "model",
    "prompt_id",
    "ok",
    "latency_s",
    "input_tokens",
    "output_tokens",
    "tokens_per_s",
    "error",
}


@pytest.fixture
def fake_kinds(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    monkeypatch.setattr(registry_module, "_registered", {})
    asked: dict[str, list[str]] = {"good": [], "down": [], "flaky": []}

    def good(model: str | None = None, **options: Any) -> FunctionBackend:
        def answer(request: Request) -> str:
            asked["good"].append(request.messages[-1].content)
            return f"answer to {request.messages[-1].content}"

        return FunctionBackend(answer, name=f"good:{model}", model=model or "good")

    def down(model: str | None = None, **options: Any) -> FunctionBackend:
        def refuse(request: Request) -> str:
            asked["down"].append(request.messages[-1].content)
            raise BackendUnavailable("connection refused", backend="down")

        return FunctionBackend(refuse, name=f"down:{model}")

    def flaky(model: str | None = None, **options: Any) -> FunctionBackend:
        def sometimes(request: Request) -> str:
            asked["flaky"].append(request.messages[-1].content)
            if "2+2" in request.messages[-1].content:
                raise BackendTimeout("too slow", backend="flaky")
            return "fine"

        return FunctionBackend(sometimes, name=f"flaky:{model}")

    registry_module.register_backend("good", good)
    registry_module.register_backend("down", down)
    registry_module.register_backend("flaky", flaky)
    return asked


def run_json(
    capsys: pytest.CaptureFixture[str], *args: str, exit_code: int = 0
) -> list[dict[str, Any]]:
    code = main(["compare", "--json", *args])
    out = capsys.readouterr().out
    assert code == exit_code
    results: list[dict[str, Any]] = json.loads(out)["results"]
    return results


def test_compare_json_contract_and_unavailable_backends(
    fake_kinds: dict[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    # a backend that never answered (or a prompt that got no answer): exit 1 (issue 11)
    results = run_json(capsys, "--backends", "good:m1,down:x,nosuch:y,flaky:z", exit_code=1)
    assert all(set(r) == KEYS for r in results)
    by = {(r["backend"], r["prompt_id"]): r for r in results}
    assert len(results) == 12  # 4 backends x 3 default prompts
    ok = by[("good:m1", "arithmetic")]
    assert ok["ok"] and ok["error"] is None and ok["model"] == "m1"
    assert ok["output_tokens"] > 0 and ok["input_tokens"] > 0
    assert ok["tokens_per_s"] >= 0 and ok["latency_s"] >= 0
    assert len(fake_kinds["good"]) == 3
    assert "2+2" in fake_kinds["good"][2]
    # an unreachable backend is asked once, then reported for every prompt
    assert fake_kinds["down"] == [fake_kinds["good"][0]]
    assert all(not by[("down:x", p)]["ok"] for p in ("function", "explain", "arithmetic"))
    assert "connection refused" in by[("down:x", "explain")]["error"]
    assert "unknown backend 'nosuch'" in by[("nosuch:y", "function")]["error"]
    # a per-call failure only fails that prompt
    assert by[("flaky:z", "function")]["ok"] and not by[("flaky:z", "arithmetic")]["ok"]
    assert by[("flaky:z", "arithmetic")]["latency_s"] is None


def test_compare_custom_prompt_and_table(
    fake_kinds: dict[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    results = run_json(capsys, "--backends", "good:m", "--prompt", "hello there")
    assert [(r["prompt_id"], r["ok"]) for r in results] == [("custom", True)]
    assert fake_kinds["good"] == ["hello there"]
    assert main(["compare", "--backends", "good:m,down:x"]) == 1  # down:x never answered
    table = capsys.readouterr().out
    assert "answer to" in table and "connection refused" in table and "tok/s" in table
