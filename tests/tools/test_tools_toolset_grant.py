"""ToolSet name resolution and ToolGrant permissions: intersections, never unions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smesh.errors import UnknownName, UsageError
from smesh.testing.tools import ScriptedTool
from smesh.tools import ToolGrant, ToolSet

NAMES = ["read", "grep", "send", "pay", "sql", "run"]


def _set(*names: str) -> ToolSet:
    return ToolSet(ScriptedTool(n) for n in names)


def test_a_toolset_resolves_names_in_order() -> None:
    tools = ToolSet([_set("read", "grep"), ScriptedTool("send")])
    assert tools.names == ("read", "grep", "send")
    assert "grep" in tools and "pay" not in tools
    assert tools["send"].name == "send" and tools.get("pay") is None
    assert [s.name for s in tools.specs()] == ["read", "grep", "send"]
    assert tools.specs() is tools.specs()
    assert len(tools) == 3 and bool(tools) and not ToolSet()
    with pytest.raises(UnknownName, match="no tool named 'pay'"):
        tools["pay"]
    assert "read" in repr(tools)


def test_duplicate_names_and_non_tools_are_refused() -> None:
    with pytest.raises(UsageError, match="two tools are named 'read'"):
        ToolSet([ScriptedTool("read"), ScriptedTool("read")])
    with pytest.raises(UsageError, match="not a tool"):
        ToolSet([lambda: 1])  # type: ignore[list-item]


def test_grant_semantics() -> None:
    agent = _set("read", "grep", "send")
    assert ToolGrant.of(None).apply(agent) is agent  # the task does not restrict
    assert ToolGrant.of([]).apply(agent).names == ()  # the task allows nothing
    assert ToolGrant.of(["grep", "pay"]).apply(agent).names == ("grep",)
    parent = ToolGrant.of(["read", "grep"])
    assert parent.narrow(None) == parent  # a subtask naming nothing inherits, not "all"
    assert parent.narrow(["grep", "send"]) == ToolGrant.of(["grep"])
    assert ToolGrant.of(None).narrow(["send"]) == ToolGrant.of(["send"])
    assert parent.permits("read") and not parent.permits("send")
    assert ToolGrant.of(None).permits("anything")
    with pytest.raises(UsageError):
        ToolGrant.of("read")


grants = st.one_of(st.none(), st.lists(st.sampled_from(NAMES), unique=True))


@settings(max_examples=300, derandomize=True)
@given(
    agent=st.lists(st.sampled_from(NAMES), unique=True),
    task=grants,
    chain=st.lists(grants, max_size=5),
)
def test_no_chain_of_subtasks_ever_widens_what_a_task_was_given(
    agent: list[str], task: list[str] | None, chain: list[list[str] | None]
) -> None:
    tools = _set(*agent)
    grant = ToolGrant.of(task)
    usable = set(grant.apply(tools).names)
    assert usable <= set(agent)
    if task is not None:
        assert usable == set(agent) & set(task)
    for requested in chain:
        child = grant.narrow(requested)
        child_usable = set(child.apply(tools).names)
        assert child_usable <= usable  # never more than the parent
        if grant.allowed is not None:
            assert child.allowed is not None and child.allowed <= grant.allowed
        if requested is not None:
            assert child_usable <= set(requested)
        grant, usable = child, child_usable
