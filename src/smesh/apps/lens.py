"""Lenses: the points of view of the scanning agents of ``review`` and ``swarm``.

A lens is a review category (security, style, ...) or a vulnerability specialty
(injection, xss, ...). It gives its agents their role and focus, the languages they are
suited to, and, for a specialty, the CWE ids it reports. A lens is also its agents'
independence group: copies of one lens are one voice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from smesh.errors import UsageError

__all__ = ["CWE_ALIASES", "Lens", "cwe_label", "lens_agents"]

#: CWEs that name the same weakness for our purposes, mapped to one canonical id, so that
#: an analyzer's CWE-259 (hard-coded password) meets a specialist's CWE-798
CWE_ALIASES: dict[int, int] = {
    259: 798,
    321: 798,
    95: 94,
    77: 78,
    328: 327,
    916: 327,
    23: 22,
    73: 22,
    338: 330,
    312: 798,
}


def cwe_label(cwe: int) -> str:
    """The finding label of a CWE id, after folding aliases."""
    return f"CWE-{CWE_ALIASES.get(cwe, cwe)}"


class Lens(msgspec.Struct, frozen=True, kw_only=True):
    """A point of view: a review category or a vulnerability specialty.

    Attributes:
        name: the category or specialty (also the agents' independence group).
        role: the system prompt of agents with this lens.
        focus: what to look for, in a few words.
        cwes: for a specialty, the CWE ids it reports (empty for review categories).
        affinity: language -> affinity for scanning files in it.
        default_affinity: affinity for languages not listed.
    """

    name: str
    role: str
    focus: str
    cwes: tuple[int, ...] = ()
    affinity: dict[str, float] = {}
    default_affinity: float = 0.0

    def affinity_for(self, language: str) -> float:
        """How suited this lens is to files in ``language``."""
        return self.affinity.get(language, self.default_affinity)

    def label_of(self, item: Mapping[str, Any]) -> str | None:
        """The finding label of one reported item (None if it is outside this lens)."""
        if not self.cwes:
            return self.name
        cwe = item.get("cwe")
        return cwe_label(cwe) if isinstance(cwe, int) and cwe in self.cwes else None


def lens_agents(
    names: Sequence[str], catalog: Mapping[str, Lens], *, what: str, allow_none: bool
) -> list[tuple[str, Lens]]:
    """Agent ids and lenses for the requested lens names.

    A name given once is one agent with that id; a name given twice is two copies,
    ``security-1`` and ``security-2``.

    Args:
        names: lens names, in order.
        catalog: the lenses to choose from.
        what: what a lens is called in the error message (``reviewer``, ``specialist``).
        allow_none: whether an empty request is allowed.

    Raises:
        UsageError: an unknown name, or no name at all when that is not allowed.
    """
    unknown = [n for n in names if n not in catalog]
    if unknown or (not names and not allow_none):
        raise UsageError(
            f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(catalog)}"
        )
    seen: dict[str, int] = {}
    out: list[tuple[str, Lens]] = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        copies = names.count(name)
        out.append((name if copies == 1 else f"{name}-{seen[name]}", catalog[name]))
    return out
