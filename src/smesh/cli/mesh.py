"""``smesh mesh`` (certificates, identities, peers) and ``smesh node`` (a mesh peer).

Imports nothing of zenoh or cryptography until a command runs: ``smesh --help`` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from smesh.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    backend_options,
    console,
    embedded_options,
    err_console,
    esc,
    exit_code_help,
    plain,
    print_json,
)
from smesh.cli._stop import run_async

if TYPE_CHECKING:
    from smesh.apps.peer import PeerReport
    from smesh.mesh.field import MeshField

__all__ = ["command", "node_command"]


@click.group("mesh")
def command() -> None:
    """Certificates, node identities and peers of a mesh (see `smesh node`)."""


@command.command("init-ca")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="smesh mesh CA", show_default=True, help="The CA's name.")
@click.option("--days", type=click.IntRange(min=1), default=3650, show_default=True)
def init_ca(directory: Path, name: str, days: int) -> None:
    """Create a certificate authority (ca.pem, ca.key) in DIRECTORY."""
    from smesh.mesh.pki import init_ca as make_ca

    cert = make_ca(directory, name=name, days=days)
    console.print(plain(f"CA certificate: {cert}"))
    console.print(plain(f"CA key:         {directory / 'ca.key'} (keep it private)"))


@command.command("issue")
@click.argument("node")
@click.option(
    "--ca",
    "ca_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The CA directory (from `smesh mesh init-ca`).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write NODE.pem and NODE.key (default: the CA directory).",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="A host name or IP address for the certificate (repeatable; default localhost, "
    "127.0.0.1).",
)
@click.option("--days", type=click.IntRange(min=1), default=825, show_default=True)
def issue(node: str, ca_dir: Path, out: Path | None, hosts: tuple[str, ...], days: int) -> None:
    """Issue a certificate (and Ed25519 key) for NODE, signed by the CA."""
    from smesh.mesh.identity import Identity
    from smesh.mesh.pki import issue as make_cert

    creds = make_cert(
        node, ca=ca_dir, out=out, hosts=hosts or ("localhost", "127.0.0.1"), days=days
    )
    console.print(plain(f"certificate: {creds.cert}"))
    console.print(plain(f"key:         {creds.key} (also the node's signing key)"))
    console.print(plain(f"node id:     {Identity.load(creds.key).node_id}"))


@command.command("id")
@click.argument("key", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--create", is_flag=True, help="Create the key if it does not exist.")
def node_id(key: Path, create: bool) -> None:
    """Print the node id of the Ed25519 key in KEY."""
    from smesh.mesh.identity import Identity

    identity = Identity.load_or_create(key) if create else Identity.load(key)
    click.echo(identity.node_id)


@command.command("peers")
@click.option(
    "--connect", required=True, help="Endpoint of a running peer, e.g. tcp/127.0.0.1:7447."
)
@click.option("--mesh", "mesh_name", default="*", show_default=True, help="Mesh name.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=2.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def peers(connect: str, mesh_name: str, timeout: float, as_json: bool) -> None:
    """List the nodes whose liveliness tokens a running peer sees."""
    from smesh.mesh.status import list_peers

    found = list_peers(connect, mesh=mesh_name, timeout_s=timeout)
    if as_json:
        print_json(found)
        return
    table = Table(title=f"Mesh peers seen from {esc(connect)}", title_justify="left")
    table.add_column("mesh")
    table.add_column("node")
    for peer in found:
        table.add_row(plain(peer.mesh), plain(peer.node))
    console.print(table)


@click.command("node", epilog=exit_code_help)
@click.option("--listen", multiple=True, help="Endpoint to accept peers on (repeatable).")
@click.option("--connect", multiple=True, help="Endpoint of a peer to connect to (repeatable).")
@click.option("--mesh", "mesh_name", default="smesh", show_default=True, help="Mesh name.")
@click.option(
    "--agents",
    default="",
    help="Demo agents to host, comma-separated: coder, reviewer, analyst, writer, tester, "
    "checker (with --roster above 4: coder-1, coder-2, ...). Each agent on one node only.",
)
@click.option(
    "--roster",
    type=click.IntRange(min=1, max=64),
    default=4,
    show_default=True,
    help="LLM agents in the demo roster.",
)
@click.option(
    "--backend",
    default="scripted",
    show_default=True,
    help="Backend of the LLM agents: scripted (no model), local, ollama:MODEL, ...",
)
@click.option("--post", is_flag=True, help="Post the demo's tasks.")
@click.option(
    "--wait-peers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Peers to wait for (up to 30 s) before working.",
)
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), help="Node key file.")
@click.option(
    "--tls-ca",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="CA directory: use mTLS (tls/ endpoints) with the certificate NAME.pem found there.",
)
@click.option("--name", default=None, help="This node's certificate name (with --tls-ca).")
@click.option("--allow", multiple=True, help="Certificate name allowed in (repeatable).")
@click.option("--max-seconds", type=click.FloatRange(min=1), default=170.0, show_default=True)
@click.option("--idle-timeout", type=click.FloatRange(min=1), default=60.0, show_default=True)
@click.option(
    "--split",
    type=click.IntRange(min=1, max=6),
    default=None,
    help="Run the whole agents demo over this many local node processes and report.",
)
@embedded_options
@click.option("--json", "as_json", is_flag=True, help="Print the node's report as JSON.")
def node_command(
    listen: tuple[str, ...],
    connect: tuple[str, ...],
    mesh_name: str,
    agents: str,
    roster: int,
    backend: str,
    post: bool,
    wait_peers: int,
    key: Path | None,
    tls_ca: Path | None,
    name: str | None,
    allow: tuple[str, ...],
    max_seconds: float,
    idle_timeout: float,
    split: int | None,
    threads: int | None,
    slots: int | None,
    as_json: bool,
) -> int:
    """Run a mesh peer: a full replica of the field, hosting some of the demo's agents.

    Run three of them (one with --post), or `smesh node --split 3`, and the agents demo is
    split over three processes that share one field over Eclipse Zenoh; see docs/mesh.md.
    """
    from smesh.apps.peer import PeerOptions, parse_agents, run_peer, run_split
    from smesh.mesh.pki import load_credentials
    from smesh.mesh.transport import MeshConfig

    # the embedded model of this node and of the nodes it starts reads these
    for variable, value in backend_options(backend, threads, slots).items():
        os.environ[f"SMESH_{variable.upper()}"] = str(value)
    if split is not None:
        _note_scripted(backend)
        reports = run_async(run_split(split, backend=backend, timeout_s=max_seconds + 60))
        if as_json:
            print_json(reports)
        else:
            _print_split(reports)
        done = all(
            t["status"] == "accepted"
            for r in reports
            for t in (r.get("run") or {}).get("tasks", [])
        )
        return EXIT_OK if done and reports else EXIT_FAILED

    tls = None
    if tls_ca is not None:
        if not name:
            raise click.UsageError("--tls-ca needs --name (the node's certificate name)")
        tls = load_credentials(name, ca=tls_ca)
    options = PeerOptions(
        config=MeshConfig(mesh=mesh_name, listen=listen, connect=connect, tls=tls, allow=allow),
        key=key,
        agents=parse_agents(agents, roster=roster),
        roster=roster,
        backend=backend,
        post=post,
        wait_peers=wait_peers,
        max_seconds=max_seconds,
        idle_timeout_s=idle_timeout,
    )

    if agents:
        _note_scripted(backend)

    def ready(field: MeshField) -> None:
        if not as_json:
            err_console.print(
                f"[dim]node {esc(field.node_id)} joined mesh {esc(mesh_name)} "
                f"(caught up in {field.late_join_ms or 0:.1f} ms)[/dim]"
            )

    report = run_async(run_peer(options, on_ready=ready))
    if as_json:
        print_json(_summary(report))
    else:
        _print(report)
    run = report.run
    return EXIT_FAILED if run is not None and run.accepted < len(run.tasks) else EXIT_OK


def _note_scripted(backend: str) -> None:
    if backend == "scripted":
        click.echo(
            "smesh: note: the agents use the scripted backend (no model); "
            "pass --backend local for the embedded model",
            err=True,
        )


def _summary(report: PeerReport) -> dict[str, Any]:
    run = report.run
    return {
        "node": report.node,
        "agents": report.agents,
        "peers": report.mesh.peers,
        "run": None
        if run is None
        else {
            "run_id": run.run_id,
            "stopped_by": run.stopped_by,
            "duration_s": run.duration_s,
            "llm_calls": run.llm_calls,
            "tasks": [
                {"id": t.id, "status": t.status, "claimed_by": t.claimed_by, "attempts": t.attempts}
                for t in run.tasks
            ],
        },
        "mesh": report.mesh,
    }


def _print(report: PeerReport) -> None:
    run = report.run
    if run is not None:
        title = f"node {esc(report.node[:12])} · run {esc(run.stopped_by)}"
        table = Table(title=title, title_justify="left")
        for col in ("task", "status", "by", "attempts"):
            table.add_column(col)
        for t in run.tasks:
            status = "[green]accepted[/green]" if t.status == "accepted" else "[red]failed[/red]"
            table.add_row(plain(t.id), status, plain(_short(t.claimed_by)), str(t.attempts))
        console.print(table)
    counters = report.mesh.counters
    dropped = sum(v for k, v in counters.items() if k.startswith("dropped_"))
    console.print(
        f"peers {len(report.mesh.peers)} · live signals {report.mesh.live} · "
        f"published {counters.get('published_ops', 0)} ops · "
        f"applied {counters.get('applied_ops', 0)} remote ops · dropped {dropped}"
    )


def _print_split(reports: list[dict[str, Any]]) -> None:
    ok = True
    for report in reports:
        run = report["run"]
        counters = report["mesh"]["counters"]
        console.print(
            f"[bold]node {esc(report['node'][:8])}[/bold] ({esc(', '.join(report['agents']))}): "
            f"{run['stopped_by']} in {run['duration_s']:.1f} s · published "
            f"{counters.get('published_ops', 0)} ops · applied "
            f"{counters.get('applied_ops', 0)} remote ops"
        )
        for task in run["tasks"]:
            ok = ok and task["status"] == "accepted"
            console.print(
                plain(f"    {task['id']}: {task['status']} by {_short(task['claimed_by'])}")
            )
    console.print(
        "every task accepted on every node" if ok else "[red]some task was not accepted[/red]"
    )


def _short(name: str | None) -> str:
    """An agent's mesh name with its node id cut to 8 digits, for people to read."""
    if name is None:
        return "-"
    node, sep, agent = name.partition("/")
    return f"{node[:8]}/{agent}" if sep and len(node) == 32 else name
