"""A mesh peer driven over stdin/stdout, one JSON object per line (for the mesh tests).

Run as ``python tests/mesh/_peer.py [--listen EP] [--connect EP] ...``. It prints
``{"ready": NODE_ID, ...}`` once it has joined, then answers one line per command:

``{"op": "emit", "kind": K, "payload": P, "origin": O, ...}`` → ``{"address": A}``;
``reinforce`` / ``withdraw`` / ``renew`` with ``address`` and ``by``; a plain agent name
(``O``, ``by``) is scoped under the node (``<node id>/O``), a name with a ``/`` is used as
given; ``dump`` (every live
signal, canonical); ``stats``; ``peers``; ``provenance`` with ``address``;
``wait`` with ``count`` and ``within`` (seconds) (until that many live signals); ``quit``.

With ``--team SPEC`` it runs a :class:`~smesh.agents.Team` of function agents instead and
prints ``{"report": ...}`` when the run ends (see ``_team``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import msgspec

from smesh.agents import (
    FunctionAgent,
    Judgement,
    Settings,
    TaskSpec,
    TaskState,
    Team,
    VerifySpec,
    WorkContext,
)
from smesh.agents.protocol import Ruling, Verdict, Vote, encode
from smesh.decay import Step
from smesh.mesh import Identity, MeshConfig, MeshField
from smesh.mesh.pki import load_credentials
from smesh.signal import compute_address


def _out(obj: Any) -> None:
    sys.stdout.write(json.dumps(msgspec.to_builtins(obj)) + "\n")
    sys.stdout.flush()


def _config(args: argparse.Namespace) -> MeshConfig:
    tls = None
    if args.tls_ca:
        tls = load_credentials(args.name, ca=args.tls_ca, directory=args.tls_dir)
    return MeshConfig(
        mesh=args.mesh,
        listen=tuple(args.listen),
        connect=tuple(args.connect),
        tls=tls,
        allow=tuple(args.allow),
        sync_timeout_s=args.sync_timeout,
    )


def _name(field: MeshField, name: str) -> str:
    return name if "/" in name else field.agent_name(name)


def _dump(field: MeshField) -> list[Any]:
    return sorted(
        (msgspec.to_builtins(s) for s in field.signals()), key=lambda s: str(s["address"])
    )


async def _serve(field: MeshField) -> None:
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
            if op == "emit":
                decay = Step() if cmd.pop("step", False) else None
                if decay is not None:
                    cmd["decay"] = decay
                cmd["origin"] = _name(field, cmd["origin"])
                signal = field.emit(cmd.pop("kind"), cmd.pop("payload", None), **cmd)
                _out({"address": signal.address})
            elif op in ("reinforce", "withdraw", "renew"):
                result = getattr(field, op)(cmd["address"], by=_name(field, cmd["by"]))
                _out({"ok": True, "result": result if isinstance(result, bool) else None})
            elif op == "dump":
                _out({"signals": _dump(field)})
            elif op == "stats":
                _out(field.mesh_stats())
            elif op == "peers":
                _out({"peers": field.peers()})
            elif op == "provenance":
                record = field.provenance(cmd["address"])
                _out({"provenance": record, "verified": field.verify_provenance(cmd["address"])})
            elif op == "wait":
                deadline = loop.time() + float(cmd.get("within", 10))
                while len(field) < int(cmd["count"]) and loop.time() < deadline:
                    await asyncio.sleep(0.02)
                _out({"live": len(field)})
            else:
                _out({"error": f"unknown op {op}"})
        except Exception as exc:
            _out({"error": f"{type(exc).__name__}: {exc}"})


class _Liar(FunctionAgent):
    """A Byzantine verifier: it votes against the truth (its judge) and, as soon as its own
    side has a vote, emits decisions itself: one citing that vote signal's voters, one also
    citing the poster as a voter on its side (it never was)."""

    def settle(self, task: TaskState, attempt: int) -> Ruling | None:
        result, posted = task.results.get(attempt), task.result(attempt)
        if result is None or posted is None:
            return None
        lie_good = posted.output == "good"
        verdict: Verdict = "reject" if lie_good else "approve"
        ours = task.votes.get(attempt, {}).get(verdict)
        lied: set[tuple[str, int]] = self.__dict__.setdefault("lied", set())
        if ours is None or (task.spec.task_id, attempt) in lied:
            return None
        lied.add((task.spec.task_id, attempt))
        voters = [ours.origin, *ours.reinforcers]
        vote = Vote(task.spec.task_id, attempt, result.address, verdict)
        where = compute_address("vote", encode(vote), "")
        base = {"task_id": task.spec.task_id, "attempt": attempt, "basis": "votes"}
        base |= {"verdict": "failed" if lie_good else "accepted", "result": result.address}
        for cites in ({ours.address: voters}, {where: [*voters, task.signal.origin]}):
            self.runtime.field.emit(
                "decision", {**base, "cites": cites}, origin=self.id, ttl=3600.0
            )
        return None


def _judge(honest: bool, delay: float) -> Any:
    async def judge(task: TaskSpec, output: Any) -> Judgement:
        await asyncio.sleep(delay)
        good = output == "good"
        return Judgement("approve" if good == honest else "reject", "judged")

    return judge


async def _team(field: MeshField, spec: dict[str, Any]) -> None:
    """Run function agents: ``spec = {"agents": [{"id", "affinity", "hang"}], "post": N,
    "wait_peers": K}``; a hanging agent sleeps forever in perform (it holds its lease).

    Verification: an agent ``{"id", "judge": "honest" | "liar", "delay": s}`` verifies
    skill ``work`` (a liar also decides falsely, see :class:`_Liar`); ``"verify": {quorum,
    margin}`` and ``"max_attempts"`` go into every posted task, and ``"bad": [ids]`` names
    the tasks whose worker posts a bad output (the others' is ``good``).
    """
    agents = []
    bad = set(spec.get("bad", ()))
    for a in spec.get("agents", []):
        name = field.agent_name(a["id"])  # agents on a mesh are named under their node
        if "judge" in a:
            liar = a["judge"] == "liar"
            judge = _judge(not liar, float(a.get("delay", 0.0)))
            cls = _Liar if liar else FunctionAgent
            agents.append(cls(name, judge=judge, verifies={"work": 1.0}))
            continue
        hang = bool(a.get("hang"))

        async def perform(ctx: WorkContext, _hang: bool = hang, _id: str = a["id"]) -> Any:
            if _hang:
                await asyncio.sleep(3600)
            await asyncio.sleep(0.05)
            if "verify" in spec:
                return "bad" if ctx.task.task_id in bad else "good"
            return f"{ctx.task.task_id} done by {_id}"

        agents.append(FunctionAgent(name, perform=perform, skills={"work": a["affinity"]}))
    idle = float(spec.get("idle", 40.0))
    settings = Settings(
        lease_s=30.0, claim_settle_s=0.3, poll_s=0.5, idle_timeout_s=idle, tick_s=0.1
    )
    poster = field.agent_name(spec.get("poster", "poster"))
    team = Team(agents, field=field, settings=settings, poster=poster)
    verify = VerifySpec(**spec["verify"]) if "verify" in spec else None
    attempts = int(spec.get("max_attempts", 3))
    tasks = [
        TaskSpec(task_id=f"t{i}", skill="work", verify=verify, max_attempts=attempts)
        for i in range(int(spec.get("post", 0)))
    ]
    if tasks:
        while len(field.peers()) < int(spec.get("wait_peers", 0)):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # let the peers' boards subscribe
    _out({"started": True})
    report = await team.run(tasks)
    _out({"report": report, "mesh": field.mesh_stats()})


async def _main(args: argparse.Namespace) -> None:
    identity = Identity.load(args.key) if args.key else None
    if identity is None and args.tls_ca:
        creds = load_credentials(args.name, ca=args.tls_ca, directory=args.tls_dir)
        identity = Identity.load(creds.key)
    field = MeshField(_config(args), identity=identity)
    await field.astart()
    _out({"ready": field.node_id, "late_join_ms": field.late_join_ms})
    try:
        if args.team:
            await _team(field, json.loads(args.team))
        else:
            await _serve(field)
    finally:
        await field.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mesh", default="test")
    parser.add_argument("--listen", action="append", default=[])
    parser.add_argument("--connect", action="append", default=[])
    parser.add_argument("--key")
    parser.add_argument("--name", default="")
    parser.add_argument("--tls-ca")
    parser.add_argument("--tls-dir")
    parser.add_argument("--allow", action="append", default=[])
    parser.add_argument("--sync-timeout", type=float, default=1.0)
    parser.add_argument("--team")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
