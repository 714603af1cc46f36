"""Helpers shared by the CLI commands."""

from __future__ import annotations

import json
import sys
from typing import Any

import msgspec
from rich.console import Console

__all__ = ["console", "err_console", "print_json"]

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Print ``data`` (msgspec structs included) as indented JSON on stdout."""
    builtins = msgspec.to_builtins(data)
    sys.stdout.write(json.dumps(builtins, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
