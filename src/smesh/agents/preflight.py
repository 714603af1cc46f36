"""Checks before a run: find a set-up that cannot work before any model loads or any call
is made, instead of by waiting out a timeout.

- :func:`check_tasks`: every task's skill has an agent that claims it, and every task that
  asks for verification has verifiers that can reach its quorum (an authoritative one, or
  enough voters besides the worker). A typo (``"Code"`` for ``"code"``) is named with the
  skill it probably meant.
- :func:`probe_backend`: the backend answers a cheap probe: Ollama lists its models (and
  has the one asked for), an OpenAI-compatible server or Anthropic has a key and answers,
  the embedded model's files are installed. A backend with an async ``probe()`` method is
  asked through it.
- :func:`check_output_file` / :func:`check_output_dir`: an output path can be written.

:func:`check_run` is what :class:`~smesh.agents.Team` runs before it posts a task (the
task checks are skipped on a field shared with other processes, whose agents may live
elsewhere). Every failure is a :class:`~smesh.errors.ConfigurationError` with one line
that says what to change.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import importlib.util
import os
import tempfile
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from smesh.agents.base import AgentBase
from smesh.agents.protocol import TaskSpec
from smesh.agents.verifying import Verifying
from smesh.errors import ConfigurationError, SmeshError

__all__ = [
    "PROBE_TIMEOUT_S",
    "check_output_dir",
    "check_output_file",
    "check_run",
    "check_tasks",
    "probe_backend",
]

#: how long a backend probe may take, seconds
PROBE_TIMEOUT_S = 3.0
_EPS = 1e-9
_probed: weakref.WeakSet[Any] = weakref.WeakSet()  # backends that answered their probe


def _capable(agents: Sequence[AgentBase], skill: str) -> list[AgentBase]:
    return [a for a in agents if a.slots > 0 and a.node.affinity(skill) > 0]


def _verifiers(agents: Sequence[AgentBase], skill: str) -> list[AgentBase]:
    return [a for a in agents if a.verify_slots > 0 and a.verifies.get(skill, 0.0) > 0]


def _custom_rule(agent: AgentBase) -> bool:
    """Whether the agent decides by its own acceptance rule (then any verifier may do)."""
    return isinstance(agent, Verifying) and type(agent).settle is not Verifying.settle


def _missing_skill(spec: TaskSpec, agents: Sequence[AgentBase]) -> str:
    known = sorted({s for a in agents for s, v in a.node.skills.items() if v > 0})
    guess = difflib.get_close_matches(spec.skill, known, n=1, cutoff=0.6)
    guess += [s for s in known if s.lower() == spec.skill.lower() and s not in guess]
    hint = f" (did you mean {guess[0]!r}?)" if guess else f" (skills: {', '.join(known) or 'none'})"
    return f"task {spec.task_id!r} needs skill {spec.skill!r}, which no agent has{hint}"


def _unverifiable(spec: TaskSpec, agents: Sequence[AgentBase]) -> str | None:
    verify = spec.verify
    if verify is None:
        return None
    judges = _verifiers(agents, spec.skill)
    if not judges:
        return (
            f"task {spec.task_id!r} asks for verification, but no agent verifies "
            f"{spec.skill!r} (give one verifies={{{spec.skill!r}: ...}})"
        )
    if any(j.authoritative or _custom_rule(j) for j in judges):
        return None
    # nobody judges their own result, and a voter weighs at most 1 (full trust)
    workers = _capable(agents, spec.skill)
    mass = max(sum(j.id != w.id for j in judges) for w in workers) if workers else len(judges)
    need = max(verify.quorum, verify.margin)
    if mass + _EPS >= need:
        return None
    return (
        f"task {spec.task_id!r} needs a vote mass of {need:g} to be decided, but at most "
        f"{mass} agent(s) besides its worker can judge {spec.skill!r}, each weighing at most 1"
        " (add verifiers, make one authoritative, or lower the quorum)"
    )


def check_tasks(agents: Sequence[AgentBase], tasks: Iterable[TaskSpec]) -> None:
    """Check that every task can be claimed and, when it asks for it, verified.

    Raises:
        ConfigurationError: the first problem, and how many more there are.
    """
    problems: list[str] = []
    seen: set[tuple[str, bool, float, float]] = set()
    for spec in tasks:
        verify = spec.verify
        key = (
            spec.skill,
            verify is None,
            verify.quorum if verify else 0.0,
            verify.margin if verify else 0.0,
        )
        if key in seen:  # a thousand tasks of one skill cost one check
            continue
        seen.add(key)
        if not _capable(agents, spec.skill):
            problems.append(_missing_skill(spec, agents))
            continue
        problem = _unverifiable(spec, agents)
        if problem is not None:
            problems.append(problem)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigurationError(problems[0] + more)


def _unwrap(backend: Any) -> Any:
    from smesh.backends.resilience import Wrapper

    for _ in range(16):  # Retry(CircuitBreaker(RateLimit(Timeout(b)))) and the like
        if not isinstance(backend, Wrapper):
            break
        backend = backend.inner
    return backend


def _hosted(url: str) -> bool:
    return url.startswith(("https://api.openai.com", "https://openrouter.ai"))


async def _get(url: str, headers: dict[str, str], timeout: float) -> int:
    """The status of ``GET url``; raises ``httpx.HTTPError`` when nothing answers."""
    import httpx

    async with httpx.AsyncClient(timeout=timeout, headers=headers) as client:
        response = await client.get(url)
        return response.status_code


async def _probe_ollama(backend: Any, timeout: float) -> None:
    import httpx

    base = str(backend.base_url)
    advice = "start it with `ollama serve` or choose another --backend"
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(f"{base}/api/tags")
            data = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        raise ConfigurationError(f"no Ollama at {base} — {advice}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{base} does not answer like Ollama — {advice}")
    names = {str(m.get("name")) for m in data.get("models") or () if isinstance(m, dict)}
    model = str(backend.model)
    if model not in names and f"{model}:latest" not in names:
        raise ConfigurationError(
            f"Ollama at {base} has no model {model!r} — run `ollama pull {model}` "
            "or choose another --backend"
        )


async def _probe_http(backend: Any, timeout: float, *, key_header: str, path: str) -> None:
    import httpx

    base = str(backend.base_url)
    headers = dict(getattr(backend, "headers", {}) or {})
    variable = getattr(backend, "key_variable", "ANTHROPIC_API_KEY")
    if key_header not in headers and (key_header != "Authorization" or _hosted(base)):
        raise ConfigurationError(
            f"no API key for {backend.name} — set {variable} or choose another --backend"
        )
    try:
        status = await _get(f"{base}{path}", headers, timeout)
    except httpx.HTTPError as exc:
        raise ConfigurationError(
            f"nothing answers at {base} for {backend.name} ({type(exc).__name__}) — start the "
            "server or fix its URL, or choose another --backend"
        ) from None
    if status in (401, 403):
        raise ConfigurationError(
            f"{base} refused the API key of {backend.name} (HTTP {status}) — check {variable}"
        )


def _probe_local(backend: Any) -> None:
    from smesh.backends.local import resolve_model_path
    from smesh.backends.model import model_status

    if getattr(backend, "started", False):
        return
    if importlib.util.find_spec("xllamacpp") is None:
        raise ConfigurationError(
            "the embedded model needs xllamacpp: pip install 'smesh[local]' "
            "(or choose another --backend)"
        )
    name = str(backend.name)
    model = (name.partition(":")[2] or None) if name.startswith("local") else None
    try:
        path, embedded, _ = resolve_model_path(model)
    except SmeshError:
        return  # a custom name: the model is checked when it loads
    if path is not None:
        if not path.is_file():
            raise ConfigurationError(f"no model file at {path} (SMESH_MODEL_PATH or local:PATH)")
        return
    status = model_status(embedded)
    if not status.available:
        raise ConfigurationError(status.detail)


async def probe_backend(backend: Any, *, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Ask ``backend`` (through its wrappers) whether it can be used, cheaply: no model is
    loaded and no completion is asked for. A backend that passed once is not asked again.

    Raises:
        ConfigurationError: it cannot be used, with what to do about it.
    """
    inner = _unwrap(backend)
    try:
        if inner in _probed:
            return
    except TypeError:
        pass  # not weak-referenceable: probe every time
    from smesh.backends.anthropic import AnthropicBackend
    from smesh.backends.local import LocalBackend
    from smesh.backends.ollama import OllamaBackend
    from smesh.backends.openai import OpenAIBackend

    own = getattr(inner, "probe", None)
    try:
        async with asyncio.timeout(timeout * 2):
            if isinstance(inner, OllamaBackend):
                await _probe_ollama(inner, timeout)
            elif isinstance(inner, OpenAIBackend):
                await _probe_http(inner, timeout, key_header="Authorization", path="/models")
            elif isinstance(inner, AnthropicBackend):
                await _probe_http(inner, timeout, key_header="x-api-key", path="/v1/models")
            elif isinstance(inner, LocalBackend):
                _probe_local(inner)
            elif callable(own):
                await own()
    except TimeoutError:
        raise ConfigurationError(f"{inner.name} did not answer its probe in time") from None
    except ConfigurationError:
        raise
    except SmeshError as exc:
        raise ConfigurationError(f"{getattr(inner, 'name', inner)}: {exc}") from None
    with contextlib.suppress(TypeError):
        _probed.add(inner)


async def check_run(agents: Sequence[AgentBase], tasks: Sequence[TaskSpec], *, field: Any) -> None:
    """Everything :class:`~smesh.agents.Team` checks before a run: the tasks (unless the
    field is shared with other processes: it has a ``node_id``, like a mesh field) and
    every backend its agents use.

    Raises:
        ConfigurationError: the run as set up cannot work.
    """
    if getattr(field, "node_id", None) is None:
        check_tasks(agents, tasks)
    backends: dict[int, Any] = {}
    for agent in agents:
        if agent.backend is not None:
            backends.setdefault(id(agent.backend), agent.backend)
    for backend in backends.values():
        await probe_backend(backend)


def check_output_file(path: Path, what: str = "--out") -> None:
    """Check that ``path`` can be written as a file (its directory is created if missing).

    Raises:
        ConfigurationError: it is a directory, or it (or its directory) cannot be written.
    """
    if path.is_dir():
        raise ConfigurationError(f"{what} {str(path)!r} is a directory")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise ConfigurationError(f"{what} {str(path)!r} cannot be written")
        return
    _creatable(path.parent if str(path.parent) else Path(), what, path)


def check_output_dir(path: Path, what: str = "--out") -> None:
    """Check that ``path`` is (or can be created as) a writable directory.

    Raises:
        ConfigurationError: it is a file, or it cannot be created or written.
    """
    if path.exists():
        if not path.is_dir():
            raise ConfigurationError(f"{what} {str(path)!r} is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigurationError(f"{what} {str(path)!r} cannot be written")
        return
    _creatable(path.parent if str(path.parent) else Path(), what, path)


def _creatable(directory: Path, what: str, target: Path) -> None:
    """The nearest existing ancestor of ``directory`` must be a directory in which a file
    can really be created (``os.access`` says yes to root in ``/proc``)."""
    probe = directory.absolute()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigurationError(f"{what} {str(target)!r}: {str(probe)!r} is not a directory")
    try:
        fd, name = tempfile.mkstemp(prefix=".smesh-probe-", dir=probe)
    except OSError as exc:
        raise ConfigurationError(
            f"{what} {str(target)!r} cannot be written ({exc.strerror} in {str(probe)!r})"
        ) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
