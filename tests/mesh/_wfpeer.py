"""A mesh peer that keeps a long-lived :class:`~smesh.agents.Team` running (for the
cross-process workflow tests, ``test_workflows_mesh.py``).

Run as ``python tests/mesh/_wfpeer.py --mesh M [--listen EP] [--connect EP] --log FILE
--agents JSON``. It joins the mesh, starts ``async with Team(...)`` with the agents of
``--agents`` (a list of ``{"id", "skill", "kind", "delay"}``, named under the node), prints
``{"ready": NODE_ID}`` and answers one JSON line per command on stdin:

``{"op": "submit", "specs": [TaskSpec as a dict, ...]}`` → ``{"posted": [ids]}``;
``{"op": "wait", "task": ID, "within": S}`` → ``{"report": TaskReport}`` (the task's report
on this node's board, once it is final there; ``{"timeout": true}`` if not within S);
``{"op": "cancel", "task": ID|null, "reason": R, "grace_s": G}`` → ``{"ok": true}``;
``{"op": "peers"}``; ``{"op": "quit"}``.

Every process appends what its agents do to the shared ``--log`` file, one JSON line each
with the wall time: ``perform`` (an attempt starts), ``call`` (an LLM call starts in the
backend), ``backend-cancelled`` (a call in flight was cancelled), ``spawned``, ``done``.

Agent kinds: ``echo`` returns what it was given (its inputs from dependencies included);
``fail`` raises; ``caller`` asks its (function) backend again and again, never checking
``ctx.cancelled``, so only the cancel reaching the backend call stops it; ``planner``
spawns ``input`` subtasks of skill ``part`` (each given its index) and returns their
outputs. An agent with ``slow_from`` and ``slow`` takes ``slow`` seconds on inputs from
``slow_from`` on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import msgspec

from smesh.agents import Agent, FunctionAgent, Settings, TaskSpec, Team, WorkContext
from smesh.agents.handles import TaskHandle, task_report
from smesh.backends.base import Request
from smesh.backends.doubles import FunctionBackend
from smesh.mesh import MeshConfig, MeshField


def _out(obj: Any) -> None:
    sys.stdout.write(json.dumps(msgspec.to_builtins(obj)) + "\n")
    sys.stdout.flush()


class _Log:
    """Appends one JSON line per event to a file every peer shares (O_APPEND: whole lines)."""

    def __init__(self, path: str, node: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.node = node

    def __call__(self, event: str, **fields: Any) -> None:
        line = {"t": time.time(), "node": self.node, "event": event, **fields}
        os.write(self.fd, (json.dumps(line) + "\n").encode())


def _caller_backend(log: _Log, delay: float) -> FunctionBackend:
    def latency(request: Request) -> float:
        log("call", agent=str(request.agent))
        return delay

    backend = FunctionBackend(lambda request: "thinking...", latency=latency)
    original = backend.complete

    async def complete(request: Request) -> Any:
        try:
            return await original(request)
        except asyncio.CancelledError:
            log("backend-cancelled", agent=str(request.agent))
            raise

    backend.complete = complete  # type: ignore[method-assign]
    return backend


class _Caller(Agent):
    """Asks its backend over and over; ignores ``ctx.cancelled`` on purpose."""

    async def perform(self, ctx: WorkContext) -> Any:
        for _ in range(1000):
            await self.ask(f"step of {ctx.task.task_id}")
        return "never"


def _agent(field: MeshField, spec: dict[str, Any], log: _Log) -> Agent:
    name = field.agent_name(spec["id"])
    kind = spec.get("kind", "echo")
    delay = float(spec.get("delay", 0.05))
    skills = {spec["skill"]: float(spec.get("affinity", 1.0))}
    if kind == "caller":
        return _Caller(name, backend=_caller_backend(log, delay), skills=skills)

    async def perform(ctx: WorkContext) -> Any:
        task_id = ctx.task.task_id
        log("perform", agent=name, task=task_id, attempt=ctx.attempt)
        if kind == "planner":
            parts = ctx.spawn(
                [TaskSpec(task_id=f"p{i}", skill="part", input=i) for i in range(ctx.task.input)]
            )
            log("spawned", agent=name, task=task_id, parts=[h.task_id for h in parts])
            outputs = [r.output for r in await asyncio.gather(*parts)]
            log("done", agent=name, task=task_id)
            return outputs
        slow = isinstance(ctx.task.input, int) and ctx.task.input >= spec.get("slow_from", 1e9)
        await asyncio.sleep(float(spec["slow"]) if slow else delay)
        if kind == "fail":
            log("done", agent=name, task=task_id, failed=True)
            raise RuntimeError(f"{task_id} cannot be done: the source is gone")
        log("done", agent=name, task=task_id)
        return {
            "task": task_id,
            "by": name,
            "input": ctx.task.input,
            "inputs": ctx.inputs,
            "failed_inputs": ctx.failed_inputs,
        }

    return FunctionAgent(name, perform=perform, skills=skills)


async def _wait(team: Team, task_id: str, within: float) -> dict[str, Any]:
    board = team.board
    handle = TaskHandle(board.wait_final, board.tasks, task_id, "")
    try:
        report = await handle.wait(within)
    except TimeoutError:
        state = board.tasks.get(task_id)
        return {"timeout": True, "state": None if state is None else task_report(state)}
    return {"report": report}


async def _serve(field: MeshField, team: Team) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        cmd = json.loads(line)
        op = cmd.pop("op")
        try:
            if op == "quit":
                _out({"ok": True})
                return
            if op == "submit":
                specs = [msgspec.convert(s, TaskSpec) for s in cmd["specs"]]
                handles = team.submit_all(specs)
                _out({"posted": [h.task_id for h in handles]})
            elif op == "wait":
                _out(await _wait(team, cmd["task"], float(cmd.get("within", 20.0))))
            elif op == "cancel":
                reason, grace = cmd.get("reason", ""), cmd.get("grace_s")
                team.cancel(cmd.get("task"), reason=reason, grace_s=grace)
                _out({"ok": True, "t": time.time()})
            elif op == "peers":
                _out({"peers": field.peers()})
            else:
                _out({"error": f"unknown op {op}"})
        except Exception as exc:
            _out({"error": f"{type(exc).__name__}: {exc}"})


async def _main(args: argparse.Namespace) -> None:
    config = MeshConfig(mesh=args.mesh, listen=tuple(args.listen), connect=tuple(args.connect))
    field = MeshField(config)
    await field.astart()
    log = _Log(args.log, field.node_id)
    agents = [_agent(field, spec, log) for spec in json.loads(args.agents)]
    settings = Settings(
        lease_s=args.lease,
        claim_settle_s=0.3,  # bids must cross the network before they are resolved
        poll_s=0.5,
        tick_s=0.1,
        cancel_grace_s=args.grace,
        stop_timeout_s=3.0,
    )
    team = Team(agents, field=field, settings=settings, poster=field.agent_name("poster"))
    try:
        async with team:
            _out({"ready": field.node_id})
            await _serve(field, team)
    finally:
        await field.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mesh", required=True)
    parser.add_argument("--listen", action="append", default=[])
    parser.add_argument("--connect", action="append", default=[])
    parser.add_argument("--log", required=True)
    parser.add_argument("--agents", default="[]")
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--grace", type=float, default=1.0)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
