"""``smesh status``: what is installed and whether it works."""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import sys
from typing import Any

import click
from rich.table import Table

from smesh._version import __version__
from smesh.cli._common import console, print_json

# part -> (distribution to report, module to import, what it enables)
_PARTS: dict[str, tuple[str, str, str]] = {
    "numpy": ("numpy", "numpy", "vectorized intensity and diffusion (core)"),
    "networkx": ("networkx", "networkx", "importing and exporting graphs (core)"),
    "rich": ("rich", "rich", "terminal output (core)"),
    "httpx": ("httpx", "httpx", "HTTP backends: ollama, openai, anthropic"),
    "plot": ("matplotlib", "matplotlib", "smesh sim --plot"),
    "local": ("xllamacpp", "xllamacpp", "the embedded local model"),
    "mesh": ("eclipse-zenoh", "zenoh", "the distributed field (smesh node)"),
}


def _probe_part(dist: str, module: str) -> dict[str, Any]:
    try:
        version: str | None = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return {"installed": False, "works": False, "version": None, "detail": "not installed"}
    try:
        importlib.import_module(module)
    except Exception as exc:
        return {
            "installed": True,
            "works": False,
            "version": version,
            "detail": f"import failed: {type(exc).__name__}: {exc}",
        }
    return {"installed": True, "works": True, "version": version, "detail": "ok"}


def _probe_backends() -> dict[str, Any] | None:
    try:
        backends = importlib.import_module("smesh.backends")
    except ImportError:
        return None
    probe = getattr(backends, "probe_backends", None)
    if probe is None:
        return None
    result: dict[str, Any] = probe()
    return result


def collect_status() -> dict[str, Any]:
    """Everything ``smesh status`` reports, as plain data."""
    report: dict[str, Any] = {
        "version": __version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "executable": sys.executable,
        "parts": {name: _probe_part(dist, mod) for name, (dist, mod, _) in _PARTS.items()},
    }
    backends = _probe_backends()
    if backends is not None:
        report["backends"] = backends
    return report


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def command(as_json: bool) -> None:
    """Show the version, Python, and which optional parts are installed and work."""
    report = collect_status()
    if as_json:
        print_json(report)
        return
    console.print(
        f"[bold]smesh[/bold] {report['version']} · Python {report['python']} "
        f"({report['implementation']}) · {report['platform']}"
    )
    table = Table(title="Parts", title_justify="left")
    table.add_column("part")
    table.add_column("status")
    table.add_column("version")
    table.add_column("enables")
    for name, info in report["parts"].items():
        mark = (
            "[green]ok[/green]"
            if info["works"]
            else ("[red]broken[/red]" if info["installed"] else "[dim]not installed[/dim]")
        )
        table.add_row(name, mark, info["version"] or "-", _PARTS[name][2])
    console.print(table)
    backends = report.get("backends")
    if backends:
        btable = Table(title="Backends", title_justify="left")
        btable.add_column("backend")
        btable.add_column("available")
        btable.add_column("verified")
        btable.add_column("detail")
        for name, info in backends.items():
            verified = info.get("verified")
            btable.add_row(
                name,
                "[green]yes[/green]" if info.get("available") else "[red]no[/red]",
                "-" if verified is None else ("yes" if verified else "no"),
                str(info.get("detail", "")),
            )
        console.print(btable)
