"""Fixtures of the command-line tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _clikit import register_fakes

from smesh.apps.analyzers import ANALYZERS


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """The fake backends and analyzer of ``_clikit`` registered in this process, and the
    user's state directory (where the default journal lives) under ``tmp_path``."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    register_fakes()
    yield tmp_path
    ANALYZERS.pop("broken", None)
