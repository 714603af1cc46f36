"""Every script in ``examples/`` runs offline, quickly, and does what it says."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: lines each example must print (an example without an entry here fails the suite)
EXPECTED: dict[str, list[str]] = {
    "agent_tools.py": [
        "offered to the model: convert, send_invoice",
        "run: invoice-ada: accepted: 100 EUR is 108.0 USD; invoice 1 sent to ada.",
        "  LLM calls: 3, invoices actually sent: 1",
        "  LLM calls: 0, invoices actually sent: 1",
        "  step 1: convert(amount=100, rate=1.08) -> 108.0",
        "  step 2: send_invoice(customer='ada', amount=108.0) -> invoice 1 sent to ada "
        "(side effect, in the ledger)",
    ],
    "custom_agent.py": [
        "summary: accepted by summarizer: Agents coordinate through a shared signal field, "
        "with no orchestrator.",
        "count: accepted by counter: {'words': 24}",
        "run ended: quiescent, 1 LLM call(s)",
    ],
    "custom_task_kind.py": [
        "posted translation signal: greeting",
        "greeting: accepted: bonjour monde",
        "physics: accepted: signal champ",
        "task kinds on the board: translation",
    ],
    "custom_verifier.py": [
        "is-even: attempt 1 rejected by unit-tests: tests failed: AssertionError",
        "is-even: accepted after 2 attempt(s)",
        "ada: attempt 1 rejected by schema: $.born: expected integer, got str",
        "ada: accepted after 2 attempt(s)",
    ],
    "pipeline_approval.py": [
        "research: accepted by researcher: 3 studies: swarms beat single agents on 2 of 3 "
        "benchmarks",
        "analysis: accepted by analyst: mixed evidence, leaning positive (2 of 3)",
        "editor sees approve:article#2: 'Swarms usually help: 2 of 3 studies.'",
        "article: accepted after 2 drafts: Swarms usually help: 2 of 3 studies.",
    ],
    "planner_fanout.py": [
        "book: accepted: Intro chapter. Method chapter. Results chapter. Discussion chapter.",
        "subtasks: ['book/discussion', 'book/intro', 'book/merge', 'book/method', 'book/results']",
    ],
    "tools_example.py": [
        "tools: exchange_rate, convert, send_invoice",
        "  step 3: send_invoice -> invoice 1 sent to ada",
        "  step 3: send_invoice -> invoice 1 sent to ada (replayed)",
        "  answer: 100 EUR is 108.0 USD; invoice 1 sent to ada.",
        "invoices actually sent: 1",
    ],
}

SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))


def test_every_example_is_checked() -> None:
    assert sorted(EXPECTED) == SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_is_a_documented_script(name: str) -> None:
    tree = ast.parse((EXAMPLES / name).read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree)
    assert doc and f"python examples/{name}" in doc  # says what it shows and how to run it
    main_guards = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
    ]
    assert len(main_guards) == 1
    assert "asyncio.run" in ast.unparse(main_guards[0])


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_runs(name: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "0", "NO_COLOR": "1"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # examples write nothing and need no files around them
        env=env,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert not result.stderr
    lines = result.stdout.splitlines()
    for line in EXPECTED[name]:
        assert line in lines, result.stdout
    assert elapsed < 5.0
    assert list(tmp_path.iterdir()) == []
