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
from smesh.cli._common import console, esc, plain, print_json

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


def _probe_mesh(connect: str | None) -> dict[str, Any] | None:
    # only when the mesh extra imports; it contacts a peer only when asked to
    try:
        mesh_status = importlib.import_module("smesh.mesh.status")
    except ImportError:
        return None
    result: dict[str, Any] = mesh_status.mesh_status(connect)
    return result


def collect_status(mesh: str | None = None) -> dict[str, Any]:
    """Everything ``smesh status`` reports, as plain data.

    Args:
        mesh: endpoint of a running mesh peer whose view of the mesh peers to report.
    """
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
    mesh_report = _probe_mesh(mesh)
    if mesh_report is not None:
        report["mesh"] = mesh_report
    return report


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option(
    "--mesh",
    "mesh",
    metavar="ENDPOINT",
    envvar="SMESH_MESH",
    help="List the mesh peers seen by the peer at ENDPOINT (e.g. tcp/127.0.0.1:7447).",
)
def command(as_json: bool, mesh: str | None) -> None:
    """Show the version, Python, and which optional parts are installed and work."""
    report = collect_status(mesh)
    if as_json:
        print_json(report)
        return
    console.print(
        f"[bold]smesh[/bold] {esc(report['version'])} · Python {esc(report['python'])} "
        f"({esc(report['implementation'])}) · {esc(report['platform'])}"
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
        table.add_row(plain(name), mark, plain(info["version"] or "-"), plain(_PARTS[name][2]))
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
                plain(name),
                "[green]yes[/green]" if info.get("available") else "[red]no[/red]",
                "-" if verified is None else ("yes" if verified else "no"),
                plain(info.get("detail", "")),
            )
        console.print(btable)
    mesh_info = report.get("mesh")
    if mesh_info:
        peers = mesh_info.get("peers")
        line = (
            f"mesh: zenoh {esc(mesh_info['zenoh'])} · cryptography {esc(mesh_info['cryptography'])}"
        )
        if mesh_info.get("error"):
            line += f" · [red]{esc(mesh_info['error'])}[/red]"
        elif peers is None:
            line += " · peers: pass --mesh ENDPOINT of a running node"
        else:
            line += f" · {len(peers)} peer(s) seen from {esc(mesh_info['connect'])}"
        console.print(line)
        for peer in peers or ():
            console.print(plain(f"  {peer['mesh']}/{peer['node']}"))
