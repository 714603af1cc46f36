"""probe_backends (for ``smesh status``) and LocalBackend set-up paths that load no model."""

from __future__ import annotations

from pathlib import Path

import pytest
from _loopback import Canned, FakeAPIServer

from smesh.backends import Request, probe_backends
from smesh.backends.local import LocalBackend, resolve_model_path
from smesh.errors import BackendUnavailable, ModelNotFound, UnknownName


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "SMESH_MODEL_PATH",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "OPENROUTER_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_probe_shape_and_ollama_reachable(
    clean_env: pytest.MonkeyPatch, api_server: FakeAPIServer
) -> None:
    api_server.routes[("GET", "/api/tags")] = Canned(
        body={"models": [{"name": "qwen2.5-coder:7b"}, {"name": "llama3:8b"}]}
    )
    clean_env.setenv("OLLAMA_HOST", api_server.url)
    clean_env.setenv("ANTHROPIC_API_KEY", "k")
    report = probe_backends(timeout=1.0)
    assert {"local", "ollama", "openai", "anthropic", "openrouter"} <= set(report)
    for info in report.values():
        assert set(info) == {"available", "verified", "detail"}
        assert isinstance(info["available"], bool)
        assert info["verified"] in (True, False, None)
        assert isinstance(info["detail"], str) and info["detail"]
    assert report["ollama"]["available"] is True
    assert "qwen2.5-coder:7b" in str(report["ollama"]["detail"])
    assert report["anthropic"]["available"] is True
    assert report["openai"]["available"] is False


def test_probe_ollama_down_and_bad_answers(
    clean_env: pytest.MonkeyPatch, closed_port: int, api_server: FakeAPIServer
) -> None:
    clean_env.setenv("OLLAMA_HOST", f"127.0.0.1:{closed_port}")
    assert probe_backends(timeout=0.5)["ollama"]["available"] is False
    api_server.routes[("GET", "/api/tags")] = Canned(body=b"<html>")
    clean_env.setenv("OLLAMA_HOST", api_server.url)
    down = probe_backends(timeout=0.5)["ollama"]
    assert down["available"] is False and "malformed" in str(down["detail"])


def test_probe_honours_smesh_model_path(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("SMESH_MODEL_PATH", str(tmp_path / "missing.gguf"))
    clean_env.setenv("OLLAMA_HOST", "127.0.0.1:9")
    local = probe_backends(timeout=0.2)["local"]
    assert local["available"] is False and "missing.gguf" in str(local["detail"])


def test_resolve_model_path(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resolve_model_path(None)[1:] == ("0.5b", "qwen2.5-coder-0.5b-instruct-q4_k_m")
    assert resolve_model_path("1.5b")[1] == "1.5b"
    custom = tmp_path / "tiny.gguf"
    assert resolve_model_path(str(custom)) == (custom, "", "tiny")
    clean_env.setenv("SMESH_MODEL_PATH", str(custom))
    assert resolve_model_path(None)[0] == custom
    with pytest.raises(UnknownName):
        resolve_model_path("huge")


@pytest.mark.asyncio
async def test_local_with_a_missing_gguf_is_model_not_found(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path / "nope.gguf"))
    with pytest.raises(ModelNotFound, match=r"nope\.gguf"):
        await backend.complete(Request.of("x"))
    await backend.aclose()
    with pytest.raises(BackendUnavailable, match="closed"):
        await backend.start()


@pytest.mark.asyncio
async def test_local_with_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    pytest.importorskip("xllamacpp")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"this is not a gguf file")
    async with LocalBackend(str(junk), load_timeout=30) as backend:
        with pytest.raises(ModelNotFound, match="cannot load"):
            await backend.start()
