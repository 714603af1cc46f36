"""A mesh peer for the ``faults`` suite (``python -m smesh.eval._mesh_peer ...``).

It joins a mesh on 127.0.0.1, prints ``{"ready": NODE_ID}``, runs a team of scripted
agents that both work and verify, and, if it posts the tasks, prints
``{"report": ..., "accepted": {task: count}}`` when the run is over. Worker peers run
until they are killed or the run goes idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from typing import Any

import msgspec

from smesh.agents import (
    FunctionAgent,
    Judgement,
    Settings,
    TaskSpec,
    Team,
    VerifySpec,
    WorkContext,
)
from smesh.mesh import MeshConfig, MeshField


def _say(obj: Any) -> None:
    sys.stdout.write(json.dumps(msgspec.to_builtins(obj)) + "\n")
    sys.stdout.flush()


def _agents(
    prefix: str, count: int, latency: float, seed: int, field: MeshField
) -> list[FunctionAgent]:
    rng = random.Random(f"{seed}/{prefix}")

    async def perform(ctx: WorkContext) -> Any:
        await asyncio.sleep(latency * (0.5 + rng.random()))  # a call in flight
        return f"{ctx.task.task_id} done"

    async def judge(task: TaskSpec, output: Any) -> Judgement:
        await asyncio.sleep(latency * 0.1)
        ok = isinstance(output, str) and output.startswith(task.task_id)
        return Judgement("approve" if ok else "reject", "checked")

    return [
        FunctionAgent(
            field.agent_name(f"{prefix}-a{i}"),  # a node speaks only for its own agents
            perform=perform,
            judge=judge,
            skills={"work": 1.0},
            verifies={"work": 1.0},
        )
        for i in range(count)
    ]


async def _main(args: argparse.Namespace) -> None:
    config = MeshConfig(mesh=args.mesh, listen=(args.listen,), connect=tuple(args.connect))
    field = MeshField(config)
    await field.astart()
    _say({"ready": field.node_id})
    settings = Settings(
        lease_s=args.lease,
        claim_settle_s=0.2,
        poll_s=0.5,
        tick_s=0.1,
        work_timeout_s=60.0,
        idle_timeout_s=args.idle,
    )
    team = Team(
        _agents(args.prefix, args.agents, args.latency, args.seed, field),
        field=field,
        settings=settings,
        poster=field.agent_name(f"{args.prefix}-poster"),
        seed=args.seed,
    )
    # the attempts of each task accepted: deciders on different nodes may each emit the
    # decision on one attempt (citing the votes each saw), which is one acceptance, not two
    accepted: dict[str, set[int]] = {}

    def count(event: Any) -> None:
        payload = event.signal.payload
        if (
            event.type == "emit"
            and isinstance(payload, dict)
            and payload.get("verdict") == "accepted"
        ):
            attempt = payload.get("attempt")
            accepted.setdefault(str(payload["task_id"]), set()).add(
                attempt if isinstance(attempt, int) else -1
            )

    field.subscribe(count, kinds=["decision"])
    verify = VerifySpec(quorum=0.5, margin=0.3, timeout_s=30.0)
    tasks = [
        TaskSpec(task_id=f"t{i:03d}", skill="work", verify=verify, max_attempts=50)
        for i in range(args.post)
    ]
    if tasks:
        while len(field.peers()) < args.wait_peers:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # let every peer's board subscribe
        _say({"posting": len(tasks)})
    try:
        report = await team.run(tasks)
        if tasks:
            _say({"report": report, "accepted": {t: len(a) for t, a in accepted.items()}})
    finally:
        await field.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mesh", required=True)
    parser.add_argument("--listen", default="tcp/127.0.0.1:0")
    parser.add_argument("--connect", action="append", default=[])
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--post", type=int, default=0)
    parser.add_argument("--wait-peers", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
