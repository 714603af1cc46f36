"""Two peers in two network namespaces, linked by a veth pair (root only)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest
from _meshkit import Peer, eventually

SUBNET = "10.231.{}.{}"


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str, str, str]]:
    """Two fresh namespaces joined by a veth pair: (ns_a, ip_a, ns_b, ip_b)."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("the ip command (iproute2) is not installed")
    tag = uuid.uuid4().hex[:6]
    ns_a, ns_b = f"smesh-{tag}-a", f"smesh-{tag}-b"
    probe = _ip("netns", "add", ns_a)
    if probe.returncode != 0:
        pytest.skip(f"ip netns does not work here: {probe.stderr.strip()}")
    try:
        octet = int(tag[:2], 16)
        ip_a, ip_b = SUBNET.format(octet, 1), SUBNET.format(octet, 2)
        veth_a, veth_b = f"va{tag}", f"vb{tag}"
        steps = [
            ("netns", "add", ns_b),
            ("link", "add", veth_a, "type", "veth", "peer", "name", veth_b),
            ("link", "set", veth_a, "netns", ns_a),
            ("link", "set", veth_b, "netns", ns_b),
            ("-n", ns_a, "addr", "add", f"{ip_a}/24", "dev", veth_a),
            ("-n", ns_b, "addr", "add", f"{ip_b}/24", "dev", veth_b),
            ("-n", ns_a, "link", "set", veth_a, "up"),
            ("-n", ns_b, "link", "set", veth_b, "up"),
            ("-n", ns_a, "link", "set", "lo", "up"),
            ("-n", ns_b, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                pytest.skip(f"cannot set up namespaces ({' '.join(step)}): {done.stderr.strip()}")
        yield ns_a, ip_a, ns_b, ip_b
    finally:
        _ip("netns", "del", ns_a)
        _ip("netns", "del", ns_b)


def test_two_namespaces_share_one_field(
    spawn: Callable[..., Peer], mesh_name: str, namespaces: tuple[str, str, str, str]
) -> None:
    ns_a, ip_a, ns_b, ip_b = namespaces
    a = spawn(
        "--mesh", mesh_name, "--listen", f"tcp/{ip_a}:7447", prefix=["ip", "netns", "exec", ns_a]
    )
    b = spawn(
        "--mesh",
        mesh_name,
        "--listen",
        f"tcp/{ip_b}:7447",
        "--connect",
        f"tcp/{ip_a}:7447",
        prefix=["ip", "netns", "exec", ns_b],
    )
    assert eventually(lambda: a.call("peers")["peers"] == [b.node_id])
    first = a.call("emit", kind="task", payload={"from": "a"}, origin="poster")
    b.call("emit", kind="task", payload={"from": "b"}, origin="poster")
    assert b.call("wait", count=2)["live"] == 2
    b.call("reinforce", address=first["address"], by="helper")
    assert eventually(
        lambda: a.call("dump") == b.call("dump") and len(a.call("dump")["signals"]) == 2
    )
    # a peer leaving one namespace is seen leaving from the other
    b.kill()
    assert eventually(lambda: a.call("peers")["peers"] == [])
