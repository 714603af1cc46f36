"""``run_review`` on the planted samples with a scripted model that knows the answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _oracle import ISSUES, SAMPLES, as_planted, oracle_backend

from smesh.agents.journal import Journal
from smesh.agents.runtime import Budget
from smesh.apps.options import RunOptions
from smesh.apps.reports import review_markdown, review_text
from smesh.apps.review import ReviewReport, review_sarif, run_review
from smesh.errors import UsageError
from smesh.testing import ScriptedBackend

#: a performance cue that is no problem: a loop over a handful of fixed items
QUIET_LOOPS = """\
def grid():
    \"\"\"The cells of a 3x3 board.\"\"\"
    cells = []
    for row in range(3):
        for col in range(3):
            cells.append((row, col))
    return cells
"""
KEYS = ["file", "line_start", "line_end", "category", "severity", "message", "support"]
KEYS += ["disputed", "consensus"]
PLANTED = {(i["file"], i["line"], i["category"]) for i in ISSUES}


def normal(report: ReviewReport) -> list[tuple[Any, ...]]:
    """The findings with support as a set (its order follows timing)."""
    return [
        (f.file, f.line_start, f.category, f.consensus, f.disputed, frozenset(f.support))
        for f in report.findings
    ]


def review(**kw: Any) -> tuple[ReviewReport, Any]:
    backend, oracle = oracle_backend(SAMPLES)
    return asyncio.run(run_review(SAMPLES, backend, **kw)), oracle


@pytest.fixture(scope="module")
def reviewed() -> tuple[ReviewReport, Any]:
    return review()


def test_every_planted_issue_is_found_and_agreed(reviewed: tuple[ReviewReport, Any]) -> None:
    report, _ = reviewed
    agreed = {(f.file, f.line_start, f.category) for f in report.findings if f.consensus}
    assert as_planted(agreed) == PLANTED
    assert len(report.findings) == len(PLANTED) and not any(f.disputed for f in report.findings)
    for f in report.findings:
        # its lens and one more voice: the flow analysis (a request's input traced into a
        # JavaScript sink) or one other lens that judged it blind
        assert f.support[0] in (f.category, "flow") and len(f.support) == 2, f


def test_lenses_look_only_where_the_evidence_points(reviewed: tuple[ReviewReport, Any]) -> None:
    _, oracle = reviewed
    # the cue lenses see only report.py (a nested loop, a bare except, no docstring);
    # security sees the files with sinks; __init__.py (empty) costs nothing
    assert sorted(oracle.scans) == sorted(
        [
            ("security", "vulnerable_js/server.js"),
            ("security", "vulnerable_py/app/db.py"),
            ("security", "vulnerable_py/app/files.py"),
            ("security", "vulnerable_py/app/report.py"),
            ("performance", "vulnerable_py/app/report.py"),
            ("style", "vulnerable_py/app/report.py"),
            ("documentation", "vulnerable_py/app/report.py"),
        ]
    )


def test_a_finding_with_one_voice_gets_one_blind_judge(reviewed: tuple[ReviewReport, Any]) -> None:
    report, oracle = reviewed
    for f, notes in zip(report.findings, report.judgements, strict=True):
        judges = [n.split(":")[0] for n in notes]
        if "flow" in f.support:
            assert judges == [], f  # the flow analysis and the security lens: two voices
        else:
            assert len(judges) == 1 and judges[0] != f.category, (f, notes)
    assert len(oracle.judged) == sum(1 for f in report.findings if "flow" not in f.support)


def test_a_finding_the_judge_rejects_is_listed_as_disputed(tmp_path: Path) -> None:
    (tmp_path / "board.py").write_text(QUIET_LOOPS)
    fp = {"performance": [{"file": "board.py", "line": 5, "what": "nested loop"}]}
    backend, oracle = oracle_backend(tmp_path, false_positives=fp)
    report = asyncio.run(run_review(tmp_path, backend))
    [finding] = report.findings
    assert (finding.file, finding.line_start, finding.category) == ("board.py", 5, "performance")
    assert finding.disputed and not finding.consensus and finding.support == ["performance"]
    assert [j[-1] for j in oracle.judged] == ["disagree"]
    assert report.summary.consensus == 0 and report.summary.total == 1


def test_the_json_contract_has_exactly_the_documented_keys(
    reviewed: tuple[ReviewReport, Any],
) -> None:
    report, _ = reviewed
    doc = report.contract()
    assert list(doc) == ["findings", "summary", "plan"]
    assert all(list(f) == KEYS for f in doc["findings"])
    summary = doc["summary"]
    assert summary["llm_calls"] > 0 and summary["tokens"] > 0 and summary["signals"] > 0
    assert summary["consensus"] == len(ISSUES) and summary["stopped_by"] == "quiescent"
    assert doc["plan"]["files"] == 5 and doc["plan"]["files_with_work"] == 4


def test_sarif_output_is_valid_2_1_0(
    reviewed: tuple[ReviewReport, Any], validate_sarif: Callable[[Any], None]
) -> None:
    report, _ = reviewed
    sarif = review_sarif(report)
    validate_sarif(sarif)
    results = sarif["runs"][0]["results"]
    assert len(results) == len(report.findings)
    fails = [r for r in results if r["kind"] == "fail"]
    assert len(fails) == len(ISSUES)


def test_text_and_markdown_list_consensus_and_disputed_apart(
    reviewed: tuple[ReviewReport, Any],
) -> None:
    report, _ = reviewed
    text = review_text(report)
    assert text.index("Consensus (13)") < text.index("Disputed (0)") < text.index("Unconfirmed (0)")
    assert "vulnerable_py/app/db.py:16 [security/high]" in text
    md = review_markdown(report)
    assert "## Consensus (13)" in md and "## Disputed (0)" in md
    assert "| `vulnerable_py/app/report.py` | 24 | style |" in md


def test_copies_of_a_lens_share_its_work_and_count_once() -> None:
    report, oracle = review(reviewers=["security", "security", "documentation"])
    # the two security copies split the work between them, each check asked once
    asked = [c for c in oracle.checks if c[0] == "security"]
    assert len(asked) == len(set(asked)) == 10
    security = [f for f in report.findings if f.category == "security"]
    assert len(security) == 10 and all(f.consensus for f in security)
    for f in security:
        # a copy of security is never a second voice: flow or documentation is
        assert len(f.support) == 2 and {"flow", "documentation"} & set(f.support), f


def test_an_interrupted_review_resumes_from_its_journal(tmp_path: Path) -> None:
    full, _ = review()
    journal = Journal(tmp_path / "j.db")
    backend, _ = oracle_backend(SAMPLES)
    first = asyncio.run(
        run_review(SAMPLES, backend, options=RunOptions(journal=journal, budget=Budget(calls=12)))
    )
    assert first.summary.stopped_by == "budget"
    backend, _ = oracle_backend(SAMPLES)
    resumed = asyncio.run(
        run_review(
            SAMPLES,
            backend,
            options=RunOptions(journal=journal, run_id=first.summary.run_id, resume=True),
        )
    )
    journal.close()
    assert resumed.summary.stopped_by == "quiescent"
    assert normal(resumed) == normal(full)
    # the finished work was not redone
    assert len(backend.calls) < full.summary.llm_calls


def test_resuming_a_finished_review_asks_the_model_nothing(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    backend, _ = oracle_backend(SAMPLES)
    first = asyncio.run(run_review(SAMPLES, backend, options=RunOptions(journal=journal)))
    again = asyncio.run(
        run_review(
            SAMPLES,
            ScriptedBackend([]),
            options=RunOptions(journal=journal, run_id=first.summary.run_id, resume=True),
        )
    )
    journal.close()
    assert normal(again) == normal(first) and again.summary.llm_calls == 0


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    backend = ScriptedBackend([])
    with pytest.raises(UsageError, match="unknown reviewer"):
        asyncio.run(run_review(SAMPLES, backend, reviewers=["grammar"]))
    with pytest.raises(UsageError, match="no reviewable"):
        asyncio.run(run_review(tmp_path, backend))
