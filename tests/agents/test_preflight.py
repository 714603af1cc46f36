"""Preflight (issue 11): a set-up that cannot work is refused before any model loads or any
call is made, by ``Team`` itself (a ``ConfigurationError``, so library users get it too):
a task no agent can claim, a verification no verifier can satisfy, a backend that does not
answer its probe (real HTTP on 127.0.0.1), an output path that cannot be written."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from smesh import ConfigurationError, UsageError
from smesh.agents import (
    Agent,
    FunctionAgent,
    Judgement,
    Settings,
    TaskSpec,
    Team,
    VerifySpec,
)
from smesh.agents.preflight import check_output_dir, check_output_file, probe_backend
from smesh.backends import Retry, Timeout
from smesh.backends.anthropic import AnthropicBackend
from smesh.backends.ollama import OllamaBackend
from smesh.backends.openai import OpenAIBackend
from smesh.errors import BackendUnavailable
from smesh.testing import FunctionBackend


def _llm(calls: list[object]) -> FunctionBackend:
    def answer(request: object) -> str:
        calls.append(request)
        return "ok"

    return FunctionBackend(answer)


async def _approve(task: TaskSpec, output: Any) -> Judgement:
    return Judgement("approve", "fine")


def _run(team: Team, tasks: list[TaskSpec]) -> Any:
    return asyncio.run(asyncio.wait_for(team.run(tasks), timeout=30))


# -- tasks -------------------------------------------------------------------------------------


def test_a_skill_no_agent_has_is_refused_at_once_with_the_likely_typo() -> None:
    calls: list[object] = []
    team = Team([Agent("coder", backend=_llm(calls), skills={"code": 0.9})])
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match=r"skill 'Code'.*did you mean 'code'\?"):
        _run(team, [TaskSpec(task_id="t1", skill="Code")])
    assert time.monotonic() - started < 5  # not the 600 s idle timeout
    assert calls == [] and len(team.field) == 0  # nothing was asked, nothing was posted
    assert issubclass(ConfigurationError, UsageError)


def test_a_verification_nobody_can_give_is_refused() -> None:
    worker = Agent("w", backend=_llm([]), skills={"s": 0.9}, verifies={"s": 0.9})
    reviewed = TaskSpec(task_id="t", skill="s", verify=VerifySpec(quorum=0.9))
    with pytest.raises(ConfigurationError, match="no agent verifies 's'"):
        _run(Team([Agent("w", backend=_llm([]), skills={"s": 0.9})]), [reviewed])
    # the only verifier is the only worker: nobody judges their own result
    with pytest.raises(ConfigurationError, match=r"vote mass of 0\.9"):
        _run(Team([worker]), [reviewed])
    # one other voter weighs at most 1: a quorum of 1.5 can never be reached
    other = FunctionAgent("v", judge=_approve, verifies={"s": 1.0})
    hard = TaskSpec(task_id="t", skill="s", verify=VerifySpec(quorum=1.5))
    with pytest.raises(ConfigurationError, match=r"vote mass of 1\.5"):
        _run(Team([worker, other]), [hard])


def test_a_team_that_can_verify_runs() -> None:
    worker = Agent("w", backend=_llm([]), skills={"s": 0.9})
    checker = FunctionAgent("c", judge=_approve, verifies={"s": 1.0}, authoritative=True)
    reviewed = TaskSpec(task_id="t", skill="s", verify=VerifySpec(quorum=0.9))
    report = _run(Team([worker, checker]), [reviewed])
    assert [t.status for t in report.tasks] == ["accepted"]


def test_a_field_shared_with_other_processes_skips_the_task_checks() -> None:
    """On a mesh the agents that can do a task may live in another process."""
    from smesh.field import Field

    class Shared(Field):
        node_id = "n1"

    team = Team(
        [Agent("a", backend=_llm([]), skills={"other": 1.0})],
        field=Shared(),
        settings=Settings(idle_timeout_s=0.2),
    )
    report = _run(team, [TaskSpec(task_id="t", skill="elsewhere")])
    assert report.stopped_by == "idle"


# -- backends ----------------------------------------------------------------------------------


class _Server:
    """A real HTTP server on 127.0.0.1 answering GETs from a table of paths."""

    def __init__(self, routes: dict[str, tuple[int, Any]]) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.seen.append((self.path, dict(self.headers)))
                status, body = routes.get(self.path, (404, {"error": "no"}))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Any]:
    made: list[_Server] = []

    def make(routes: dict[str, tuple[int, Any]]) -> _Server:
        made.append(_Server(routes))
        return made[-1]

    yield make
    for s in made:
        s.stop()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_ollama_is_one_clear_line_before_any_call() -> None:
    backend = OllamaBackend("qwen", host=f"127.0.0.1:{_closed_port()}")
    team = Team([Agent("a", backend=Retry(Timeout(backend, 5)), skills={"s": 1.0})])
    with pytest.raises(ConfigurationError) as caught:
        _run(team, [TaskSpec(task_id="t", skill="s")])
    message = str(caught.value)
    assert message.startswith("no Ollama at http://127.0.0.1:") and "`ollama serve`" in message
    assert "\n" not in message


def test_ollama_without_the_model_and_with_it(server: Any) -> None:
    up = server({"/api/tags": (200, {"models": [{"name": "qwen:latest"}]})})
    host = up.url.removeprefix("http://")
    with pytest.raises(ConfigurationError, match=r"has no model .llama3.*ollama pull llama3"):
        asyncio.run(probe_backend(OllamaBackend("llama3", host=host)))
    asyncio.run(probe_backend(OllamaBackend("qwen", host=host)))  # ":latest" is implied
    assert [path for path, _ in up.seen] == ["/api/tags", "/api/tags"]  # no completion asked


def test_keys_are_checked_before_any_call(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="no API key for anthropic:x — set ANTHROPIC"):
        asyncio.run(probe_backend(AnthropicBackend("x")))
    with pytest.raises(ConfigurationError, match="no API key for openai:gpt — set OPENAI_API_KEY"):
        asyncio.run(probe_backend(OpenAIBackend("gpt")))
    refusing = server({"/v1/models": (401, {"error": {"message": "bad key"}})})
    backend = OpenAIBackend("m", base_url=f"{refusing.url}/v1", api_key="wrong")
    with pytest.raises(ConfigurationError, match=r"refused the API key of openai:m \(HTTP 401\)"):
        asyncio.run(probe_backend(backend))
    assert refusing.seen[0][1].get("Authorization") == "Bearer wrong"
    local = server({"/v1/models": (200, {"data": []})})
    asyncio.run(probe_backend(OpenAIBackend("m", base_url=f"{local.url}/v1")))  # no key: fine


def test_a_backend_may_bring_its_own_probe() -> None:
    class Custom(FunctionBackend):
        async def probe(self) -> None:
            raise BackendUnavailable("the queue is closed", backend="custom")

    with pytest.raises(ConfigurationError, match="the queue is closed"):
        asyncio.run(probe_backend(Custom(lambda r: "x", name="custom")))


# -- output paths ------------------------------------------------------------------------------


def test_output_paths_that_cannot_be_written(tmp_path: Path) -> None:
    for bad in (Path("/proc/x"), Path("/proc/nope/report.md"), Path("/etc/passwd/sub")):
        with pytest.raises(ConfigurationError):
            check_output_file(bad)
        with pytest.raises(ConfigurationError):
            check_output_dir(bad)
    with pytest.raises(ConfigurationError, match="is a directory"):
        check_output_file(tmp_path)
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigurationError, match="not a directory"):
        check_output_dir(tmp_path / "f")
    check_output_file(tmp_path / "new" / "deeper" / "report.md")  # created later: fine
    check_output_dir(tmp_path / "project")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # the checks left nothing
