"""What the LLM lenses are asked, and how their answers are read.

Every prompt starts with the same text for a region of a file (its numbered lines), so
that every lens and every judge asking about that region shares the prefix and the model
server reads it once (llama.cpp keeps it in the slot's prompt cache). Only what follows
differs: one focused question about one line, with the evidence the cheap analysis found
(the path a value came along). Answers are JSON, reason first (the small embedded model
judges better when it has to explain itself before it commits), and a flow answer must
name the line the data comes from, one of the lines on the path: an answer that points
nowhere is not evidence.
"""

from __future__ import annotations

from typing import Any

import msgspec

from smesh.apps.files import Chunk
from smesh.apps.lens import Lens
from smesh.apps.plan import Check
from smesh.apps.sinks import SINKS

__all__ = ["Answer", "ask_prompt", "read_answer", "region_prefix", "schema_for"]

#: one system prompt for every lens of an app: a different one would break the shared prefix
SWARM_ROLE = "You are an application security expert. You trace where data comes from."
REVIEW_ROLE = "You are a senior code reviewer. You report only problems the code really has."
SEVERITY = {
    "command": "high",
    "code": "high",
    "sql": "high",
    "deserialize": "high",
    "ldap": "high",
    "xpath": "high",
    "path": "high",
    "html": "high",
    "url": "high",
    "redirect": "medium",
    "xml": "medium",
    "hash": "medium",
    "cipher": "medium",
    "random": "medium",
    "secret": "medium",
    "analyzer": "medium",
    "performance": "medium",
    "style": "low",
    "documentation": "low",
}


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    """A lens's answer about one check.

    Attributes:
        yes: it confirms the problem.
        valid: the answer was well formed and pointed where it had to.
        reason: its one sentence.
        source_line: the line it named as the data's source (flow checks), else 0.
    """

    yes: bool
    valid: bool
    reason: str
    source_line: int = 0


def region_prefix(region: Chunk) -> str:
    """The shared start of every prompt about ``region``: its lines, numbered (blank ones
    left out: a number costs the small model three tokens and says nothing there)."""
    lines = [
        f"{region.start_line + i} | {text}"
        for i, text in enumerate(region.text.splitlines())
        if text.strip()
    ]
    head = f"File {region.path} ({region.language}), lines {region.start_line}-{region.end_line}:"
    return head + "\n" + "\n".join(lines) + "\n\n"


def _path_text(check: Check, region: Chunk) -> str:
    """The path in few words: the region shows the lines it covers, so only the steps
    outside it carry their code."""
    steps = []
    for s in check.path[:-1] if len(check.path) > 1 else check.path:
        inside = region.start_line <= s.line <= region.end_line
        steps.append(f"line {s.line} {s.note}" + ("" if inside else f" `{s.code[:80]}`"))
    return " -> ".join([*steps, f"line {check.line}"])


def _flow(check: Check) -> bool:
    return check.kind in SINKS and SINKS[check.kind].flow


class Question(msgspec.Struct, frozen=True):
    """What is asked about a check: the question, the answers to choose from, and the
    answers that confirm the problem."""

    text: str
    options: tuple[str, ...]
    confirming: frozenset[str]


def _choice(text: str, confirming: str, *others: str) -> Question:
    # the confirming answer first: the cheap evidence already points at a real construct,
    # and the small model's doubts are better spent where the flow is unknown
    return Question(text, (confirming, *others), frozenset({confirming}))


_CONSTRUCTS = {
    "hash": _choice("Which hash does line {line} use?", "MD5 or SHA-1", "SHA-256 or stronger"),
    "cipher": _choice(
        "Which cipher does line {line} use?", "DES, RC4, Blowfish or ECB mode", "AES or stronger"
    ),
    "random": _choice(
        "What does line {line} call?",
        "a function of the random module",
        "a function of the secrets module",
    ),
    "secret": _choice(
        "What is the string on line {line}?",
        "a password, key or token",
        "a file name or setting name",
        "a placeholder",
    ),
    "analyzer": _choice(
        "An analyzer flagged line {line}. What is it?",
        "a real problem",
        "a false alarm",
    ),
    "performance": _choice(
        "How does the work on line {line} grow with the input?",
        "quadratic or worse",
        "linear or constant",
    ),
    "style": _choice(
        "What happens to an error raised there?",
        "it is silently hidden",
        "it is handled or reported",
    ),
    "documentation": _choice(
        "Does that code say what it does (a docstring or comment)?",
        "no",
        "yes",
    ),
}


def question_for(check: Check) -> Question:
    """The question about ``check``."""
    if _flow(check):
        what = SINKS[check.kind].what
        return _choice(
            f"Follow the path back from line {check.line}: what reaches {what}?",
            "data the caller controls",
            "fixed text",
            "escaped or checked data",
        )
    found = _CONSTRUCTS.get(check.kind, _CONSTRUCTS["analyzer"])
    return Question(found.text.format(line=check.line), found.options, found.confirming)


def ask_prompt(region: Chunk, check: Check, lens: Lens, *, claim: str = "") -> str:
    """The prompt for one check: the region, then the question (short: every token of
    it is read by a small CPU model).

    Args:
        region: the lines shown.
        check: what is asked about.
        lens: who asks.
        claim: for a judge, what a colleague reported there (judged blind, without the
            others' opinions).
    """
    text = f"{lens.name} check, line {check.line}: it {check.what}.\n"
    if not region.start_line <= check.line <= region.end_line:
        text += f"Line {check.line}: `{check.code[:160]}`\n"
    if claim:
        text += f"Reported as {check.label}: {claim[:200]}\n"
    if _flow(check) and len(check.path) > 1:
        text += f"Path: {_path_text(check, region)}.\n"
    question = question_for(check)
    text += question.text + '\nJSON: "reason", '
    if _flow(check):
        text += f'"source_line" ({" or ".join(map(str, check.candidates()))}), '
    text += f'"answer" ({" / ".join(question.options)}).'
    return region_prefix(region) + text


def schema_for(check: Check) -> dict[str, Any]:
    """The JSON schema of an answer: reason first, then (for a flow) one of the path's
    lines, then one of the question's answers."""
    # a short reason: every token of it is generated on a small CPU
    properties: dict[str, Any] = {"reason": {"type": "string", "maxLength": 60}}
    required = ["reason"]
    if _flow(check):
        properties["source_line"] = {"type": "integer", "enum": check.candidates()}
        required.append("source_line")
    properties["answer"] = {"type": "string", "enum": list(question_for(check).options)}
    required.append("answer")
    return {"type": "object", "properties": properties, "required": required}


def read_answer(parsed: Any, check: Check) -> Answer:
    """Read and validate a reply: it must choose one of the answers, and an answer about
    a flow must name a line on its path."""
    question = question_for(check)
    if not isinstance(parsed, dict) or parsed.get("answer") not in question.options:
        return Answer(yes=False, valid=False, reason="no usable answer")
    reason = " ".join(str(parsed.get("reason", "")).split())[:200]
    yes = parsed["answer"] in question.confirming
    if not _flow(check):
        return Answer(yes=yes, valid=True, reason=reason or str(parsed["answer"]))
    source = parsed.get("source_line")
    if not isinstance(source, int) or source not in check.candidates():
        return Answer(yes=False, valid=False, reason=reason or "it named no line on the path")
    return Answer(yes=yes, valid=True, reason=reason or str(parsed["answer"]), source_line=source)


def severity_of(check: Check) -> str:
    """The severity a confirmed check is reported with."""
    return SEVERITY.get(check.kind, "medium")


def message_of(check: Check, answer: Answer) -> str:
    """The message a confirmed check is reported with."""
    text = f"line {check.line} {check.what}"
    if answer.source_line and answer.source_line != check.line:
        text += f"; the data comes from line {answer.source_line}"
    if answer.reason:
        text += f" — {answer.reason}"
    return text
