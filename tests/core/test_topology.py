"""Topologies: structural properties (hypothesis), edge counts, heavy tails, seeding."""

from __future__ import annotations

import math
import random
import statistics

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smesh import topology
from smesh.errors import InvalidValue, UnknownName
from smesh.network import Network

NAMES = ["ring", "full_mesh", "small_world", "scale_free", "grid", "random"]
CONNECTED = [name for name in NAMES if name != "random"]
RANDOMIZED = ["small_world", "scale_free", "random"]

sizes = st.integers(min_value=1, max_value=120)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def expected_edges(name: str, n: int) -> int | None:
    """Edge counts that the generators fix (None: random)."""
    if name == "ring":
        return {1: 0, 2: 1}.get(n, n)
    if name == "full_mesh":
        return n * (n - 1) // 2
    if name == "small_world":
        # k = 4 ring lattice, n·k/2 edges; rewiring moves edges without adding any
        return 2 * n if n > 5 else n * (n - 1) // 2
    if name == "scale_free":
        # a star of m + 1 = 3 nodes (2 edges), then m = 2 edges per new node
        return 2 + 2 * (n - 3) if n >= 3 else n * (n - 1) // 2
    if name == "grid":
        side = math.isqrt(n - 1) + 1
        horizontal = sum(1 for i in range(n - 1) if (i + 1) % side)
        return horizontal + max(0, n - side)
    return None


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(NAMES), n=sizes, seed=seeds)
def test_every_topology_is_a_simple_undirected_graph(name: str, n: int, seed: int) -> None:
    net = Network.build(name, n, seed=seed)
    adj = net.adjacency
    assert len(adj) == len(net) == n
    assert net.ids == [f"n{i}" for i in range(n)]
    for i, row in enumerate(adj):
        assert i not in row, "self-loop"
        assert len(row) == len(set(row)), "duplicate neighbour"
        assert all(0 <= j < n for j in row)
        for j in row:
            assert i in adj[j], "asymmetric link"
    degree_sum = sum(net.degrees())
    assert degree_sum == 2 * net.edge_count
    graph = net.to_networkx()
    assert graph.number_of_edges() == net.edge_count
    expected = expected_edges(name, n)
    if expected is not None:
        assert net.edge_count == expected
    if name in CONNECTED:
        assert net.is_connected()
        assert nx.is_connected(graph)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7])
def test_tiny_networks(name: str, n: int) -> None:
    net = Network.build(name, n, seed=3)
    assert len(net) == n
    if name in CONNECTED:
        assert net.is_connected()
        assert net.edge_count == expected_edges(name, n)


@settings(max_examples=40, deadline=None)
@given(n=sizes)
def test_grid_has_side_ceil_sqrt_n(n: int) -> None:
    side = math.ceil(math.sqrt(n))
    if (side - 1) ** 2 >= n:  # guard against float rounding in the oracle
        side -= 1
    adj = Network.build("grid", n).adjacency
    for i in range(n):
        r, c = divmod(i, side)
        expected = set()
        if c > 0:
            expected.add(i - 1)
        if c + 1 < side and i + 1 < n:
            expected.add(i + 1)
        if r > 0:
            expected.add(i - side)
        if i + side < n:
            expected.add(i + side)
        assert set(adj[i]) == expected, i


@pytest.mark.parametrize("k", [2, 3, 5, 8])
def test_square_grid_matches_networkx(k: int) -> None:
    ours = Network.build("grid", k * k).to_networkx()
    ref = nx.relabel_nodes(
        nx.grid_2d_graph(k, k), {(r, c): f"n{r * k + c}" for r in range(k) for c in range(k)}
    )
    assert {frozenset(e) for e in ours.edges} == {frozenset(e) for e in ref.edges}


def test_ring_and_full_mesh_match_networkx() -> None:
    for n in (3, 10, 50):
        ring = {frozenset(e) for e in Network.build("ring", n).to_networkx().edges}
        cycle = {frozenset((f"n{a}", f"n{b}")) for a, b in nx.cycle_graph(n).edges}
        assert ring == cycle
        mesh = Network.build("full_mesh", n)
        assert mesh.edge_count == nx.complete_graph(n).number_of_edges()
        assert all(len(row) == n - 1 for row in mesh.adjacency)


@pytest.mark.parametrize("n", [3, 4, 10, 100, 500])
def test_scale_free_edge_count_matches_networkx(n: int) -> None:
    ours = Network.build("scale_free", n, seed=1)
    ref = nx.barabasi_albert_graph(n, 2, seed=1)
    assert ours.edge_count == ref.number_of_edges()
    assert min(ours.degrees()) >= 1
    assert ours.is_connected()


@pytest.mark.parametrize("n", [6, 10, 100, 500])
def test_small_world_edge_count_matches_networkx(n: int) -> None:
    ours = Network.build("small_world", n, seed=1)
    ref = nx.connected_watts_strogatz_graph(n, 4, 0.3, seed=1)
    assert ours.edge_count == ref.number_of_edges() == 2 * n


# -- degree distributions ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scale_free_degree_distribution_is_heavy_tailed(seed: int) -> None:
    n = 2000
    ba = Network.build("scale_free", n, seed=seed)
    degrees = ba.degrees()
    median = statistics.median(degrees)
    assert median <= 4
    assert max(degrees) >= 10 * median
    # hubs: a few nodes far above the mean
    mean = sum(degrees) / n
    assert sum(d >= 5 * mean for d in degrees) >= 3

    # an Erdős–Rényi graph with the same mean degree has no such tail
    p = mean / (n - 1)
    er = topology.erdos_renyi(n, random.Random(seed), p=p)
    er_degrees = [len(row) for row in er]
    er_median = statistics.median(er_degrees)
    assert abs(sum(er_degrees) / n - mean) < 0.5
    assert max(er_degrees) < 5 * er_median
    assert max(degrees) > 3 * max(er_degrees)

    # networkx's reference generator agrees on size and on the shape of the tail
    ref = nx.barabasi_albert_graph(n, 2, seed=seed)
    ref_degrees = [d for _, d in ref.degree()]
    assert ref.number_of_edges() == ba.edge_count
    assert statistics.median(ref_degrees) == pytest.approx(median, abs=1)
    assert max(ref_degrees) >= 10 * statistics.median(ref_degrees)
    assert 0.4 < max(degrees) / max(ref_degrees) < 2.5


def test_preferential_attachment_favours_early_nodes() -> None:
    # the earliest nodes have had the longest time to collect links
    degrees = Network.build("scale_free", 2000, seed=5).degrees()
    assert statistics.mean(degrees[:20]) > 4 * statistics.mean(degrees[-1000:])


# -- seeding -----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(NAMES), n=sizes, seed=seeds)
def test_same_seed_gives_identical_adjacency(name: str, n: int, seed: int) -> None:
    a = Network.build(name, n, seed=seed)
    b = Network.build(name, n, seed=seed)
    c = Network.build(name, n, rng=random.Random(seed))
    assert a.adjacency == b.adjacency == c.adjacency


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(RANDOMIZED), n=st.integers(60, 120), a=seeds, b=seeds)
def test_different_seeds_give_different_graphs(name: str, n: int, a: int, b: int) -> None:
    if a == b:
        return
    assert Network.build(name, n, seed=a).adjacency != Network.build(name, n, seed=b).adjacency


def test_topology_generation_uses_only_the_given_rng() -> None:
    random.seed(0)
    first = Network.build("small_world", 80, seed=9).adjacency
    random.seed(12345)
    assert Network.build("small_world", 80, seed=9).adjacency == first


# -- names and errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("small-world", "small_world"),
        ("SmallWorld", "small_world"),
        ("mesh", "full_mesh"),
        ("scalefree", "scale_free"),
        ("erdos_renyi", "random"),
        ("lattice", "grid"),
        (" Ring ", "ring"),
    ],
)
def test_topology_aliases(alias: str, name: str) -> None:
    assert Network.build(alias, 10, seed=1).topology == name


def test_unknown_topology_and_bad_sizes() -> None:
    with pytest.raises(UnknownName, match="hexagon"):
        Network.build("hexagon", 10)
    with pytest.raises(InvalidValue):
        Network.build("ring", 0)
    with pytest.raises(InvalidValue):
        topology.watts_strogatz(10, random.Random(1), p=1.5)
    with pytest.raises(InvalidValue):
        topology.watts_strogatz(10, random.Random(1), k=1)
    with pytest.raises(InvalidValue):
        topology.barabasi_albert(10, random.Random(1), m=0)
    with pytest.raises(InvalidValue):
        topology.erdos_renyi(10, random.Random(1), p=-0.1)


def test_generator_parameters_are_honoured() -> None:
    ws = topology.watts_strogatz(40, random.Random(1), k=6, p=0.0)
    assert all(len(row) == 6 for row in ws)  # p = 0: the plain lattice
    ba = topology.barabasi_albert(50, random.Random(1), m=3)
    assert sum(map(len, ba)) // 2 == 3 + 3 * (50 - 4)
    assert topology.erdos_renyi(30, random.Random(1), p=1.0) == topology.full_mesh(30)
    assert topology.erdos_renyi(30, random.Random(1), p=0.0) == [[] for _ in range(30)]
    assert not topology.is_connected(topology.erdos_renyi(30, random.Random(1), p=0.0))


def test_small_world_redraws_until_connected() -> None:
    # a k = 2 lattice rewired with p = 0.9 is usually disconnected; the default redraws
    drawn = [
        topology.watts_strogatz(40, random.Random(s), k=2, p=0.9, connected=False)
        for s in range(10)
    ]
    assert not all(topology.is_connected(adj) for adj in drawn)
    for s in range(10):
        adj = topology.watts_strogatz(40, random.Random(s), k=2, p=0.9)
        assert topology.is_connected(adj)
        assert sum(map(len, adj)) // 2 == 40
