"""Signal: content addressing, validation, reinforcement and renewal."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from smesh.decay import Custom, Exponential, Linear, Sigmoid, Step, parse_decay
from smesh.errors import InvalidSignal, UnknownName, UsageError
from smesh.signal import Signal, compute_address

HEX32 = re.compile(r"[0-9a-f]{32}")


def make(kind: str = "task", payload: Any = None, **kw: Any) -> Signal:
    kw.setdefault("origin", "alice")
    kw.setdefault("created_at", 0.0)
    return Signal.create(kind, {"x": 1} if payload is None else payload, **kw)


# -- addressing --------------------------------------------------------------------------------


def test_address_is_32_lowercase_hex_digits() -> None:
    s = make()
    assert HEX32.fullmatch(s.address)
    assert s.address == compute_address("task", {"x": 1}, "alice")


def test_same_content_from_two_origins_has_one_address() -> None:
    a = make(origin="alice", created_at=1.0, intensity=0.3, ttl=5.0)
    b = make(origin="bob", created_at=99.0, intensity=0.9, ttl=50.0, radius=1)
    assert a.address == b.address


def test_dict_key_order_does_not_change_the_address() -> None:
    a = make(payload={"a": 1, "b": [1, 2, {"y": 2, "z": 3}]})
    b = make(payload={"b": [1, 2, {"z": 3, "y": 2}], "a": 1})
    assert a.address == b.address


def test_list_order_and_values_do_change_the_address() -> None:
    assert make(payload=[1, 2]).address != make(payload=[2, 1]).address
    assert make(payload={"x": 1}).address != make(payload={"x": 2}).address
    assert make(payload="1").address != make(payload=1).address


def test_origin_scope_differs_by_origin() -> None:
    a = make(origin="alice", scope="origin")
    b = make(origin="bob", scope="origin")
    c = make(origin="alice", scope="content")
    assert a.address != b.address
    assert a.address != c.address  # the scope is part of what is hashed
    assert a.address == make(origin="alice", scope="origin", created_at=7.0).address
    assert HEX32.fullmatch(a.address)


def test_different_kinds_differ() -> None:
    assert make("task").address != make("claim").address


def test_length_delimited_encoding_has_no_ambiguity() -> None:
    # naive concatenation would make these collide
    assert compute_address("ab", "c", "o") != compute_address("a", "bc", "o")
    assert compute_address("k", "x", "yz", "origin") != compute_address("k", "xy", "z", "origin")


def test_none_payload_is_allowed() -> None:
    s = Signal.create("ping", origin="o", created_at=0.0)
    assert s.payload is None
    assert HEX32.fullmatch(s.address)


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"intensity": 1.01},
        {"intensity": -0.1},
        {"intensity": math.nan},
        {"confidence": 1.5},
        {"confidence": -0.01},
        {"ttl": 0.0},
        {"ttl": -5.0},
        {"ttl": math.inf},
        {"radius": -1},
        {"radius": 1.5},
        {"radius": 2.0},
        {"radius": True},
        {"radius": "3"},
        {"origin": ""},
        {"origin": None},
        {"scope": "global"},
        {"decay": "exponential"},
        {"decay": None},
    ],
    ids=repr,
)
def test_invalid_values_raise_invalid_signal(kw: dict[str, Any]) -> None:
    with pytest.raises(InvalidSignal):
        make(**kw)


@pytest.mark.parametrize("kind", ["", None, 3])
def test_empty_or_non_string_kind_raises(kind: Any) -> None:
    with pytest.raises(InvalidSignal, match="kind"):
        Signal.create(kind, 1, origin="o", created_at=0.0)


@pytest.mark.parametrize("payload", [object(), {"a": object()}, [1, 1j], print], ids=repr)
def test_non_json_payload_raises_invalid_signal(payload: Any) -> None:
    with pytest.raises(InvalidSignal, match="JSON"):
        make(payload=payload)


def test_invalid_signal_is_a_value_error() -> None:
    assert issubclass(InvalidSignal, UsageError)
    with pytest.raises(ValueError, match="intensity"):
        make(intensity=2.0)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: Exponential(rate=0.0),
        lambda: Exponential(rate=-1.0),
        lambda: Exponential(rate=math.inf),
        lambda: Sigmoid(steepness=0.0),
        Custom,
        lambda: Custom(fn=42),  # type: ignore[arg-type]
    ],
)
def test_bad_decay_parameters_raise(factory: Any) -> None:
    with pytest.raises(InvalidSignal):
        factory()


def test_parse_decay() -> None:
    assert parse_decay("exponential") == Exponential()
    assert parse_decay("exponential:0.2") == Exponential(rate=0.2)
    assert parse_decay(" Linear ") == Linear()
    assert parse_decay("sigmoid:0.5") == Sigmoid(steepness=0.5)
    assert parse_decay("step") == Step()
    custom = Custom(fn=lambda a, t: 1.0)
    assert parse_decay(custom) is custom
    with pytest.raises(UnknownName):
        parse_decay("cubic")
    with pytest.raises(InvalidSignal):
        parse_decay("exponential:fast")
    with pytest.raises(InvalidSignal):
        parse_decay("exponential:-1")


# -- reinforcement and renewal ---------------------------------------------------------------


def test_reinforcement_is_idempotent_per_node() -> None:
    s = make(confidence=0.5)
    once = s.reinforced("bob")
    twice = once.reinforced("bob")
    assert twice is once
    assert once.reinforcers == ("bob",)
    assert once.confidence == pytest.approx(0.5 + 0.1 / 1.5)


def test_origin_cannot_reinforce_its_own_signal() -> None:
    s = make(origin="alice", confidence=0.5)
    assert s.reinforced("alice") is s
    assert s.reinforcers == ()


def test_reinforcement_returns_a_new_value_and_leaves_the_old_one() -> None:
    s = make(confidence=0.5)
    r = s.reinforced("bob")
    assert r is not s
    assert s.reinforcers == ()
    assert s.confidence == 0.5
    assert r.address == s.address


def test_reinforcement_never_resets_age() -> None:
    s = make(created_at=10.0, decay=Exponential(rate=0.1), confidence=0.5)
    r = s.reinforced("bob").reinforced("carol")
    assert r.created_at == 10.0
    assert r.age(30.0) == s.age(30.0) == 20.0
    assert r.decayed(30.0) == s.decayed(30.0)
    assert r.expires_at() == s.expires_at()


def test_renewal_restarts_age() -> None:
    s = make(created_at=10.0, decay=Linear(), ttl=20.0)
    assert s.decayed(25.0) == pytest.approx(0.25)
    r = s.renewed(25.0)
    assert r.created_at == 25.0
    assert r.age(25.0) == 0.0
    assert r.decayed(25.0) == 1.0
    assert r.expires_at() == pytest.approx(s.expires_at() + 15.0)
    assert r.address == s.address


def test_signals_are_immutable() -> None:
    s = make()
    with pytest.raises(AttributeError):
        s.intensity = 0.2  # type: ignore[misc]
