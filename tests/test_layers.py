"""The package's layers go one way: a module imports only from its own layer or below.

The layers, lowest first, as drawn at the top of ``docs/design.md``:

========  ================================================================================
core      smesh.signal, decay, field, expiry, trust, node, topology, network, diffusion,
          vectorized, sim, clock, errors, _version: pure, synchronous, deterministic
backends  smesh.backends: LLM, tool and analyzer backends
tools     smesh.tools, smesh.sandbox: tools agents call (functions, MCP, files, SQLite), the
          tool loop, and the sandbox that runs generated code
runtime   smesh.agents: agents, board, team, protocol and the journal
mesh      smesh.mesh: the field replicated over zenoh (a transport for a Field)
apps      smesh.apps, smesh.dashboard, smesh.eval: the demo, review, swarm, code, the mesh peer,
          the web view, the measured evaluation
top       smesh.cli, smesh.bench, smesh.__main__
========  ================================================================================

Two modules sit apart. ``smesh/__init__.py`` is the facade: it re-exports every layer
(lazily), so it may import anything and nothing inside the package imports it.
``smesh.testing`` holds the test doubles: it may import the runtime and below, and no
module in ``src`` imports it (production code must not run on a test double).

Every import counts: module level, inside functions, under ``if TYPE_CHECKING:``, and
``importlib.import_module("smesh....")`` with a literal name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "smesh"

RANKS = {"core": 0, "backends": 1, "tools": 2, "runtime": 3, "mesh": 4, "apps": 5, "top": 6}
CORE = [
    "signal", "decay", "field", "events", "expiry", "trust", "node", "topology", "network",
    "diffusion", "vectorized", "sim", "clock", "errors", "_version",
]  # fmt: skip
#: module prefix -> layer; the longest matching prefix decides
LAYERS: dict[str, str] = {
    **{f"smesh.{name}": "core" for name in CORE},
    "smesh.backends": "backends",
    "smesh.tools": "tools",
    "smesh.sandbox": "tools",
    "smesh.agents": "runtime",
    "smesh.testing": "testing",
    "smesh.mesh": "mesh",
    "smesh.apps": "apps",
    "smesh.dashboard": "apps",
    "smesh.eval": "apps",
    "smesh.cli": "top",
    "smesh.bench": "top",
    "smesh.__main__": "top",
}
FACADE = "smesh"
TESTING = "smesh.testing"

#: Known violations at this branch point, as (importing module, imported module). Each
#: is to be removed when its fix lands; a stale entry fails below, so this list can only
#: shrink. Keep it empty.
KNOWN: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    """The layer of a module (``facade`` for ``smesh`` itself), None when unmapped."""
    if module == FACADE:
        return "facade"
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        layer = LAYERS.get(".".join(parts[:end]))
        if layer is not None:
            return layer
    return None


def imports(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """Every smesh module that ``path`` imports, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target == FACADE:
                # `from smesh import x` may name a submodule (smesh.x) or a facade name
                for alias in node.names:
                    sub = f"{FACADE}.{alias.name}"
                    yield node.lineno, sub if layer_of(sub) is not None else FACADE
            else:
                yield node.lineno, target
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def problem(source: str, target: str) -> str | None:
    """Why ``source`` may not import ``target`` (None: it may)."""
    if target != FACADE and not target.startswith(FACADE + "."):
        return None  # not ours
    mine, theirs = layer_of(source), layer_of(target)
    if mine == "facade":
        return None
    if theirs is None:
        return f"{target} is in no layer (map it in tests/test_layers.py)"
    if theirs == "facade":
        return "imports the facade smesh (import from the defining module)"
    if theirs == "testing":
        return None if mine == "testing" else "imports the test kit smesh.testing"
    assert mine is not None
    rank = RANKS["runtime"] if mine == "testing" else RANKS[mine]
    if RANKS[theirs] > rank:
        return f"{mine} imports {theirs} (upward)"
    return None


def violations() -> list[tuple[str, str, str]]:
    """``(file:line, "source -> target", why)`` for every import against the flow."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        for line, target in imports(path, source):
            why = problem(source, target)
            if why is not None:
                where = f"{path.relative_to(SRC.parent)}:{line}"
                found.append((where, f"{source} -> {target}", why))
    return found


def test_every_module_is_in_a_layer() -> None:
    unmapped = [
        str(path.relative_to(SRC.parent))
        for path in sorted(PACKAGE.rglob("*.py"))
        if layer_of(module_name(path)) is None
    ]
    assert not unmapped, "modules in no layer (add them to LAYERS): " + ", ".join(unmapped)


def test_imports_go_one_way() -> None:
    bad = [v for v in violations() if tuple(v[1].split(" -> ")) not in KNOWN]
    assert not bad, "imports against the layers:\n" + "\n".join(
        f"  {where}: {what}: {why}" for where, what, why in bad
    )


def test_the_known_violations_still_exist() -> None:
    # once a fix lands, its entry must go: the allow-list only shrinks
    seen = {tuple(what.split(" -> ")) for _, what, _ in violations()}
    stale = sorted(KNOWN - seen)
    assert not stale, f"fixed, remove from KNOWN: {stale}"


def test_the_mesh_is_a_transport_for_a_field() -> None:
    # issue 9: smesh.mesh imports nothing from the runtime, the apps or the CLI
    for path in sorted((PACKAGE / "mesh").rglob("*.py")):
        source = module_name(path)
        for line, target in imports(path, source):
            assert layer_of(target) not in ("runtime", "apps", "top", "testing"), (
                f"{path.relative_to(SRC.parent)}:{line} imports {target}"
            )


@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        ("smesh.field", "smesh.signal", True),
        ("smesh.field", "smesh.agents.team", False),  # core -> runtime
        ("smesh.mesh.field", "smesh.field", True),
        ("smesh.mesh.field", "smesh.apps.demo", False),  # mesh -> apps
        ("smesh.apps.peer", "smesh.mesh", True),
        ("smesh.agents.board", "smesh.agents.journal", True),  # both runtime
        ("smesh.backends.base", "smesh.agents", False),  # backends -> runtime
        ("smesh.cli.mesh", "smesh.apps.peer", True),
        ("smesh.apps.demo", "smesh.testing", False),  # production on a test double
        ("smesh.testing.tools", "smesh.backends.base", True),
        ("smesh.testing.tools", "smesh.mesh", False),
        ("smesh.agents.agent", "smesh", False),  # through the facade
        ("smesh", "smesh.agents", True),  # the facade re-exports every layer
        ("smesh.field", "smesh.nowhere", False),  # unmapped
        ("smesh.field", "msgspec", True),
    ],
)
def test_the_rule(source: str, target: str, allowed: bool) -> None:
    assert (problem(source, target) is None) is allowed


def test_imports_are_read_everywhere(tmp_path: Path) -> None:
    # nested, TYPE_CHECKING-only, relative and importlib imports are all seen
    path = PACKAGE / "mesh" / "example.py"  # never written: parsed from tmp below
    text = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from smesh.agents import Team\n"
        "def f():\n"
        "    import smesh.apps.demo\n"
        "    importlib.import_module('smesh.cli')\n"
        "from . import wire\n"
        "from ..apps import peer\n"
        "from smesh import sandbox, Field\n"
    )
    fake = tmp_path / "example.py"
    fake.write_text(text)
    seen = sorted(imports(fake, module_name(path)))
    assert seen == [
        (1, "typing"),
        (3, "smesh.agents"),
        (5, "smesh.apps.demo"),
        (6, "smesh.cli"),
        (7, "smesh.mesh"),
        (8, "smesh.apps"),
        (9, "smesh"),
        (9, "smesh.sandbox"),
    ]
    assert [problem("smesh.mesh.example", target) for _, target in seen[2:4]] == [
        "mesh imports apps (upward)",
        "mesh imports top (upward)",
    ]


# -- no reach-ins: a module uses another module's objects through their public or protected
# (documented, for subclasses through ``self``) members, never ``other._private``

#: Known reach-ins at this branch point, as (file, expression); to be emptied like KNOWN.
KNOWN_REACH_INS: set[tuple[str, str]] = set()
ROOT = SRC.parent
#: underscore names that are public API elsewhere (namedtuple methods, os/sys escapes)
PUBLIC_UNDERSCORE = {
    "_asdict", "_exit", "_field_defaults", "_fields", "_getframe", "_make", "_replace",
}  # fmt: skip


def reach_ins(path: Path) -> Iterator[tuple[int, str]]:
    """``obj._name`` where ``obj`` is not ``self``, ``cls`` or ``super()`` and this module
    defines no ``_name`` of its own (so it must be another module's private member)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            own.add(node.value)  # __slots__ entries
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__") or node.attr in own or node.attr in PUBLIC_UNDERSCORE:
            continue
        value = node.value
        if isinstance(value, ast.Name) and value.id in ("self", "cls"):
            continue
        if isinstance(value, ast.Call) and ast.unparse(value.func) == "super":
            continue
        yield node.lineno, ast.unparse(node)


def test_no_module_reaches_into_another_modules_private_state() -> None:
    found = [
        (str(path.relative_to(ROOT)), line, expr)
        for top in (PACKAGE, ROOT / "tests")
        for path in sorted(top.rglob("*.py"))
        for line, expr in reach_ins(path)
    ]
    bad = [f"  {f}:{line}: {expr}" for f, line, expr in found if (f, expr) not in KNOWN_REACH_INS]
    assert not bad, "private members of another module (add a protected hook):\n" + "\n".join(bad)
    stale = KNOWN_REACH_INS - {(f, expr) for f, _, expr in found}
    assert not stale, f"fixed, remove from KNOWN_REACH_INS: {sorted(stale)}"


def test_reach_ins_are_found(tmp_path: Path) -> None:
    fake = tmp_path / "example.py"
    fake.write_text(
        "class Mine:\n"
        "    def __init__(self):\n"
        "        self._own = 1\n"
        "def f(field, other):\n"
        "    field._live.clear()\n"  # another module's
        "    other._own += 1\n"  # defined here: fine
        "    super()._x\n"
        "    return field.__class__\n"
    )
    assert list(reach_ins(fake)) == [(5, "field._live")]
