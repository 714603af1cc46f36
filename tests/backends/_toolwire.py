"""Shared pieces of the tool-calling wire tests: tools, a tool loop over a backend."""

from __future__ import annotations

from collections.abc import Sequence

from smesh.backends.base import Backend, Request
from smesh.backends.toolcalls import AssistantTurn, ToolSpec
from smesh.tools import ToolLoop, Turn, tool


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def get_capital(country: str) -> str:
    """Look up the capital city of a country."""
    return {"peru": "Lima"}.get(country.lower(), "unknown")


ADD_SPEC = add.spec()
CAPITAL_SPEC = get_capital.spec()
LOOP = ToolLoop([add, get_capital], max_steps=3)


def over(backend: Backend, **options: object):  # type: ignore[no-untyped-def]
    """The model function a tool loop needs, asking ``backend``."""

    async def model(turns: Sequence[Turn], specs: Sequence[ToolSpec]) -> AssistantTurn:
        request = Request(messages=tuple(turns), tools=tuple(specs), **options)  # type: ignore[arg-type]
        return (await backend.complete(request)).turn()

    return model
