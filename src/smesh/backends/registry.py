"""Resolve backend strings (``local``, ``ollama:qwen2.5-coder``, ...) to backends.

A backend string is ``KIND`` or ``KIND:MODEL``. Built-in kinds are imported only when
resolved, so naming ``openai:...`` never loads the embedded model and vice versa.
Third-party kinds register a factory under the ``smesh.backends`` entry-point group (as
networkx discovers its backends)::

    [project.entry-points."smesh.backends"]
    mykind = "mypkg.backend:create"   # create(model: str | None, **options) -> Backend

or at run time with :func:`register_backend`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, cast

from smesh.backends.base import Backend
from smesh.errors import UnknownName, UsageError

__all__ = [
    "BackendFactory",
    "backend_kinds",
    "parse_backend",
    "register_backend",
    "resolve_backend",
]

#: ``factory(model, **options) -> Backend``; ``model`` is None for a bare ``KIND``.
BackendFactory = Callable[..., Backend]

ENTRY_POINT_GROUP = "smesh.backends"

_BUILTINS: dict[str, str] = {
    "local": "smesh.backends.local:create",
    "openai": "smesh.backends.openai:create_openai",
    "openrouter": "smesh.backends.openai:create_openrouter",
    "ollama": "smesh.backends.ollama:create",
    "anthropic": "smesh.backends.anthropic:create",
    "scripted": "smesh.backends.doubles:create_scripted",
    "function": "smesh.backends.doubles:create_function",
}

_registered: dict[str, BackendFactory] = {}


def register_backend(kind: str, factory: BackendFactory, *, replace: bool = False) -> None:
    """Make ``KIND[:MODEL]`` strings resolve through ``factory``.

    Raises:
        UsageError: ``kind`` is malformed, or taken and ``replace`` is False.
    """
    if not kind or ":" in kind or kind != kind.strip():
        raise UsageError(f"backend kind must be a non-empty name without ':', not {kind!r}")
    if not replace and (kind in _registered or kind in _BUILTINS):
        raise UsageError(f"backend kind {kind!r} is already registered")
    _registered[kind] = factory


def parse_backend(spec: str) -> tuple[str, str | None]:
    """Split ``KIND[:MODEL]`` into its parts; MODEL may itself contain ``:``.

    Raises:
        UsageError: empty kind or empty model after the colon.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError(f"a backend string is needed, got {spec!r}")
    kind, sep, model = spec.strip().partition(":")
    if not kind:
        raise UsageError(f"backend string {spec!r} has no kind before ':'")
    if sep and not model:
        raise UsageError(f"backend string {spec!r} has an empty model after ':'")
    return kind, (model or None)


def _entry_point_factories() -> dict[str, Any]:
    # Imported here: importlib.metadata is slow to import and only needed on lookup.
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def backend_kinds() -> list[str]:
    """Every kind that resolves: built-ins, registered and installed entry points."""
    return sorted(set(_BUILTINS) | set(_registered) | set(_entry_point_factories()))


def _load(target: str) -> BackendFactory:
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return cast(BackendFactory, getattr(module, attribute))


def _factory(kind: str) -> BackendFactory:
    if kind in _registered:
        return _registered[kind]
    if kind in _BUILTINS:
        return _load(_BUILTINS[kind])
    eps = _entry_point_factories()
    if kind in eps:
        return cast(BackendFactory, eps[kind].load())
    raise UnknownName(
        f"unknown backend {kind!r} (known: {', '.join(backend_kinds())}); "
        f"third-party backends register under the {ENTRY_POINT_GROUP!r} entry-point group"
    )


def resolve_backend(spec: str | Backend, **options: Any) -> Backend:
    """Return the backend named by ``spec`` (a backend object is returned as it is).

    Args:
        spec: ``local``, ``local:1.5b``, ``ollama:MODEL``, ``openai:MODEL``,
            ``anthropic:MODEL``, ``openrouter:MODEL``, ``scripted``, ``function`` or a
            registered kind.
        **options: passed to the backend's factory (timeouts, base URLs, keys, ...).

    Raises:
        UnknownName: no such kind.
        UsageError: a malformed string or a model the kind requires but lacks.
    """
    if not isinstance(spec, str):
        if options:
            raise UsageError("options apply only when resolving a backend string")
        return spec
    kind, model = parse_backend(spec)
    backend = _factory(kind)(model, **options)
    if not isinstance(backend, Backend):
        raise UsageError(f"factory for {kind!r} returned {type(backend).__name__}, not a Backend")
    return backend
