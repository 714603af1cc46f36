"""Test doubles for smesh: fast, deterministic stand-ins for real backends.

``ScriptedBackend`` replays canned replies and fails loudly on anything unexpected;
``FunctionBackend`` lets a callable decide each reply.
"""

from __future__ import annotations

from smesh.testing.backends import (
    FunctionBackend,
    Reply,
    ScriptedBackend,
    UnconsumedReplies,
    UnexpectedCall,
)

__all__ = [
    "FunctionBackend",
    "Reply",
    "ScriptedBackend",
    "UnconsumedReplies",
    "UnexpectedCall",
]
