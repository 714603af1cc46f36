"""Backend strings, registration and entry points."""

from __future__ import annotations

import importlib.metadata
import sys
from typing import Any

import pytest

from smesh.backends import (
    Backend,
    backend_kinds,
    parse_backend,
    register_backend,
    resolve_backend,
)
from smesh.backends import registry as registry_module
from smesh.errors import UnknownName, UsageError
from smesh.testing import FunctionBackend, ScriptedBackend


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("local", ("local", None)),
        ("local:1.5b", ("local", "1.5b")),
        ("ollama:qwen2.5-coder:7b", ("ollama", "qwen2.5-coder:7b")),
        (" openai:gpt-4o-mini ", ("openai", "gpt-4o-mini")),
    ],
)
def test_parse_backend(spec: str, expected: tuple[str, str | None]) -> None:
    assert parse_backend(spec) == expected


@pytest.mark.parametrize("spec", ["", "   ", ":model", "ollama:"])
def test_parse_backend_rejects_malformed(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_backend(spec)


def test_unknown_kind_lists_known_ones() -> None:
    with pytest.raises(UnknownName, match="ollama"):
        resolve_backend("nosuch:model")


def test_builtins_resolve_without_network_or_model_loading() -> None:
    for spec, kind in [
        ("ollama:qwen2.5-coder", "OllamaBackend"),
        ("openai:gpt-4o-mini", "OpenAIBackend"),
        ("openrouter:meta-llama/llama-3-8b", "OpenAIBackend"),
        ("anthropic:claude-3-5-haiku-latest", "AnthropicBackend"),
        ("local", "LocalBackend"),
    ]:
        backend = resolve_backend(spec)
        assert isinstance(backend, Backend)
        assert type(backend).__name__ == kind
        assert backend.name == spec.strip()
    assert not resolve_backend("local").started  # type: ignore[attr-defined]
    assert resolve_backend("openrouter:x").base_url.startswith("https://openrouter.ai")  # type: ignore[attr-defined]


@pytest.mark.parametrize("spec", ["ollama", "openai", "anthropic", "openrouter"])
def test_remote_kinds_need_a_model(spec: str) -> None:
    with pytest.raises(UsageError, match="needs a model"):
        resolve_backend(spec)


def test_local_rejects_unknown_embedded_names() -> None:
    with pytest.raises(UnknownName, match=r"0\.5b"):
        resolve_backend("local:7b")


def test_scripted_and_function_resolve() -> None:
    assert isinstance(resolve_backend("scripted", replies=["x"]), ScriptedBackend)
    assert isinstance(resolve_backend("function", fn=lambda r: "x"), FunctionBackend)
    with pytest.raises(UsageError, match="fn="):
        resolve_backend("function")


def test_backend_objects_pass_through() -> None:
    backend = ScriptedBackend()
    assert resolve_backend(backend) is backend
    with pytest.raises(UsageError):
        resolve_backend(backend, timeout=3)


def test_register_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "_registered", {})
    register_backend("echo", lambda model, **kw: ScriptedBackend([model or "none"], name="echo"))
    assert "echo" in backend_kinds()
    backend = resolve_backend("echo:hello")
    assert backend.name == "echo"
    with pytest.raises(UsageError, match="already registered"):
        register_backend("echo", lambda model: ScriptedBackend())
    with pytest.raises(UsageError, match="already registered"):
        register_backend("local", lambda model: ScriptedBackend())
    with pytest.raises(UsageError):
        register_backend("bad:kind", lambda model: ScriptedBackend())
    register_backend("bogus", lambda model: object(), replace=True)
    with pytest.raises(UsageError, match="not a Backend"):
        resolve_backend("bogus")


def test_entry_point_backends_are_discovered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    module = tmp_path / "smesh_thirdparty_demo.py"
    module.write_text(
        "from smesh.testing import ScriptedBackend\n"
        "def create(model=None, **options):\n"
        "    return ScriptedBackend([f'third-party {model}'], name=f'demo:{model}')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    point = importlib.metadata.EntryPoint(
        name="demo", value="smesh_thirdparty_demo:create", group="smesh.backends"
    )

    def fake_entry_points(**selection: Any) -> list[importlib.metadata.EntryPoint]:
        return [point] if selection.get("group") == "smesh.backends" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    assert "demo" in backend_kinds()
    backend = resolve_backend("demo:m1")
    assert backend.name == "demo:m1"
    assert isinstance(backend, ScriptedBackend)
    sys.modules.pop("smesh_thirdparty_demo", None)
