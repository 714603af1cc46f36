"""Test doubles for smesh: fast, deterministic stand-ins for real backends.

``ScriptedBackend`` replays canned replies and fails loudly on anything unexpected;
``FunctionBackend`` lets a callable decide each reply. They live in
:mod:`smesh.backends.doubles` (production code such as the demo uses them too) and are
re-exported here with the rest of the test kit (:mod:`smesh.testing.virtual_time`).
"""

from __future__ import annotations

from smesh.backends.doubles import (
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
