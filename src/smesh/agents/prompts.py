"""What the default agent says to its backend: the work prompt, the judge prompt and the
judgement schema.

:meth:`Agent.perform <smesh.agents.Agent.perform>` and :meth:`Agent.judge
<smesh.agents.Agent.judge>` build their requests here; override those methods (or pass
functions to :class:`~smesh.agents.FunctionAgent`) to say something else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from smesh.agents.protocol import TaskSpec, Verdict

__all__ = [
    "JUDGEMENT_SCHEMA",
    "judge_prompt",
    "read_judgement",
    "retry_temperature",
    "work_prompt",
]

# The reason comes first so that the model reasons before it commits to a verdict; with
# the embedded 0.5B model this ordering (and no role prompt) judged a small probe set of
# right and wrong answers correctly where "verdict first" approved or rejected everything.
JUDGEMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "maxLength": 100},
        "correct": {"type": "boolean"},
    },
    "required": ["reason", "correct"],
}


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def work_prompt(
    spec: TaskSpec,
    *,
    previous: Any = None,
    feedback: Sequence[str] = (),
    inputs: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The user message asking for ``spec``'s work.

    The accepted outputs of the tasks it depends on come as ``inputs``; ``notes`` are lines
    about how the work reached this agent (a handoff, a restart). A retry shows the previous
    answer and why it was rejected, so that the model does not repeat itself.
    """
    prompt = spec.description
    if spec.input is not None:
        prompt += "\n\nInput:\n" + json.dumps(spec.input, ensure_ascii=False)
    if inputs:
        for task_id, output in inputs.items():
            prompt += f"\n\nResult of {task_id}:\n" + _shown(output)
    for note in notes:
        prompt += "\n\n" + note
    if previous is not None:
        prompt += "\n\nYour previous answer was:\n" + (
            previous if isinstance(previous, str) else json.dumps(previous)
        )
    if feedback:
        prompt += "\n\nIt was rejected. Reviewers said:\n" + "\n".join(
            f"- {reason}" for reason in feedback
        )
        prompt += "\nFix these problems."
    return prompt


def retry_temperature(base: float, attempt: int) -> float:
    """Sample a little hotter on each retry (+0.3 per attempt, at most 1)."""
    return min(1.0, base + 0.3 * (attempt - 1))


def judge_prompt(spec: TaskSpec, output: Any) -> str:
    """The user message asking whether ``output`` answers ``spec`` correctly; it shows the
    task and the output alone (the judge is blind to other verdicts)."""
    return (
        f"Task: {spec.description}\n\nProposed answer:\n{_shown(output)}\n\n"
        "Is the proposed answer correct? Reply in JSON."
    )


def read_judgement(parsed: Any) -> tuple[Verdict, str]:
    """The verdict and reason in a reply that satisfied :data:`JUDGEMENT_SCHEMA`."""
    verdict: Verdict = "approve" if parsed["correct"] else "reject"
    return verdict, str(parsed.get("reason", ""))
