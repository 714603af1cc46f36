"""Nodes: the participants of a field, each with skills, thresholds and trust."""

from __future__ import annotations

from collections.abc import Mapping

from smesh.errors import InvalidValue
from smesh.trust import TrustModel, TrustTable

__all__ = ["Node"]


class Node:
    """A participant: an agent, a tool, a human, or a simulated peer.

    Args:
        id: unique node id.
        skills: signal kind or task skill -> affinity in [0, 1].
        sense_threshold: minimum effective intensity the node perceives.
        reinforce_threshold: minimum intensity at which it will reinforce a signal.
        trust: its trust table, or the name of a trust model for a fresh one.
    """

    __slots__ = ("id", "reinforce_threshold", "sense_threshold", "skills", "trust")

    def __init__(
        self,
        id: str,
        *,
        skills: Mapping[str, float] | None = None,
        sense_threshold: float = 0.1,
        reinforce_threshold: float = 0.5,
        trust: TrustTable | TrustModel = "additive",
    ) -> None:
        if not isinstance(id, str) or not id:
            raise InvalidValue(f"node id must be a non-empty string, got {id!r}")
        for name, value in (
            ("sense_threshold", sense_threshold),
            ("reinforce_threshold", reinforce_threshold),
        ):
            if not 0.0 <= value <= 1.0:
                raise InvalidValue(f"{name} must be in [0, 1], got {value}", node=id)
        skills = dict(skills or {})
        for skill, affinity in skills.items():
            if not 0.0 <= affinity <= 1.0:
                raise InvalidValue(
                    f"affinity for {skill!r} must be in [0, 1], got {affinity}", node=id
                )
        self.id = id
        self.skills = skills
        self.sense_threshold = sense_threshold
        self.reinforce_threshold = reinforce_threshold
        self.trust = trust if isinstance(trust, TrustTable) else TrustTable(trust)

    def affinity(self, skill: str) -> float:
        """The node's affinity for ``skill`` (0 if it lacks it)."""
        return self.skills.get(skill, 0.0)

    def __repr__(self) -> str:
        return f"Node({self.id!r}, skills={self.skills!r})"
