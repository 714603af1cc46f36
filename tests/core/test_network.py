"""Network: networkx round trips, edge strengths, node objects."""

from __future__ import annotations

import networkx as nx
import pytest

from smesh.errors import InvalidValue, UnknownName
from smesh.network import Network
from smesh.node import Node
from smesh.trust import TrustTable


def edge_set(graph: nx.Graph) -> set[frozenset[str]]:
    return {frozenset(e) for e in graph.edges}


def test_build_to_networkx_round_trip() -> None:
    net = Network.build("small_world", 40, seed=4)
    graph = net.to_networkx()
    assert isinstance(graph, nx.Graph)
    assert not graph.is_directed()
    assert list(graph.nodes) == net.ids
    assert graph.number_of_edges() == net.edge_count
    assert all(data["strength"] == 1.0 for _, _, data in graph.edges(data=True))
    back = Network.from_networkx(graph)
    assert back.ids == net.ids
    assert back.adjacency == net.adjacency
    assert back.strength == net.strength
    assert back.topology == "networkx"
    assert edge_set(back.to_networkx()) == edge_set(graph)


def test_from_networkx_reads_strength_then_weight_and_clips() -> None:
    g = nx.Graph()
    g.add_edge(1, 2, strength=0.3)
    g.add_edge(2, 3, weight=2.0)  # clipped to 1
    g.add_edge(3, 4, weight=-1.0)  # clipped to 0
    g.add_edge(4, 5)  # default 1
    g.add_edge(5, 1, strength=0.6, weight=0.1)  # strength wins
    g.add_edge(5, 5)  # a self-loop carries nothing
    net = Network.from_networkx(g)
    assert net.ids == ["1", "2", "3", "4", "5"]
    assert net.edge_count == 5
    assert net.neighbours("5") == ["1", "4"]
    strengths = {(i, j): s for i, j, s in net.edges()}

    def s(a: str, b: str) -> float:
        return strengths[(net.index(a), net.index(b))]

    assert s("1", "2") == s("2", "1") == 0.3
    assert s("2", "3") == 1.0
    assert s("3", "4") == 0.0
    assert s("4", "5") == 1.0
    assert s("5", "1") == 0.6
    out = net.to_networkx()
    assert out.edges["1", "2"]["strength"] == 0.3
    assert out.edges["3", "4"]["strength"] == 0.0
    again = Network.from_networkx(out)
    assert again.strength == net.strength
    assert again.adjacency == net.adjacency


def test_from_networkx_custom_strength_attribute() -> None:
    g = nx.path_graph(3)
    nx.set_edge_attributes(g, 0.25, "bandwidth")
    net = Network.from_networkx(g, strength="bandwidth")
    assert {s for _, _, s in net.edges()} == {0.25}


def test_directed_graph_round_trip() -> None:
    g = nx.DiGraph()
    g.add_edge("a", "b", strength=0.5)
    g.add_edge("b", "c")
    g.add_edge("c", "a", weight=0.2)
    g.add_node("d")
    net = Network.from_networkx(g)
    assert net.directed
    assert net.edge_count == 3
    assert net.neighbours("a") == ["b"]
    assert net.neighbours("b") == ["c"]
    assert net.neighbours("d") == []
    assert not net.is_connected()  # d is isolated
    out = net.to_networkx()
    assert isinstance(out, nx.DiGraph)
    assert set(out.edges) == {("a", "b"), ("b", "c"), ("c", "a")}
    assert out.edges["a", "b"]["strength"] == 0.5
    assert out.edges["c", "a"]["strength"] == 0.2
    # one-way: setting a strength touches only that direction
    net.set_strength("a", "b", 0.9)
    assert net.to_networkx().edges["a", "b"]["strength"] == 0.9
    with pytest.raises(UnknownName):
        net.set_strength("b", "a", 0.9)


def test_directed_connectivity_uses_the_undirected_view() -> None:
    net = Network.from_networkx(nx.DiGraph([("a", "b"), ("c", "b")]))
    assert net.is_connected()


def test_set_strength_is_symmetric_on_undirected_networks() -> None:
    net = Network.build("ring", 5)
    net.set_strength("n0", "n1", 0.4)
    out = net.to_networkx()
    assert out.edges["n0", "n1"]["strength"] == 0.4
    strengths = {(i, j): s for i, j, s in net.edges()}
    assert strengths[(0, 1)] == strengths[(1, 0)] == 0.4
    assert strengths[(1, 2)] == 1.0
    with pytest.raises(InvalidValue):
        net.set_strength("n0", "n1", 1.5)
    with pytest.raises(InvalidValue):
        net.set_strength("n0", "n1", -0.1)
    with pytest.raises(UnknownName):
        net.set_strength("n0", "n2", 0.5)  # not linked
    with pytest.raises(UnknownName):
        net.set_strength("n0", "zz", 0.5)


def test_network_constructor_validation() -> None:
    with pytest.raises(InvalidValue):
        Network(["a", "b"], [[1]])
    with pytest.raises(InvalidValue):
        Network(["a", "a"], [[1], [0]])


def test_queries() -> None:
    net = Network.build("ring", 4, prefix="agent-")
    assert net.ids == ["agent-0", "agent-1", "agent-2", "agent-3"]
    assert "agent-2" in net
    assert "n2" not in net
    assert list(net) == net.ids
    assert net.index("agent-3") == 3
    assert net.neighbours("agent-0") == ["agent-1", "agent-3"]
    assert net.degrees() == [2, 2, 2, 2]
    with pytest.raises(UnknownName):
        net.index("nobody")
    assert "ring" in repr(net)


def test_nodes_are_created_on_first_use_and_can_be_attached() -> None:
    net = Network.build("ring", 3)
    node = net.node("n1")
    assert node is net.node("n1")
    assert node.sense_threshold == 0.1
    assert node.reinforce_threshold == 0.5
    custom = Node("n2", skills={"code": 0.9}, trust=TrustTable("beta"))
    net.add_node(custom)
    assert net.node("n2") is custom
    assert set(net.configured_nodes()) == {1, 2}
    with pytest.raises(UnknownName):
        net.add_node(Node("stranger"))
