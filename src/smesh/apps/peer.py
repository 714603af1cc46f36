"""``smesh node``: one mesh peer that hosts some of the demo's agents (an application).

The mesh (:mod:`smesh.mesh`) is only the transport of a field; this program puts the agents
runtime and the demo on top of it, so it lives with the applications.

Each process holds a full replica of the field and runs its own agents through an ordinary
:class:`~smesh.agents.Team`; agents in different processes coordinate through the shared
field alone (bids, leases, results, votes, decisions), exactly as they do in one process.
On the mesh every agent is named under the node that hosts it (``<node id>/coder``; the
poster is ``<node id>/poster``): a node signs for its own agents only, and every peer drops
what another node says in their name (see :mod:`smesh.mesh.identity`).
One node posts the demo's tasks (``post=True``); every node stops once all the tasks it knows
of are accepted or failed.

``smesh node --split 3`` runs the demo over three local processes at once. By hand, in
three terminals (see ``docs/mesh.md``)::

    smesh node --listen tcp/127.0.0.1:7447 --agents coder,tester --post --wait-peers 2
    smesh node --listen tcp/127.0.0.1:7448 --connect tcp/127.0.0.1:7447 --agents reviewer,checker
    smesh node --listen tcp/127.0.0.1:7449 --connect tcp/127.0.0.1:7447 --agents analyst,writer
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from smesh.agents import Budget, RunReport, Settings, Team
from smesh.apps.demo import ROLES, demo_agents, demo_tasks
from smesh.errors import TransportError, UsageError
from smesh.mesh import Identity, MeshConfig, MeshField, MeshStats, agent_name

if TYPE_CHECKING:
    from smesh.agents import Agent
    from smesh.backends.base import Backend

__all__ = ["PeerOptions", "PeerReport", "parse_agents", "run_peer", "run_split", "split_plan"]


class PeerOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What one peer does.

    Attributes:
        config: how it joins the mesh.
        key: a file with its Ed25519 key (created if missing); None: the TLS key, or a
            fresh one per run.
        agents: the ids of the demo agents it hosts (see :func:`parse_agents`).
        roster: how many LLM agents the demo roster has.
        backend: the backend of its LLM agents (``scripted`` needs no model).
        post: post the demo's tasks.
        wait_peers: peers to wait for before posting or working.
        wait_s: how long to wait for them.
        max_seconds: a hard wall-time budget.
        max_calls: a hard budget on LLM calls.
        idle_timeout_s: stop when nothing happens for this long.
        seed: base seed of the agents' RNGs.
    """

    config: MeshConfig
    key: Path | None = None
    agents: tuple[str, ...] = ()
    roster: int = 4
    backend: str = "scripted"
    post: bool = False
    wait_peers: int = 0
    wait_s: float = 30.0
    max_seconds: float = 170.0
    max_calls: int = 200
    idle_timeout_s: float = 60.0
    seed: int = 0


class PeerReport(msgspec.Struct, frozen=True, kw_only=True):
    """How a peer's run ended: the team's report and the node's mesh counters.

    ``agents`` are the roster ids it hosted; in ``run``, agents are named on the mesh
    (``<node id>/<agent>``)."""

    node: str
    agents: list[str]
    run: RunReport | None
    mesh: MeshStats


#: the roster's authoritative verifiers, on whichever node hosts them: a decision on checks
#: is accepted only if the checks it cites come from these (``*/tester``: any node's tester;
#: on a mesh with a CA, only certified nodes are heard at all)
DEMO_CHECKERS: dict[str, tuple[str, ...]] = {
    "code": ("*/tester",),
    "math": ("*/checker",),
    "analysis": ("*/checker",),
}


def parse_agents(spec: str, *, roster: int = 4) -> tuple[str, ...]:
    """``"coder,tester"`` → the ids of the demo agents to host.

    The roster is the demo's: ``roster`` LLM agents cycling through coder, reviewer,
    analyst and writer (named by role up to 4, ``coder-1``, ``coder-2``... beyond), plus the
    ``tester`` and ``checker`` tools. Give each agent to one node only.

    Raises:
        UsageError: an id not on the roster, or one named twice.
    """
    known = _roster_ids(roster)
    ids = tuple(filter(None, (part.strip() for part in spec.split(","))))
    for agent_id in ids:
        if agent_id not in known:
            raise UsageError(f"no agent {agent_id!r} on the roster (known: {', '.join(known)})")
    if len(set(ids)) != len(ids):
        raise UsageError("an agent can be hosted once")
    return ids


def _roster_ids(roster: int) -> list[str]:
    roles = list(ROLES)
    if roster <= len(roles):
        llm = roles[:roster]
    else:
        llm = [f"{roles[i % len(roles)]}-{i // len(roles) + 1}" for i in range(roster)]
    return [*llm, "tester", "checker"]


def _agents(backend: Backend, wanted: Sequence[str], roster: int, node: str) -> list[Agent]:
    prefix = agent_name(node, "")  # "<node id>/": this node's agents only
    everyone = {agent.id: agent for agent in demo_agents(backend, count=roster, prefix=prefix)}
    return [everyone[prefix + agent_id] for agent_id in wanted]


def _backend(spec: str) -> Backend:
    if spec == "scripted":
        from smesh.apps.demo_script import demo_script_backend

        return demo_script_backend()
    from smesh.backends import resolve_backend

    return resolve_backend(spec)


def _identity(options: PeerOptions) -> Identity:
    if options.key is not None:
        return Identity.load_or_create(options.key)
    if options.config.tls is not None:
        return Identity.load(options.config.tls.key)  # one key: TLS peer and signer
    return Identity.generate()


async def run_peer(
    options: PeerOptions, *, on_ready: Callable[[MeshField], None] | None = None
) -> PeerReport:
    """Join the mesh, run this node's agents until the work is done, leave.

    Args:
        options: what to run.
        on_ready: called once the node has joined (e.g. to print its id).
    """
    from smesh.backends.base import aclose_backend

    backend = _backend(options.backend)
    field = MeshField(options.config, identity=_identity(options))
    try:
        await field.astart()
        if on_ready is not None:
            on_ready(field)
        if options.wait_peers:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(options.wait_s):
                    while len(field.peers()) < options.wait_peers:
                        await asyncio.sleep(0.05)
        agents = _agents(backend, options.agents, options.roster, field.node_id)
        run: RunReport | None = None
        if agents or options.post:
            start = getattr(backend, "start", None)
            if agents and start is not None:
                await start()
            team = Team(
                agents,
                field=field,
                # bids must cross the network before they are resolved
                settings=Settings(
                    lease_s=30.0,
                    claim_settle_s=0.3,
                    poll_s=1.0,
                    work_timeout_s=120.0,
                    idle_timeout_s=options.idle_timeout_s,
                ),
                budget=Budget(calls=options.max_calls, wall_s=options.max_seconds),
                seed=options.seed,
                poster=field.agent_name("poster"),
                checkers=DEMO_CHECKERS,
            )
            run = await team.run(demo_tasks() if options.post else ())
            await asyncio.sleep(0.2)  # let the last decisions reach the peers
        return PeerReport(
            node=field.node_id,
            agents=list(options.agents),
            run=run,
            mesh=field.mesh_stats(),
        )
    finally:
        await field.aclose()
        await aclose_backend(backend)


#: how the demo's agents are spread over the nodes of a split run (round robin)
_SPREAD = ("coder", "reviewer", "analyst", "tester", "checker", "writer")


def split_plan(nodes: int) -> list[tuple[str, ...]]:
    """The agents each of ``nodes`` local processes hosts in a split demo run."""
    if not 1 <= nodes <= len(_SPREAD):
        raise UsageError(f"the demo splits over 1 to {len(_SPREAD)} processes, not {nodes}")
    plan: list[list[str]] = [[] for _ in range(nodes)]
    for i, agent_id in enumerate(_SPREAD):
        plan[i % nodes].append(agent_id)
    return [tuple(agents) for agents in plan]


async def run_split(
    nodes: int, *, backend: str = "scripted", timeout_s: float = 300.0
) -> list[dict[str, Any]]:
    """Run the agents demo split over ``nodes`` local ``smesh node`` processes.

    The first node posts the tasks once the others are up; every node listens on a free
    port of 127.0.0.1 and connects to the first. Returns each node's JSON report.

    Raises:
        TransportError: a node failed or did not finish in time.
    """
    import json
    import socket
    import sys

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    ports = [free_port() for _ in range(nodes)]
    procs: list[asyncio.subprocess.Process] = []
    try:
        for i, agents in enumerate(split_plan(nodes)):
            command = [
                sys.executable, "-m", "smesh", "node", "--json",
                "--mesh", f"split{ports[0]}",
                "--listen", f"tcp/127.0.0.1:{ports[i]}",
                "--agents", ",".join(agents),
                "--backend", backend,
            ]  # fmt: skip
            if i == 0:
                command += ["--post", "--wait-peers", str(nodes - 1)]
            else:
                command += ["--connect", f"tcp/127.0.0.1:{ports[0]}"]
            procs.append(
                await asyncio.create_subprocess_exec(
                    *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
                )
            )
        async with asyncio.timeout(timeout_s):
            outputs = await asyncio.gather(*(proc.communicate() for proc in procs))
    except TimeoutError:
        raise TransportError(f"the split demo did not finish within {timeout_s:g} s") from None
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    reports: list[dict[str, Any]] = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            last = err.decode(errors="replace").strip().splitlines()
            raise TransportError(f"a node failed: {last[-1] if last else proc.returncode}")
        reports.append(json.loads(out))
    return reports
