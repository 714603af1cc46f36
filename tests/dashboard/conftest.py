"""Fixtures for the dashboard tests: servers on loopback, a real headless Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")

from smesh.dashboard.app import Dashboard
from smesh.dashboard.server import DashboardServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(journal=..., **options)`` starts a dashboard on 127.0.0.1:<free port>; every
    server started is stopped after the test."""
    servers: list[DashboardServer] = []

    def start(**options: Any) -> DashboardServer:
        server = DashboardServer(Dashboard(**options)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


class Browser:
    """One fresh Chromium profile; console errors and page errors are collected."""

    def __init__(self, profile: Path) -> None:
        from playwright.sync_api import sync_playwright

        self.errors: list[str] = []
        self._pw = sync_playwright().start()
        self.context = self._pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1300, "height": 850},
        )
        self.context.set_default_timeout(10_000)

    def page(self) -> Any:
        page = self.context.new_page()
        page.on(
            "console",
            lambda m: (
                self.errors.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        return page

    def close(self) -> None:
        self.context.close()
        self._pw.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """Headless Chromium from the distribution, with a fresh --user-data-dir."""
    pytest.importorskip("playwright")
    if not (os.path.exists(CHROMIUM) and shutil.which(CHROMIUM)):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run should have installed it")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    b = Browser(tmp_path / "profile")
    try:
        yield b
    finally:
        b.close()
