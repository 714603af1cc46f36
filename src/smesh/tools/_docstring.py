"""Read a Google-style docstring: the description, and one line per argument."""

from __future__ import annotations

import inspect
import re

__all__ = ["parse_docstring"]

_SECTIONS = frozenset(
    {
        "args",
        "arguments",
        "parameters",
        "params",
        "keyword args",
        "keyword arguments",
        "returns",
        "return",
        "yields",
        "raises",
        "example",
        "examples",
        "note",
        "notes",
        "attributes",
        "see also",
        "warning",
        "warnings",
    }
)
_ARG_SECTIONS = frozenset({"args", "arguments", "parameters", "params"})
# "name: text", "name (type): text", "*name: text"
_ARG = re.compile(r"^\*{0,2}(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(\([^)]*\))?\s*:\s*(?P<text>.*)$")


def _section(line: str) -> str | None:
    stripped = line.strip()
    if stripped.endswith(":") and stripped[:-1].strip().lower() in _SECTIONS:
        return stripped[:-1].strip().lower()
    return None


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split ``doc`` into the description and the per-argument descriptions.

    The description is everything before the first section header (``Args:``,
    ``Returns:``, ...), paragraphs kept. Argument lines may wrap onto more-indented lines.
    """
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    arg_indent = -1
    for line in lines:
        header = _section(line)
        if header is not None and (len(line) - len(line.lstrip())) == 0:
            section, current, arg_indent = header, None, -1
            continue
        if section is None:
            description.append(line)
            continue
        if section not in _ARG_SECTIONS or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        match = _ARG.match(line.strip())
        if match and (arg_indent < 0 or indent <= arg_indent):
            arg_indent = indent
            current = match["name"]
            args[current] = match["text"].strip()
        elif current is not None:
            args[current] = f"{args[current]} {line.strip()}".strip()
    text = "\n".join(description).strip()
    # collapse hard-wrapped lines inside a paragraph; keep paragraph breaks
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n\n".join(paragraphs), args
