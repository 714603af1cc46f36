"""Graph generators for the six built-in topologies.

Each generator returns adjacency lists (``adj[i]`` = sorted neighbours of node i) for an
undirected simple graph, drawing every random choice from the ``random.Random`` it is given.
They are written against plain lists rather than networkx because building a 500-node mesh
through networkx's dict-of-dicts is an order of magnitude slower; the tests check them
against networkx's reference generators.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from smesh.errors import InvalidValue, UnknownName

__all__ = [
    "TOPOLOGIES",
    "Adjacency",
    "barabasi_albert",
    "erdos_renyi",
    "full_mesh",
    "generate",
    "grid",
    "is_connected",
    "ring",
    "watts_strogatz",
]

Adjacency = list[list[int]]


def _from_sets(neighbours: list[set[int]]) -> Adjacency:
    return [sorted(s) for s in neighbours]


def ring(n: int) -> Adjacency:
    """Each node linked to the next and the previous one."""
    if n <= 1:
        return [[] for _ in range(n)]
    if n == 2:
        return [[1], [0]]
    return [sorted(((i - 1) % n, (i + 1) % n)) for i in range(n)]


def full_mesh(n: int) -> Adjacency:
    """Every node linked to every other."""
    everyone = list(range(n))
    return [everyone[:i] + everyone[i + 1 :] for i in range(n)]


def is_connected(adj: Adjacency) -> bool:
    """Whether every node can reach every other (True for 0 or 1 nodes)."""
    n = len(adj)
    if n <= 1:
        return True
    seen = bytearray(n)
    seen[0] = 1
    stack = [0]
    count = 1
    while stack:
        for v in adj[stack.pop()]:
            if not seen[v]:
                seen[v] = 1
                count += 1
                stack.append(v)
    return count == n


def watts_strogatz(
    n: int, rng: random.Random, *, k: int = 4, p: float = 0.3, connected: bool = True
) -> Adjacency:
    """Watts–Strogatz small world: a ring lattice of degree k with each edge rewired with p.

    With ``connected`` (the default) a disconnected draw is rejected and redrawn, as
    networkx's ``connected_watts_strogatz_graph`` does, up to 100 attempts.
    """
    if not 0.0 <= p <= 1.0:
        raise InvalidValue(f"rewiring probability must be in [0, 1], got {p}")
    if k < 2:
        raise InvalidValue(f"small world needs k >= 2, got {k}")
    if n <= k + 1:
        return full_mesh(n)  # the lattice would already be complete
    half = k // 2
    for _ in range(100):
        nbrs = [set[int]() for _ in range(n)]
        for i in range(n):
            for j in range(1, half + 1):
                v = (i + j) % n
                nbrs[i].add(v)
                nbrs[v].add(i)
        for j in range(1, half + 1):
            for u in range(n):
                if rng.random() >= p:
                    continue
                v = (u + j) % n
                if v not in nbrs[u]:
                    continue  # this lattice edge was already rewired away from the other end
                nu = nbrs[u]
                if len(nu) >= n - 1:
                    continue  # u is linked to everyone; nowhere to rewire to
                w = rng.randrange(n)
                while w == u or w in nu:
                    w = rng.randrange(n)
                nu.discard(v)
                nbrs[v].discard(u)
                nu.add(w)
                nbrs[w].add(u)
        adj = _from_sets(nbrs)
        if not connected or is_connected(adj):
            return adj
    raise InvalidValue(f"no connected small world with n={n}, k={k}, p={p} in 100 draws")


def barabasi_albert(n: int, rng: random.Random, *, m: int = 2) -> Adjacency:
    """Barabási–Albert scale-free graph: each new node links to m nodes chosen with
    probability proportional to their degree (true preferential attachment).

    Starts, as networkx does, from a star of m + 1 nodes.
    """
    if m < 1:
        raise InvalidValue(f"scale-free graphs need m >= 1, got {m}")
    if n <= m:
        return full_mesh(n)  # too few nodes for a star of m + 1
    nbrs = [set[int]() for _ in range(n)]
    for leaf in range(1, m + 1):
        nbrs[0].add(leaf)
        nbrs[leaf].add(0)
    # every node appears once per unit of degree: drawing from this list is preferential
    repeated = [0] * m + list(range(1, m + 1))
    for source in range(m + 1, n):
        targets: set[int] = set()
        while len(targets) < m:
            targets.add(repeated[rng.randrange(len(repeated))])
        for t in sorted(targets):  # sorted: set order must not leak into the draw sequence
            nbrs[source].add(t)
            nbrs[t].add(source)
            repeated.append(t)
        repeated.extend([source] * m)
    return _from_sets(nbrs)


def grid(n: int) -> Adjacency:
    """A 2-D lattice of side ⌈√n⌉ filled row by row; the last row may be partial."""
    if n == 0:
        return []
    side = math.isqrt(n - 1) + 1
    adj: Adjacency = [[] for _ in range(n)]
    for i in range(n):
        right = i + 1
        if right % side and right < n:
            adj[i].append(right)
            adj[right].append(i)
        down = i + side
        if down < n:
            adj[i].append(down)
            adj[down].append(i)
    for a in adj:
        a.sort()
    return adj


def erdos_renyi(n: int, rng: random.Random, *, p: float = 0.3) -> Adjacency:
    """Erdős–Rényi G(n, p): each pair linked independently with probability p.

    Not guaranteed to be connected.
    """
    if not 0.0 <= p <= 1.0:
        raise InvalidValue(f"edge probability must be in [0, 1], got {p}")
    adj: Adjacency = [[] for _ in range(n)]
    draw = rng.random
    for i in range(n):
        row = adj[i]
        for j in range(i + 1, n):
            if draw() < p:
                row.append(j)
                adj[j].append(i)
    for a in adj:
        a.sort()
    return adj


#: name -> (generator(n, rng) -> adjacency, promised connected)
TOPOLOGIES: dict[str, tuple[Callable[[int, random.Random], Adjacency], bool]] = {
    "ring": (lambda n, rng: ring(n), True),
    "full_mesh": (lambda n, rng: full_mesh(n), True),
    "small_world": (watts_strogatz, True),
    "scale_free": (barabasi_albert, True),
    "grid": (lambda n, rng: grid(n), True),
    "random": (erdos_renyi, False),
}

_ALIASES = {
    "mesh": "full_mesh",
    "fullmesh": "full_mesh",
    "smallworld": "small_world",
    "scalefree": "scale_free",
    "erdos_renyi": "random",
    "lattice": "grid",
}


def canonical_name(name: str) -> str:
    """Normalize a topology name (``small-world``, ``SmallWorld`` ...) or raise."""
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in TOPOLOGIES:
        known = ", ".join(TOPOLOGIES)
        raise UnknownName(f"unknown topology {name!r} (known: {known})")
    return key


def generate(name: str, n: int, rng: random.Random) -> Adjacency:
    """Build the named topology on ``n`` nodes."""
    if n < 1:
        raise InvalidValue(f"a network needs at least 1 node, got {n}")
    make, _ = TOPOLOGIES[canonical_name(name)]
    return make(n, rng)
