"""Values of a small flow analysis: how tainted a value is, and the path it took.

The analysis (:mod:`smesh.apps.pyflow`) runs over Python code and gives every expression a
:class:`Val`: its *level* (a constant written in the code, something unknown, outside data
such as a parameter or the environment, or input from the person making the request), the
sink kinds it has been made safe for (``shlex.quote`` makes it safe for a shell,
``int()`` for everything), its value when it is a known constant (so ``if 7 * 42 > 200``
can be decided), the contents of a list or dict literal (so ``values[1]`` can be), and the
path of lines the most tainted part came along.

At a sink the value is judged by :func:`verdict`: ``constant``, ``sanitized``, ``unknown``,
``external`` or ``input``. The first two are safe; ``input`` is a complete source-to-sink
path; the others are what a judge has to look at.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import msgspec

from smesh.apps.sinks import ALL_KINDS

__all__ = [
    "CONSTANT",
    "EXTERNAL",
    "INPUT",
    "LEVELS",
    "UNKNOWN",
    "FlowStep",
    "Val",
    "combine",
    "fold_binop",
    "fold_compare",
    "join",
    "verdict",
]

CONSTANT: Final = 0
UNKNOWN: Final = 1
EXTERNAL: Final = 2
INPUT: Final = 3
LEVELS: tuple[str, ...] = ("constant", "unknown", "external", "input")
#: verdicts that need no judge: the value cannot carry an attack
SAFE_VERDICTS = frozenset({"constant", "sanitized"})

_MAX_PATH = 6
_MAX_CONST = 4096  # longest folded string kept; longer ones are just "a constant"


class FlowStep(msgspec.Struct, frozen=True):
    """One line on a value's way to a sink.

    Attributes:
        line: the line (1-based, in the analyzed file).
        code: that line, stripped.
        note: what happens there (``parameter of run()``, ``quoted by shlex.quote``).
    """

    line: int
    code: str
    note: str


class _NoConst:
    """The absence of a known constant value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOCONST"


NOCONST: Final = _NoConst()


class Val:
    """The abstract value of an expression (immutable by convention)."""

    __slots__ = ("clean", "const", "items", "level", "path")

    def __init__(
        self,
        level: int,
        *,
        clean: frozenset[str] | None = None,
        const: object = NOCONST,
        items: tuple[Val, ...] | dict[Any, Val] | None = None,
        path: tuple[FlowStep, ...] = (),
    ) -> None:
        self.level = level
        # a constant is safe everywhere; what it was cleaned for matters only above that
        self.clean = ALL_KINDS if level == CONSTANT else (clean or frozenset())
        self.const = const
        self.items = items
        self.path = path

    def __repr__(self) -> str:
        const = "" if self.const is NOCONST else f" {self.const!r}"
        return f"Val({LEVELS[self.level]}{const}, clean={sorted(self.clean)})"

    @classmethod
    def constant(cls, value: object = NOCONST) -> Val:
        """A constant written in the code (its value, when it is a plain one)."""
        if isinstance(value, str | bytes) and len(value) > _MAX_CONST:
            value = NOCONST
        return cls(CONSTANT, const=value)

    def step(self, step: FlowStep) -> Val:
        """This value, one line further along its path."""
        path = (*self.path, step)
        if len(path) > _MAX_PATH:
            path = (path[0], *path[-(_MAX_PATH - 1) :])
        return Val(self.level, clean=self.clean, const=self.const, items=self.items, path=path)

    def cleaned(self, kinds: Iterable[str], step: FlowStep | None = None) -> Val:
        """This value made safe for ``kinds``."""
        out = Val(
            self.level,
            clean=self.clean | frozenset(kinds),
            const=self.const,
            items=self.items,
            path=self.path,
        )
        return out if step is None or self.level == CONSTANT else out.step(step)

    def with_items(self, items: tuple[Val, ...] | dict[Any, Val] | None) -> Val:
        """A container value holding ``items``."""
        parts = list(items.values()) if isinstance(items, dict) else list(items or ())
        merged = combine(parts) if parts else Val.constant()
        return Val(merged.level, clean=merged.clean, items=items, path=merged.path)

    def elements(self) -> Val:
        """Any one element of this container (all of them joined)."""
        if isinstance(self.items, dict):
            return combine(self.items.values()) if self.items else Val.constant()
        if isinstance(self.items, tuple):
            return combine(self.items) if self.items else Val.constant()
        return Val(self.level, clean=self.clean, path=self.path)


def combine(parts: Iterable[Val]) -> Val:
    """A value built from ``parts`` (a concatenation, a call's arguments): as tainted as
    its most tainted part, safe only for what every part is safe for."""
    values = list(parts)
    if not values:
        return Val(UNKNOWN)
    top = max(values, key=lambda v: v.level)
    clean = ALL_KINDS
    for v in values:
        clean &= v.clean
    return Val(top.level, clean=clean, path=top.path)


def join(a: Val, b: Val) -> Val:
    """A value that is ``a`` on one path and ``b`` on another (after an ``if``)."""
    if a is b:
        return a
    merged = combine((a, b))
    same = a.const is not NOCONST and type(a.const) is type(b.const) and a.const == b.const
    items: tuple[Val, ...] | dict[Any, Val] | None = None
    if isinstance(a.items, tuple) and isinstance(b.items, tuple) and len(a.items) == len(b.items):
        items = tuple(join(x, y) for x, y in zip(a.items, b.items, strict=True))
    elif (
        isinstance(a.items, dict) and isinstance(b.items, dict) and a.items.keys() == b.items.keys()
    ):
        items = {k: join(v, b.items[k]) for k, v in a.items.items()}
    return Val(
        merged.level,
        clean=merged.clean,
        const=a.const if same else NOCONST,
        items=items,
        path=merged.path,
    )


def verdict(value: Val, kind: str) -> str:
    """How a value reaching a sink of ``kind`` stands: ``constant``, ``sanitized``,
    ``unknown``, ``external`` (outside data: a parameter, the environment, a file) or
    ``input`` (the requester's data, unsanitized)."""
    if value.level == CONSTANT:
        return "constant"
    if kind in value.clean:
        return "sanitized"
    return LEVELS[value.level]


# -- folding constants, so that branches on them can be decided ---------------------------

_BINOPS: Mapping[str, Callable[[Any, Any], Any]] = {
    "Add": operator.add,
    "Sub": operator.sub,
    "Mult": operator.mul,
    "Div": operator.truediv,
    "FloorDiv": operator.floordiv,
    "Mod": operator.mod,
    "BitAnd": operator.and_,
    "BitOr": operator.or_,
    "BitXor": operator.xor,
}
_COMPARE: Mapping[str, Callable[[Any, Any], Any]] = {
    "Eq": operator.eq,
    "NotEq": operator.ne,
    "Lt": operator.lt,
    "LtE": operator.le,
    "Gt": operator.gt,
    "GtE": operator.ge,
    "In": lambda a, b: a in b,
    "NotIn": lambda a, b: a not in b,
    "Is": operator.is_,
    "IsNot": operator.is_not,
}
_SCALARS = (int, float, str, bytes, bool, type(None))


def _small(value: object) -> bool:
    if isinstance(value, str | bytes):
        return len(value) <= _MAX_CONST
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) < 10**18
    return isinstance(value, _SCALARS)


def fold_binop(op: str, left: object, right: object) -> object:
    """``left op right`` for plain constants, or NOCONST when it cannot be (safely) known."""
    fn = _BINOPS.get(op)
    if fn is None or not (isinstance(left, _SCALARS) and isinstance(right, _SCALARS)):
        return NOCONST
    if op == "Mult" and (isinstance(left, str | bytes) or isinstance(right, str | bytes)):
        count = right if isinstance(left, str | bytes) else left
        if not isinstance(count, int) or count > 256:
            return NOCONST
    try:
        value = fn(left, right)
    except Exception:  # a folded expression that fails at runtime is simply unknown
        return NOCONST
    return value if _small(value) else NOCONST


def fold_compare(ops: list[str], values: list[object]) -> object:
    """A chained comparison of plain constants (``a < b <= c``), or NOCONST."""
    if any(v is NOCONST for v in values):
        return NOCONST
    result = True
    for op, left, right in zip(ops, values, values[1:], strict=False):
        fn = _COMPARE.get(op)
        if fn is None:
            return NOCONST
        try:
            result = result and bool(fn(left, right))
        except Exception:  # comparing unrelated constants: unknown, not an error
            return NOCONST
    return result
