"""Networks: who can hear whom.

A :class:`Network` is a graph of nodes joined by edges ("hyphae") with a strength in [0, 1].
It stores adjacency as plain lists indexed by node position, which keeps topology creation
and diffusion fast; :meth:`Network.to_networkx` and :meth:`Network.from_networkx` convert to
and from networkx for analysis or for any graph you already have.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from smesh.errors import InvalidValue, UnknownName
from smesh.node import Node
from smesh.topology import Adjacency, canonical_name, generate, is_connected

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["Network"]


class Network:
    """A graph of nodes with edge strengths.

    Build one with :meth:`build` (a named topology) or :meth:`from_networkx`.

    Args:
        ids: node ids, by position.
        adjacency: ``adjacency[i]`` lists the positions i links to.
        directed: whether links are one-way.
        topology: a label for reports.
    """

    __slots__ = ("_index", "_nodes", "adjacency", "directed", "ids", "strength", "topology")

    def __init__(
        self,
        ids: Sequence[str],
        adjacency: Adjacency,
        *,
        directed: bool = False,
        topology: str = "custom",
    ) -> None:
        if len(ids) != len(adjacency):
            raise InvalidValue(f"{len(ids)} ids but {len(adjacency)} adjacency rows")
        self.ids: list[str] = list(ids)
        self._index: dict[str, int] = {node_id: i for i, node_id in enumerate(self.ids)}
        if len(self._index) != len(self.ids):
            raise InvalidValue("node ids must be unique")
        self.adjacency = adjacency
        #: strength[i][j] is the strength of the link adjacency[i][j]
        self.strength: list[list[float]] = [[1.0] * len(row) for row in adjacency]
        self.directed = directed
        self.topology = topology
        self._nodes: dict[int, Node] = {}

    @classmethod
    def build(
        cls,
        topology: str,
        n: int,
        *,
        seed: int | None = None,
        rng: random.Random | None = None,
        prefix: str = "n",
    ) -> Network:
        """Build a named topology on ``n`` nodes with ids ``n0 … n{n-1}``.

        Args:
            topology: ``ring``, ``full_mesh``, ``small_world``, ``scale_free``, ``grid`` or
                ``random``.
            n: number of nodes (>= 1).
            seed: seed for a fresh RNG (ignored when ``rng`` is given).
            rng: the RNG to draw from.
            prefix: node id prefix.
        """
        if rng is None:
            rng = random.Random(seed)
        name = canonical_name(topology)
        adjacency = generate(name, n, rng)
        return cls([f"{prefix}{i}" for i in range(n)], adjacency, topology=name)

    @classmethod
    def from_networkx(cls, graph: nx.Graph[Any], *, strength: str = "strength") -> Network:
        """Wrap any networkx graph. Node ids become ``str(node)``; an edge attribute named
        ``strength`` (or ``weight``), clipped to [0, 1], becomes the edge strength."""
        nodes = list(graph.nodes)
        ids = [str(v) for v in nodes]
        position = {v: i for i, v in enumerate(nodes)}
        adjacency: Adjacency = [[] for _ in nodes]
        strengths: list[list[float]] = [[] for _ in nodes]
        for i, v in enumerate(nodes):
            for w, data in sorted(graph.adj[v].items(), key=lambda item: position[item[0]]):
                j = position[w]
                if j == i:
                    continue  # a self-loop carries nothing anywhere
                adjacency[i].append(j)
                value = data.get(strength, data.get("weight", 1.0))
                strengths[i].append(min(1.0, max(0.0, float(value))))
        network = cls(ids, adjacency, directed=graph.is_directed(), topology="networkx")
        network.strength = strengths
        return network

    def to_networkx(self) -> nx.Graph[Any]:
        """This network as a networkx graph, with ``strength`` on each edge."""
        import networkx as nx

        graph: nx.Graph[Any] = nx.DiGraph() if self.directed else nx.Graph()
        graph.add_nodes_from(self.ids)
        for i, row in enumerate(self.adjacency):
            for j, s in zip(row, self.strength[i], strict=True):
                graph.add_edge(self.ids[i], self.ids[j], strength=s)
        return graph

    # -- queries ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def position(self, node_id: str) -> int | None:
        """Position of ``node_id``, or None if it is not a node of this network."""
        return self._index.get(node_id)

    def index(self, node_id: str) -> int:
        """Position of ``node_id``."""
        try:
            return self._index[node_id]
        except KeyError:
            raise UnknownName(f"no node {node_id!r} in this network", node=node_id) from None

    @property
    def edge_count(self) -> int:
        """Number of links (each undirected link counted once)."""
        total = sum(len(row) for row in self.adjacency)
        return total if self.directed else total // 2

    def degrees(self) -> list[int]:
        """Out-degree of each node, by position."""
        return [len(row) for row in self.adjacency]

    def neighbours(self, node_id: str) -> list[str]:
        """Ids of the nodes ``node_id`` links to."""
        return [self.ids[j] for j in self.adjacency[self.index(node_id)]]

    def is_connected(self) -> bool:
        """Whether the (undirected view of the) network is connected."""
        if not self.directed:
            return is_connected(self.adjacency)
        both: Adjacency = [list(row) for row in self.adjacency]
        for i, row in enumerate(self.adjacency):
            for j in row:
                both[j].append(i)
        return is_connected(both)

    def edges(self) -> Iterable[tuple[int, int, float]]:
        """Every directed link (i, j, strength); an undirected link appears both ways."""
        for i, row in enumerate(self.adjacency):
            for j, s in zip(row, self.strength[i], strict=True):
                yield i, j, s

    def set_strength(self, a: str, b: str, strength: float) -> None:
        """Set the strength of the link a–b (both directions unless the network is directed)."""
        if not 0.0 <= strength <= 1.0:
            raise InvalidValue(f"edge strength must be in [0, 1], got {strength}")
        i, j = self.index(a), self.index(b)
        pairs = [(i, j)] if self.directed else [(i, j), (j, i)]
        for x, y in pairs:
            try:
                k = self.adjacency[x].index(y)
            except ValueError:
                raise UnknownName(f"no link {self.ids[x]} -> {self.ids[y]}") from None
            self.strength[x][k] = strength

    # -- nodes -----------------------------------------------------------------------------

    def node(self, node_id: str) -> Node:
        """The :class:`Node` object for ``node_id``, created with defaults on first use."""
        i = self.index(node_id)
        node = self._nodes.get(i)
        if node is None:
            node = self._nodes[i] = Node(node_id)
        return node

    def add_node(self, node: Node) -> None:
        """Attach a configured :class:`Node` (skills, thresholds, trust) to its position."""
        self._nodes[self.index(node.id)] = node

    def configured_nodes(self) -> dict[int, Node]:
        """Nodes that have been created or attached, by position."""
        return self._nodes

    def __repr__(self) -> str:
        return f"Network({self.topology!r}, nodes={len(self)}, edges={self.edge_count})"
