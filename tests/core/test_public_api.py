"""The public names: ``smesh/__init__.py`` lists its lazy names three times (the lazy table,
``__all__`` and the ``TYPE_CHECKING`` imports); they must agree, and every public name of
every module must import."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import smesh
import smesh.errors

INIT = Path(smesh.__file__)


def _tree() -> ast.Module:
    return ast.parse(INIT.read_text(encoding="utf-8"))


def _type_checking_imports() -> dict[str, str]:
    """name -> module of the imports under ``if TYPE_CHECKING:``."""
    out: dict[str, str] = {}
    for node in _tree().body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module, ast.unparse(stmt)
                for alias in stmt.names:
                    out[alias.asname or alias.name] = stmt.module
    return out


def _eager_imports() -> set[str]:
    """Names imported at module level (outside TYPE_CHECKING)."""
    names: set[str] = set()
    for node in _tree().body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("smesh"):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _lazy_table() -> dict[str, str]:
    """The lazy table, evaluated from the source (it is built from literals only)."""
    for node in _tree().body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets
        ):
            table = eval(  # only literals and dict.fromkeys: see the assertion below
                compile(ast.Expression(node.value), str(INIT), "eval"),
                {"__builtins__": {}, "dict": dict},
            )
            assert isinstance(table, dict)
            return table
    raise AssertionError("no lazy table in smesh/__init__.py")


def test_lazy_names_type_checking_imports_and_all_agree() -> None:
    lazy = _lazy_table()
    assert lazy == _type_checking_imports()
    exported = list(smesh.__all__)
    assert len(exported) == len(set(exported)), "duplicates in smesh.__all__"
    assert set(exported) == (_eager_imports() - {"TYPE_CHECKING", "Any"}) | set(lazy)
    assert not set(lazy) & _eager_imports()


def test_every_error_is_exported_at_the_top() -> None:
    assert set(smesh.errors.__all__) <= set(smesh.__all__)
    for name in smesh.errors.__all__:
        error = getattr(smesh, name)
        assert issubclass(error, smesh.SmeshError), name
        assert name in smesh.errors.__doc__, f"{name} is missing from the tree in errors.py"


def test_import_smesh_stays_lazy_and_every_public_name_resolves() -> None:
    lazy = _lazy_table()
    script = (
        "import sys, importlib, smesh\n"
        f"lazy = {lazy!r}\n"
        "early = sorted({m for m in lazy.values() if m in sys.modules})\n"
        "assert not early, f'imported by import smesh: {early}'\n"
        "for name in smesh.__all__:\n"
        "    value = getattr(smesh, name)\n"
        "    if name in lazy:\n"
        "        assert value is getattr(importlib.import_module(lazy[name]), name), name\n"
        "try:\n"
        "    smesh.NoSuchName\n"
        "except AttributeError:\n"
        "    print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# optional extras whose absence makes a module unimportable by design
_OPTIONAL = {"zenoh", "xllamacpp", "matplotlib", "cryptography", "bandit"}


def _modules() -> list[str]:
    names = (info.name for info in pkgutil.walk_packages(smesh.__path__, prefix="smesh."))
    return sorted(n for n in names if n != "smesh.__main__")  # that one runs the CLI


@pytest.mark.parametrize("name", _modules())
def test_every_name_in_a_modules_all_imports(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
        if exc.name and exc.name.split(".")[0] in _OPTIONAL:
            pytest.skip(f"needs the optional {exc.name}")
        raise
    for public in getattr(module, "__all__", ()):
        assert hasattr(module, public), f"{name}.__all__ names {public!r}, which is not there"
