"""Parsing Python that may be a fragment: a snippet that starts inside a function, Python 2
code, a last statement cut short.

:func:`parse_fragment` tries the text as it is, then with Python 2 lines converted
(``print x``, ``exec code in env``, ``except E, e:``, ``0777``), dropping a few lines at
the start and the end, dedenting, or putting ``if True:`` lines in front of a fragment that
starts deeper than it ends, and keeps the line numbers. :func:`repair_fragment` turns the
result back into a file that parses, for tools that read files.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Sequence

import msgspec

__all__ = ["Fragment", "parse_fragment", "py3_line", "repair_fragment"]


class Fragment(msgspec.Struct, frozen=True):
    """A parsed file or fragment.

    Attributes:
        tree: the syntax tree.
        offset: add it to the tree's line numbers to get the file's.
        first: first line of the file that is in the tree.
        last: last line of the file that is in the tree.
        converted: Python 2 lines had to be converted.
    """

    tree: ast.Module
    offset: int
    first: int
    last: int
    converted: bool = False


_PY2_PRINT = re.compile(r"^(\s*)print\s+(?![\s(=])(.+?)\s*$")
_PY2_PRINT_BARE = re.compile(r"^(\s*)print\s*$")
_PY2_EXCEPT = re.compile(r"^(\s*except\s+[\w.()\s,]+?)\s*,\s*(\w+)\s*:")
_PY2_EXEC = re.compile(r"^(\s*)exec\s+(?!\()(.+?)(?:\s+in\s+(.+?))?\s*$")
_PY2_OCTAL = re.compile(r"(?<![\w.\\])0(\d+)(?![\w.])")


def py3_line(line: str) -> str:
    """One line of Python 2 as Python 3 (the constructs a snippet commonly has)."""
    line = _PY2_PRINT_BARE.sub(r"\1print()", line)
    line = _PY2_PRINT.sub(r"\1print(\2)", line)
    line = _PY2_EXEC.sub(lambda m: f"{m[1]}exec({m[2]}{', ' + m[3] if m[3] else ''})", line)
    line = _PY2_EXCEPT.sub(r"\1 as \2:", line)
    line = _PY2_OCTAL.sub(r"0o\1", line)
    return line.replace("<>", "!=")


def _openers(lines: Sequence[str]) -> list[str]:
    """``if True:`` lines that make a fragment starting deep inside blocks parse."""
    levels = [len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()]
    if not levels:
        return []
    first = levels[0]
    below = sorted({lv for lv in levels if lv < first})
    return [" " * lv + "if True:" for lv in below]


def repair_fragment(text: str) -> tuple[str, int] | None:
    """A fragment rewritten so that it parses as a file: the tree's lines in place (Python
    2 lines converted), lines it had to leave out commented, the ``if True:`` lines it
    needed in front. Returns the text and how many lines were put in front, or None."""
    parsed = parse_fragment(text)
    if parsed is None:
        return None
    raw = text.splitlines()
    pre = max(0, -parsed.offset + parsed.first - 1)
    body = [py3_line(ln) for ln in raw] if parsed.converted else list(raw)
    inside = body[parsed.first - 1 : parsed.last]
    head = _openers(inside) if pre else []
    floor = min((len(ln) - len(ln.lstrip()) for ln in head + inside if ln.strip()), default=0)
    lines: list[str] = []
    for number, line in enumerate(body, start=1):
        if not parsed.first <= number <= parsed.last:
            lines.append("# " + raw[number - 1])
        elif line[:floor].isspace() or not floor:
            lines.append(line[floor:])  # dedented, as the tree saw it
        else:
            lines.append(line.lstrip())
    head = [h[floor:] for h in head]
    fixed = "\n".join(head + lines) + "\n"
    try:
        ast.parse(fixed)
    except (SyntaxError, ValueError):
        return None
    return fixed, len(head)


def parse_fragment(text: str) -> Fragment | None:
    """Parse code that may be a fragment (None when nothing parses)."""
    raw = text.splitlines()
    for convert in (False, True):
        lines = [py3_line(ln) for ln in raw] if convert else raw
        for tail in range(min(4, len(lines))):
            for head in range(min(6, len(lines))):
                body = lines[head : len(lines) - tail]
                if not any(ln.strip() for ln in body):
                    continue
                for opened in (False, True):
                    pre = _openers(body) if opened else []
                    if opened and not pre:
                        continue
                    source = textwrap.dedent("\n".join(pre + body))
                    try:
                        tree = ast.parse(source)
                    except (SyntaxError, ValueError):
                        continue
                    return Fragment(tree, head - len(pre), head + 1, len(lines) - tail, convert)
    return None


# -- the walk ----------------------------------------------------------------------------
