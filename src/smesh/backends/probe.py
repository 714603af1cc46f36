"""Cheap availability checks for ``smesh status`` and ``smesh compare``.

Nothing here loads a model or hashes a file: ``local`` is judged from the wheels, the
cached file's size and its verification sidecar; Ollama from one quick ``GET /api/tags``;
hosted APIs from whether a key is configured.
"""

from __future__ import annotations

import json
import os
import time

from smesh.backends.model import MODELS, model_status
from smesh.backends.ollama import ollama_url

__all__ = ["ollama_models", "probe_backends"]

_MAX_TAGS_BYTES = 1024 * 1024


def ollama_models(timeout: float = 2.0) -> list[str] | str:
    """Return the models Ollama has pulled, or a one-line reason it cannot be asked.

    The answer is read in pieces: at most 1 MB, and no piece is asked for once ``timeout``
    has passed, so a server that drips or floods cannot hold or bloat ``smesh status``.
    """
    import httpx

    url = f"{ollama_url()}/api/tags"
    deadline = time.monotonic() + timeout
    body = bytearray()
    try:
        with httpx.stream("GET", url, timeout=timeout) as response:
            if response.status_code != 200:
                return f"{url} answered HTTP {response.status_code}"
            for piece in response.iter_bytes():
                body += piece
                if len(body) > _MAX_TAGS_BYTES:
                    return f"{url} answered more than {_MAX_TAGS_BYTES} bytes"
                if time.monotonic() > deadline:
                    return f"{url} did not finish answering within {timeout:g} s"
    except httpx.HTTPError as exc:
        return f"not reachable at {url} ({type(exc).__name__})"
    try:
        data = json.loads(body)
        return [str(m["name"]) for m in data.get("models", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"{url} answered malformed JSON"


def probe_backends(timeout: float = 2.0) -> dict[str, dict[str, object]]:
    """Report each backend kind as ``{"available", "verified", "detail"}``.

    ``local`` is always present; ``verified`` is True/False for embedded models whose file
    was checked and None where there is nothing to verify or it was not checked yet.
    """
    out: dict[str, dict[str, object]] = {}
    env_model = os.environ.get("SMESH_MODEL_PATH")
    if env_model:
        exists = os.path.isfile(env_model)
        out["local"] = {
            "available": exists,
            "verified": None,
            "detail": f"SMESH_MODEL_PATH={env_model}" + ("" if exists else " (file missing)"),
        }
    for name in MODELS:
        if env_model and name == "0.5b":
            continue
        status = model_status(name)
        key = "local" if name == "0.5b" else f"local:{name}"
        out[key] = {
            "available": status.available,
            "verified": status.verified,
            "detail": status.detail,
        }
    models = ollama_models(timeout)
    if isinstance(models, list):
        shown = ", ".join(models[:5]) + (" ..." if len(models) > 5 else "")
        out["ollama"] = {
            "available": True,
            "verified": None,
            "detail": f"{ollama_url()}: {len(models)} model(s){': ' + shown if models else ''}",
        }
    else:
        out["ollama"] = {"available": False, "verified": None, "detail": models}
    for kind, variable, extra in (
        ("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
        ("anthropic", "ANTHROPIC_API_KEY", None),
        ("openrouter", "OPENROUTER_API_KEY", None),
    ):
        has_key = bool(os.environ.get(variable))
        base = os.environ.get(extra) if extra else None
        if has_key:
            detail = f"{variable} is set" + (f"; {extra}={base}" if base else "")
        elif base:
            detail = f"{extra}={base} (no key; fine for local servers)"
        else:
            detail = f"{variable} is not set"
        out[kind] = {"available": has_key or bool(base), "verified": None, "detail": detail}
    return out
