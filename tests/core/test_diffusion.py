"""Per-hop diffusion over a network (NetworkField)."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from smesh.clock import VirtualClock
from smesh.decay import Linear, Step
from smesh.diffusion import DAMPENING_DEFAULT, DAMPENING_TRUSTED, NetworkField
from smesh.errors import InvalidSignal, SignalNotFound
from smesh.field import Field
from smesh.network import Network

SEEDS = [1, 2, 3, 4, 5]


def path(n: int) -> Network:
    """p0 - p1 - ... - p{n-1}."""
    return Network.from_networkx(nx.relabel_nodes(nx.path_graph(n), lambda i: f"p{i}"))


def run_ticks(field: NetworkField, clock: VirtualClock, ticks: int) -> None:
    for _ in range(ticks):
        field.tick(clock.advance(0.1))


@pytest.mark.parametrize("seed", SEEDS)
def test_a_fresh_signal_spreads_over_a_50_node_small_world(seed: int) -> None:
    network = Network.build("small_world", 50, seed=seed)
    clock = VirtualClock()
    field = NetworkField(network, clock, seed=seed)
    s = field.emit("task", {"id": 1}, origin="n0")
    assert field.coverage(s.address) == pytest.approx(1 / 50)
    coverage: list[float] = []
    for _ in range(20):
        field.tick(clock.advance(0.1))
        spread = field.spread(s.address)
        assert field.coverage(s.address) == pytest.approx(spread.reached / 50)
        coverage.append(field.coverage(s.address))
    assert all(b >= a for a, b in itertools.pairwise(coverage)), coverage
    assert coverage[9] > coverage[0]
    assert coverage[-1] > 0.2
    spread = field.spread(s.address)
    assert spread.max_hops > 1
    assert field.relays == spread.reached - 1
    # hop counts form a BFS-like layering: every reached node has a reached neighbour
    # one hop closer to the emitter
    for i in np.flatnonzero(spread.hops > 0):
        nbr_hops = [spread.hops[j] for j in network.adjacency[i]]
        assert spread.hops[i] - 1 in nbr_hops


def test_gain_shrinks_by_the_dampening_at_every_hop() -> None:
    network = path(6)
    clock = VirtualClock()
    field = NetworkField(network, clock, seed=1)
    s = field.emit("task", 1, origin="p0", decay=Step(), ttl=1000.0, radius=10)
    run_ticks(field, clock, 400)
    spread = field.spread(s.address)
    assert list(spread.hops) == [0, 1, 2, 3, 4, 5]
    np.testing.assert_allclose(spread.gain, [DAMPENING_DEFAULT**h for h in range(6)])


def test_a_node_senses_only_what_reached_it_at_its_local_intensity() -> None:
    network = Network.build("small_world", 50, seed=2)
    clock = VirtualClock()
    field = NetworkField(network, clock, seed=2)
    s = field.emit("task", {"id": 1}, origin="n0")
    field.tick(clock.advance(0.1))
    spread = field.spread(s.address)
    now = clock.now()
    live = field.get(s.address)
    assert live is not None
    effective = live.effective(now)
    reached = [network.ids[i] for i in np.flatnonzero(spread.hops == 1)]
    unreached = [network.ids[i] for i in np.flatnonzero(spread.hops < 0)]
    assert reached
    assert unreached
    for node in unreached:
        assert field.sense(0.0, node=node) == []
        assert field.intensity_at(live, node, now) == 0.0
    for node in reached:
        sensed = field.sense(0.0, node=node)
        assert [x.signal.address for x in sensed] == [s.address]
        assert sensed[0].intensity == pytest.approx(effective * DAMPENING_DEFAULT)
        assert sensed[0].intensity < effective
    origin = field.sense(0.0, node="n0")
    assert origin[0].intensity == pytest.approx(effective)
    # the node's own threshold applies to its local intensity
    assert field.sense(effective * DAMPENING_DEFAULT + 1e-9, node=reached[0]) == []
    assert set(field.holders(s.address)) == {"n0", *reached}
    assert field.holders(s.address, threshold=effective * 0.9) == ["n0"]


def test_radius_bounds_the_hops() -> None:
    network = Network.build("ring", 30)
    clock = VirtualClock()
    field = NetworkField(network, clock, seed=1)
    s = field.emit("task", 1, origin="n0", decay=Step(), ttl=1000.0, radius=2)
    run_ticks(field, clock, 300)
    spread = field.spread(s.address)
    assert spread.max_hops == 2
    assert spread.reached == 5  # n28, n29, n0, n1, n2
    assert field.holders(s.address) == ["n0", "n1", "n2", "n28", "n29"]


def test_radius_zero_never_spreads() -> None:
    network = Network.build("full_mesh", 10)
    clock = VirtualClock()
    field = NetworkField(network, clock, seed=1)
    s = field.emit("task", 1, origin="n3", decay=Step(), ttl=1000.0, radius=0)
    run_ticks(field, clock, 50)
    assert field.spread(s.address).reached == 1
    assert field.relays == 0
    assert field.holders(s.address) == ["n3"]
    assert [x.signal for x in field.sense(0.0, node="n3")] == [field.get(s.address)]
    assert field.sense(0.0, node="n4") == []


def test_zero_strength_edges_carry_nothing() -> None:
    network = Network.build("ring", 6)
    network.set_strength("n0", "n1", 0.0)
    network.set_strength("n0", "n5", 0.0)
    clock = VirtualClock()
    field = NetworkField(network, clock, seed=1)
    s = field.emit("task", 1, origin="n0", decay=Step(), ttl=1000.0)
    run_ticks(field, clock, 200)
    spread = field.spread(s.address)
    assert spread.reached == 1
    assert field.coverage(s.address) == pytest.approx(1 / 6)
    assert field.relays == 0
    assert field.sense(0.0, node="n1") == []


def test_a_zero_strength_edge_does_not_block_the_way_around() -> None:
    # ring of 4: with n0–n1 cut, n1 is reached the long way, at hop 3
    network = Network.build("ring", 4)
    network.set_strength("n0", "n1", 0.0)
    network.set_strength("n2", "n3", 0.5)
    clock = VirtualClock()
    field = NetworkField(network, clock, seed=1)
    s = field.emit("task", 1, origin="n0", decay=Step(), ttl=1000.0, radius=10)
    run_ticks(field, clock, 300)
    spread = field.spread(s.address)
    assert list(spread.hops) == [0, 3, 2, 1]
    np.testing.assert_allclose(spread.gain, [1.0, 0.7**3 * 0.5, 0.7**2 * 0.5, 0.7])


@pytest.mark.parametrize(("trust", "damping"), [(0.9, DAMPENING_TRUSTED), (0.5, DAMPENING_DEFAULT)])
def test_a_sender_that_trusts_the_origin_dampens_less(trust: float, damping: float) -> None:
    network = path(3)
    # p1 relays a signal that p0 emitted
    network.node("p1").trust.set("p0", trust, now=0.0)
    clock = VirtualClock()
    field = NetworkField(network, clock, seed=1)
    s = field.emit("task", 1, origin="p0", at="p1", decay=Step(), ttl=1000.0)
    run_ticks(field, clock, 200)
    spread = field.spread(s.address)
    assert list(spread.hops) == [1, 0, 1]
    assert spread.gain[2] == pytest.approx(damping)
    assert spread.gain[0] == pytest.approx(damping)
    assert DAMPENING_TRUSTED == 0.9
    assert DAMPENING_DEFAULT == 0.7


def test_trust_at_the_origin_applies_to_its_own_first_relay() -> None:
    gains = {}
    for trust in (0.5, 0.8):
        network = path(3)
        network.node("p0").trust.set("p0", trust, now=0.0)
        clock = VirtualClock()
        field = NetworkField(network, clock, seed=3)
        s = field.emit("task", 1, origin="p0", decay=Step(), ttl=1000.0)
        run_ticks(field, clock, 200)
        gains[trust] = field.spread(s.address).gain
    assert gains[0.5][1] == pytest.approx(0.7)
    assert gains[0.8][1] == pytest.approx(0.9)
    # p1 holds the default 0.5 trust in p0: the second hop dampens at 0.7 either way
    assert gains[0.5][2] == pytest.approx(0.7 * 0.7)
    assert gains[0.8][2] == pytest.approx(0.9 * 0.7)


def test_second_hop_uses_the_relaying_nodes_trust() -> None:
    network = path(3)
    network.node("p1").trust.set("p0", 0.95, now=0.0)
    clock = VirtualClock()
    field = NetworkField(network, clock, seed=1)
    s = field.emit("task", 1, origin="p0", decay=Step(), ttl=1000.0)
    run_ticks(field, clock, 300)
    np.testing.assert_allclose(field.spread(s.address).gain, [1.0, 0.7, 0.7 * 0.9])


def test_emitting_at_a_node_outside_the_network_is_rejected_cleanly() -> None:
    field = NetworkField(Network.build("ring", 5), VirtualClock(), seed=1)
    with pytest.raises(InvalidSignal, match="not a node"):
        field.emit("task", 1, origin="stranger")
    with pytest.raises(InvalidSignal):
        field.emit("task", 1, origin="n0", at="nowhere")
    # nothing was half-emitted
    assert len(field) == 0
    assert field.stats().emitted == 0
    ok = field.emit("task", 1, origin="n0")
    assert field.spread(ok.address).reached == 1


def test_an_origin_outside_the_network_may_emit_at_a_member() -> None:
    network = Network.build("ring", 8)
    clock = VirtualClock()
    field = NetworkField(network, clock, seed=1)
    s = field.emit("task", 1, origin="human", at="n4", decay=Step(), ttl=1000.0)
    run_ticks(field, clock, 50)
    spread = field.spread(s.address)
    assert spread.hops[4] == 0
    assert spread.reached > 1


def test_a_second_emitter_spreads_a_settled_signal_from_its_own_position() -> None:
    network = Network.build("ring", 20)
    clock = VirtualClock()
    field = NetworkField(network, clock, seed=1)
    s = field.emit("task", 1, origin="n0", decay=Step(), ttl=1000.0, radius=1)
    run_ticks(field, clock, 100)
    assert field.holders(s.address) == ["n0", "n1", "n19"]
    again = field.emit("task", 1, origin="n10")  # same content: a reinforcement, placed at n10
    assert again.reinforcers == ("n10",)
    assert len(field) == 1
    run_ticks(field, clock, 100)
    assert set(field.holders(s.address)) == {"n0", "n1", "n19", "n9", "n10", "n11"}
    assert field.spread(s.address).hops[10] == 0


def test_expired_signals_free_their_rows() -> None:
    network = Network.build("small_world", 20, seed=1)
    clock = VirtualClock()
    field = NetworkField(network, clock, seed=1)
    for wave in range(5):
        addresses = [
            field.emit("task", (wave, k), origin=f"n{k % 20}", decay=Linear(), ttl=1.0).address
            for k in range(50)
        ]
        run_ticks(field, clock, 11)
        assert len(field) == 0
        for address in addresses:
            with pytest.raises(SignalNotFound):
                field.spread(address)
            with pytest.raises(SignalNotFound):
                field.coverage(address)
            assert field.holders(address) == []
    assert field.stats().expired == 250
    # rows are reused: 50 live at a time fit the initial capacity of 64
    assert field.capacity == 64


def test_withdrawn_and_unknown_signals_have_no_spread() -> None:
    field = NetworkField(Network.build("ring", 5), VirtualClock(), seed=1)
    s = field.emit("task", 1, origin="n0")
    field.withdraw(s.address, by="n0")
    with pytest.raises(SignalNotFound):
        field.spread(s.address)
    with pytest.raises(SignalNotFound):
        field.spread("0" * 32)


def test_many_signals_grow_the_row_store() -> None:
    network = Network.build("ring", 10)
    clock = VirtualClock()
    field = NetworkField(network, clock, seed=1)
    signals = [
        field.emit("task", k, origin=f"n{k % 10}", decay=Step(), ttl=100.0) for k in range(200)
    ]
    run_ticks(field, clock, 3)
    for k, s in enumerate(signals):
        spread = field.spread(s.address)
        assert spread.hops[k % 10] == 0
    assert field.stats().live == 200


def test_network_emit_many_places_each_signal_at_its_origin() -> None:
    network = Network.build("ring", 10)
    field = NetworkField(network, VirtualClock(), seed=1)
    batch = [field.new_signal("task", k, origin=f"n{k}") for k in range(5)]
    batch.append(field.new_signal("task", 0, origin="n7"))  # a duplicate: reinforces
    assert field.emit_many(batch) == 5
    assert len(field) == 5
    assert field.holders(batch[0].address) == ["n0", "n7"]


def test_reinforcement_and_renewal_are_seen_by_diffusion() -> None:
    network = path(2)
    clock = VirtualClock()
    field = NetworkField(network, clock, seed=1)
    s = field.emit("task", 1, origin="p0", confidence=0.5, decay=Step(), ttl=10.0)
    assert field.reinforce(s.address, by="p1")
    clock.set(5.0)
    field.renew(s.address, by="p0")
    assert field.tick(clock.advance(6.0)) == []  # the renewed lease outlives t = 10
    live = field.get(s.address)
    assert live is not None
    assert field.sense(0.0, node="p0")[0].intensity == pytest.approx(live.effective(clock.now()))
    assert len(field.tick(15.0)) == 1


@pytest.mark.parametrize("seed", [11, 12])
def test_same_seed_same_spread(seed: int) -> None:
    def run() -> list[list[int]]:
        network = Network.build("scale_free", 60, seed=seed)
        clock = VirtualClock()
        field = NetworkField(network, clock, seed=seed)
        sigs = [field.emit("task", k, origin=f"n{k * 7}") for k in range(5)]
        run_ticks(field, clock, 10)
        return [field.spread(s.address).hops.tolist() for s in sigs]

    assert run() == run()


def test_ambient_field_reaches_every_node_at_the_signals_intensity() -> None:
    field = Field(VirtualClock())
    s = field.emit("task", 1, origin="a", intensity=0.6)
    for node in ("a", "b", "anyone"):
        sensed = field.sense(0.0, node=node)
        assert sensed[0].signal == s
        assert sensed[0].intensity == pytest.approx(0.6)
