"""What the identity binding and the input bounds cost on a mesh peer's hot paths, in-process.

Usage: PYTHONPATH=SRC python benchmarks/mesh_checks.py [--checks] [--json]

Measures CPU time (``time.process_time``), with no network and no other process, so that a
loaded machine moves it little:

- ``receive_1``: one live batch of 1 signal, authenticated by its MAC, opened and merged
  into a replica (``inbound.on_batch`` on a field with no event loop): µs per batch;
- ``receive_1000``: the same with 1,000 signals a batch: µs per signal;
- ``emit_1000``: 1,000 local emits sealed and signed as one batch: µs per signal.

The script runs unchanged against the code before the binding (point PYTHONPATH at its
``src``), so the two can be compared run by run. With ``--checks`` it also times each new
check on its own (this branch only): µs per call.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from smesh.mesh import Identity, MeshConfig, MeshField
from smesh.mesh.wire import VERSION, Sealed, emit_op, encode, pack, signed_message
from smesh.signal import Signal

MESH = "checks"


def _pair() -> tuple[MeshField, MeshField]:
    a = MeshField(MeshConfig(mesh=MESH), identity=Identity.generate())
    b = MeshField(MeshConfig(mesh=MESH), identity=Identity.generate())
    a.channel.keyring.learn(b.channel.keyring.hello, a.codec.verifier)
    b.channel.keyring.learn(a.channel.keyring.hello, b.codec.verifier)
    return a, b


def _batches(a: MeshField, batches: int, per: int) -> list[bytes]:
    """Live batches from ``a`` with a MAC for its peer (as ``LiveChannel.send`` makes)."""
    origin = f"{a.node_id}/emitter"  # a scoped name: valid before and after the binding
    now = time.time()
    out = []
    for seq in range(batches):
        ops: list[Any] = [
            emit_op(Signal.create("bench", seq * per + i, origin=origin, created_at=now, ttl=600))
            for i in range(per)
        ]
        body = pack(ops)
        public, epoch = a.identity.public_key, a.channel.epoch
        message = signed_message(MESH, public, epoch, seq, body)
        macs = a.channel.keyring.tags(message)
        out.append(encode(Sealed(VERSION, public, epoch, seq, body, b"", macs)))
    return out


def receive_us(per: int, batches: int) -> float:
    """µs per batch (per=1) or per signal (per>1) to authenticate, open and merge."""
    a, b = _pair()
    data = _batches(a, batches, per)
    start = time.process_time()
    for message in data:
        b.inbound.on_batch(message)
    elapsed = time.process_time() - start
    assert len(b) == batches * per, (len(b), b.counters.snapshot())
    return elapsed * 1e6 / (batches * per if per > 1 else batches)


def emit_us(count: int) -> float:
    """µs per signal to emit locally and seal (sign) the batch."""
    a, _ = _pair()
    origin = f"{a.node_id}/emitter"
    start = time.process_time()
    with a.batch():
        for i in range(count):
            a.emit("bench", i, origin=origin, ttl=600.0)
    return (time.process_time() - start) * 1e6 / count


def _per_call(fn: Callable[[], object], n: int = 20000) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) * 1e6 / n


def checks() -> dict[str, float]:
    """µs per call of each check the binding and the bounds add (this branch only)."""
    import tempfile
    from pathlib import Path

    from smesh.mesh.codec import op_count
    from smesh.mesh.identity import speaks_for
    from smesh.mesh.limits import Limits
    from smesh.mesh.members import Members
    from smesh.mesh.pki import init_ca, issue
    from smesh.mesh.quota import Quotas

    me = Identity.generate()
    name = f"{me.node_id}/coder"
    quotas = Quotas(Limits.generous())
    a, _ = _pair()
    body = pack([emit_op(Signal.create("k", 1, origin=name, created_at=time.time()))])
    out = {
        "speaks_for (per operation)": _per_call(lambda: speaks_for(me.node_id, name)),
        "op_count (per batch)": _per_call(lambda: op_count(body)),
        "quota affords + take (per batch)": _per_call(
            lambda: quotas.affords(me.node_id, 1, 100) and quotas.take(me.node_id, 1, 100)
        ),
        "our MAC found (per batch)": _per_call(lambda: a.channel.keyring.mine([b"\0" * 24])),
        "members.knows, no CA (per batch)": _per_call(lambda: Members().knows(me.node_id)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        init_ca(Path(tmp))
        creds = issue("n1", ca=Path(tmp))
        members = Members(creds.ca)
        signer = Identity.load(creds.key)
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        der = x509.load_pem_x509_certificate(creds.cert.read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
        start = time.perf_counter()
        Members(creds.ca).admit(signer.public_key, der)
        out["certificate check, first time (per signer)"] = (time.perf_counter() - start) * 1e6
        members.admit(signer.public_key, der)
        out["certificate check, cached (per hello)"] = _per_call(
            lambda: members.admit(signer.public_key, der), 2000
        )
        out["members.knows, with a CA (per batch)"] = _per_call(
            lambda: members.knows(signer.node_id)
        )
    return {k: round(v, 3) for k, v in out.items()}


def main() -> None:
    rounds = 5
    figures: dict[str, list[float]] = {"receive_1": [], "receive_1000": [], "emit_1000": []}
    for _ in range(rounds):
        figures["receive_1"].append(receive_us(1, 3000))
        figures["receive_1000"].append(receive_us(1000, 20))
        figures["emit_1000"].append(emit_us(20000))
    report: dict[str, Any] = {k: round(statistics.median(v), 3) for k, v in figures.items()}
    if "--checks" in sys.argv:
        report["checks_us"] = checks()
    if "--json" in sys.argv:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
