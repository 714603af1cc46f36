"""Cheap evidence about a file, gathered before any model is asked.

For every selected file: its *sites* (the sinks, what reaches each and by which path; see
:mod:`smesh.apps.pyflow` for Python, regular expressions for other languages and for
Python that does not parse) and its *cues* for the review lenses (a loop inside a loop, a
membership test inside a loop, an ``except:`` that swallows everything, a public function
without a docstring). :mod:`smesh.apps.plan` turns this into the questions the LLM lenses
are asked, and skips files that have nothing to ask about.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec

from smesh.apps.files import SourceFile
from smesh.apps.flow import FlowStep
from smesh.apps.pyflow import Site, analyze_python
from smesh.apps.pyfragment import parse_fragment
from smesh.apps.sinks import LINE_SINKS, LINE_SOURCES, SINKS

__all__ = ["Cue", "FileEvidence", "gather", "line_sites", "python_cues"]

#: most cues of one lens in one file: the first few make the point, the rest cost calls
MAX_CUES = 3
#: lines either side of a site that has no enclosing function to show
WINDOW = 15

_LITERAL_ARG = re.compile(r"""^\s*[bBrRuU]{0,2}(['"])(?:(?!\1).)*\1\s*(\)|,)""")


class Cue(msgspec.Struct, frozen=True):
    """Something a review lens should look at.

    Attributes:
        line: where.
        lens: the review category (``performance``, ``style``, ``documentation``).
        what: what it looks like, in a few words.
    """

    line: int
    lens: str
    what: str


class FileEvidence(msgspec.Struct, frozen=True, kw_only=True):
    """The cheap evidence about one file.

    Attributes:
        path: relative path.
        language: its language.
        lines: the file's lines.
        sites: its sinks, in line order.
        scopes: ``(first, last)`` lines of its functions (Python only).
        cues: what the review lenses should look at.
        parsed: the flow analysis ran on a syntax tree (else regular expressions).
    """

    path: str
    language: str
    lines: list[str]
    sites: list[Site]
    scopes: list[tuple[int, int]] = []
    cues: list[Cue] = []
    parsed: bool = False

    def site_at(self, line: int, cwe: int | None = None) -> Site | None:
        """The site on (or spanning) ``line``, of weakness ``cwe`` when given."""
        for site in self.sites:
            if site.line <= line <= site.end_line and (cwe is None or site.cwe == cwe):
                return site
        return None

    def scope_of(self, line: int) -> tuple[int, int]:
        """The innermost function around ``line``, else the whole file (the top level, or
        a file the analysis could not parse)."""
        inner = [s for s in self.scopes if s[0] <= line <= s[1]]
        if inner:
            return min(inner, key=lambda s: s[1] - s[0])
        return 1, max(1, len(self.lines))


def _literal_argument(text: str, start: int) -> bool:
    """Whether the call opening at or after ``start`` passes a plain string literal first."""
    paren = text.find("(", start)
    return (
        paren >= 0
        and _LITERAL_ARG.match(text[paren + 1 :]) is not None
        and not re.search(r"['\"]\s*(%|\+|\.format)", text[paren + 1 :])
    )


def line_sites(lines: Sequence[str], language: str) -> list[Site]:
    """Sites found by regular expression, line by line (no flow beyond the line itself)."""
    patterns = LINE_SINKS.get(language, ())
    sources = LINE_SOURCES.get(language)
    out: dict[tuple[int, str], Site] = {}
    for number, text in enumerate(lines, start=1):
        stripped = text.strip()
        if not stripped or stripped.startswith(("#", "//", "*", "/*")):
            continue
        for kind, pattern in patterns:
            found = pattern.search(text)
            if found is None or (number, kind) in out:
                continue
            spec = SINKS[kind]
            if not spec.flow:
                verdict = "construct"
            elif _literal_argument(text, found.start()):
                verdict = "constant"
            elif sources is not None and sources.search(text):
                verdict = "input"
            else:
                verdict = "unknown"
            step = FlowStep(number, stripped[:200], f"reaches {spec.what}")
            lo, hi = max(1, number - WINDOW), min(len(lines), number + WINDOW)
            out[(number, kind)] = Site(
                line=number,
                end_line=number,
                kind=kind,
                call=found.group(0).strip("( ")[:40],
                arg=stripped[:160],
                verdict=verdict,
                path=(step,),
                scope=(lo, hi),
            )
    return sorted(out.values(), key=lambda s: (s.line, s.kind))


def _shifted(site: Site, by: int) -> Site:
    path = tuple(FlowStep(p.line + by, p.code, p.note) for p in site.path)
    return msgspec.structs.replace(
        site,
        line=site.line + by,
        end_line=site.end_line + by,
        path=path,
        scope=(site.scope[0] + by, site.scope[1] + by),
    )


def local_flow(lines: Sequence[str], site: Site) -> Site:
    """A site of a file that does not parse, with the flow found in the largest window
    of lines before it that does (a Python 2 file's function, say)."""
    for back in (40, 25, 12, 6, 2, 0):
        start = max(1, site.line - back)
        end = min(len(lines), site.end_line + 3)
        text = "\n".join(lines[start - 1 : end])
        fragment = parse_fragment(text)
        if fragment is None or not fragment.first <= site.line - start + 1 <= fragment.last:
            continue
        for found in analyze_python(text, fragment).sites:
            if found.kind == site.kind and found.line + start - 1 == site.line:
                return _shifted(found, start - 1)
    return site


def _loops(tree: ast.AST) -> Iterable[tuple[ast.AST, list[ast.AST]]]:
    """Every node with the loops around it (innermost last), per function."""
    stack: list[tuple[ast.AST, list[ast.AST]]] = [(tree, [])]
    while stack:
        node, loops = stack.pop()
        yield node, loops
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                stack.append((child, []))
            elif isinstance(node, ast.For | ast.While | ast.AsyncFor) and child in getattr(
                node, "body", []
            ):
                stack.append((child, [*loops, node]))
            else:
                stack.append((child, loops))


def python_cues(tree: ast.Module, offset: int) -> list[Cue]:
    """Review cues in a Python syntax tree (line numbers shifted by ``offset``)."""
    cues: list[Cue] = []
    for node, loops in _loops(tree):
        line = int(getattr(node, "lineno", 0)) + offset
        if isinstance(node, ast.For | ast.While | ast.AsyncFor) and loops:
            outer = int(getattr(loops[-1], "lineno", 0)) + offset
            cues.append(Cue(line, "performance", f"a loop inside the loop on line {outer}"))
        elif isinstance(node, ast.Compare) and loops:
            for op, right in zip(node.ops, node.comparators, strict=True):
                if isinstance(op, ast.In | ast.NotIn) and isinstance(
                    right, ast.Name | ast.Attribute
                ):
                    what = f"`{ast.unparse(node)[:60]}` looks through a sequence on every pass"
                    cues.append(Cue(line, "performance", what))
        elif isinstance(node, ast.ExceptHandler):
            broad = node.type is None or (
                isinstance(node.type, ast.Name) and node.type.id in ("Exception", "BaseException")
            )
            quiet = all(
                isinstance(s, ast.Pass | ast.Continue)
                or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
                for s in node.body
            )
            if node.type is None or (broad and quiet):
                what = (
                    "`except:` catches every error"
                    if node.type is None
                    else "an error is swallowed"
                )
                cues.append(Cue(line, "style", what))
        elif (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and not node.name.startswith("_")
            and ast.get_docstring(node) is None
        ):
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            what = f"public {kind} `{node.name}` has no docstring"
            cues.append(Cue(line, "documentation", what))
    cues.sort(key=lambda c: (c.line, c.lens))
    return cues


_JS_CUES = (
    ("style", re.compile(r"catch\s*\(\s*\w*\s*\)\s*\{\s*\}"), "an error is swallowed"),
    (
        "documentation",
        re.compile(r"^\s*(export\s+)?(async\s+)?function\s+[A-Za-z]"),
        "a function with no doc comment",
    ),
)


def _line_cues(lines: Sequence[str]) -> list[Cue]:
    cues: list[Cue] = []
    loops: list[int] = []  # indentation of the loops we are in
    for number, text in enumerate(lines, start=1):
        indent = len(text) - len(text.lstrip())
        while loops and indent <= loops[-1] and text.strip():
            loops.pop()
        if re.match(r"\s*(for|while)\b", text):
            if loops:
                cues.append(Cue(number, "performance", "a loop inside another loop"))
            loops.append(indent)
        for lens, pattern, what in _JS_CUES:
            if pattern.search(text):
                before = "\n".join(lines[max(0, number - 3) : number - 1])
                if lens != "documentation" or "*/" not in before:
                    cues.append(Cue(number, lens, what))
    return cues


def _cap(cues: list[Cue]) -> list[Cue]:
    seen: dict[str, int] = {}
    kept: list[Cue] = []
    for cue in cues:
        seen[cue.lens] = seen.get(cue.lens, 0) + 1
        if seen[cue.lens] <= MAX_CUES:
            kept.append(cue)
    return kept


def gather(root: str | Path, source: SourceFile) -> FileEvidence:
    """The evidence about one selected file under ``root``."""
    base = Path(root)
    path = base if base.is_file() else base / source.path
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        text = ""
    lines = text.splitlines()
    if source.language != "python":
        return FileEvidence(
            path=source.path,
            language=source.language,
            lines=lines,
            sites=line_sites(lines, source.language),
            cues=_cap(_line_cues(lines)),
        )
    fragment = parse_fragment(text)
    analysis = analyze_python(text, fragment)
    if fragment is None or not analysis.parsed:
        return FileEvidence(
            path=source.path,
            language="python",
            lines=lines,
            sites=[local_flow(lines, site) for site in line_sites(lines, "python")],
            cues=_cap(_line_cues(lines)),
        )
    cues = python_cues(fragment.tree, fragment.offset)
    # lines a repaired fragment left out still get the line-by-line look
    covered = {n for s in analysis.sites for n in range(s.line, s.end_line + 1)}
    first, last = analysis.span
    extra = [
        s
        for s in line_sites(lines, "python")
        if (s.line < first or s.line > last) and s.line not in covered
    ]
    return FileEvidence(
        path=source.path,
        language="python",
        lines=lines,
        sites=sorted([*analysis.sites, *extra], key=lambda s: (s.line, s.kind)),
        scopes=analysis.scopes,
        cues=_cap(cues),
        parsed=True,
    )
