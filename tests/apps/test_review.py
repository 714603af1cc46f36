"""``run_review`` on the planted samples with a scripted model that knows the answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _oracle import ISSUES, SAMPLES, oracle_backend

from smesh.agents.journal import Journal
from smesh.agents.runtime import Budget
from smesh.apps.options import RunOptions
from smesh.apps.reports import review_markdown, review_text
from smesh.apps.review import ReviewReport, review_sarif, run_review
from smesh.errors import UsageError
from smesh.testing import ScriptedBackend

FALSE_POSITIVE = {
    "style": [{"file": "vulnerable_py/app/db.py", "line": 9, "what": "connect is a vague name"}]
}
KEYS = ["file", "line_start", "line_end", "category", "severity", "message", "support"]
KEYS += ["disputed", "consensus"]


def normal(report: ReviewReport) -> list[tuple[Any, ...]]:
    """The findings with support as a set (its order follows timing)."""
    return [
        (f.file, f.line_start, f.category, f.consensus, f.disputed, frozenset(f.support))
        for f in report.findings
    ]


def review(**kw: Any) -> tuple[ReviewReport, Any]:
    backend, oracle = oracle_backend(SAMPLES, false_positives=FALSE_POSITIVE)
    return asyncio.run(run_review(SAMPLES, backend, **kw)), oracle


@pytest.fixture(scope="module")
def reviewed() -> tuple[ReviewReport, Any]:
    return review()


def test_every_planted_issue_is_found_and_agreed(reviewed: tuple[ReviewReport, Any]) -> None:
    report, _ = reviewed
    agreed = {(f.file, f.line_start, f.category) for f in report.findings if f.consensus}
    assert agreed == {(i["file"], i["line"], i["category"]) for i in ISSUES}
    for f in report.findings:
        if f.consensus:
            # reported by its lens and confirmed by the three others, one voice each
            assert f.support[0] == f.category and sorted(f.support) == sorted(
                ["security", "performance", "style", "documentation"]
            )
            assert not f.disputed


def test_a_finding_the_other_reviewers_reject_is_listed_as_disputed(
    reviewed: tuple[ReviewReport, Any],
) -> None:
    report, _ = reviewed
    [disputed] = [f for f in report.findings if f.disputed]
    assert (disputed.file, disputed.line_start, disputed.category) == (
        "vulnerable_py/app/db.py",
        9,
        "style",
    )
    assert disputed.support == ["style"] and not disputed.consensus
    assert len(report.findings) == len(ISSUES) + 1
    assert report.summary.consensus == len(ISSUES) and report.summary.total == len(ISSUES) + 1


def test_every_other_reviewer_judges_each_finding_blind(reviewed: tuple[ReviewReport, Any]) -> None:
    report, oracle = reviewed
    # one judgement per finding per other lens; the reporter never judges its own
    assert len(oracle.judged) == 3 * len(report.findings)
    for f, notes in zip(report.findings, report.judgements, strict=True):
        judges = {n.split(":")[0] for n in notes}
        assert f.category not in judges and len(judges) == 3


def test_reviewers_claim_the_files_their_lens_suits(reviewed: tuple[ReviewReport, Any]) -> None:
    _, oracle = reviewed
    scanned = {(lens, path) for lens, path in oracle.scans}
    files = {"vulnerable_js/server.js", "vulnerable_py/app/db.py", "vulnerable_py/app/files.py"}
    files |= {"vulnerable_py/app/report.py", "vulnerable_py/app/__init__.py"}
    assert scanned == {
        (lens, f) for f in files for lens in ("security", "performance", "style", "documentation")
    }
    assert len(oracle.scans) == len(scanned)  # each chunk once per lens


def test_the_json_contract_has_exactly_the_documented_keys(
    reviewed: tuple[ReviewReport, Any],
) -> None:
    report, _ = reviewed
    doc = report.contract()
    assert list(doc) == ["findings", "summary"]
    assert all(list(f) == KEYS for f in doc["findings"])
    summary = doc["summary"]
    assert summary["llm_calls"] > 0 and summary["tokens"] > 0 and summary["signals"] > 0
    assert summary["consensus"] == len(ISSUES) and summary["stopped_by"] == "quiescent"


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
    assert {r["level"] for r in results if r["kind"] == "review"} == {"none"}


def test_text_and_markdown_list_consensus_and_disputed_apart(
    reviewed: tuple[ReviewReport, Any],
) -> None:
    report, _ = reviewed
    text = review_text(report)
    assert text.index("Consensus (13)") < text.index("Disputed (1)") < text.index("Unconfirmed (0)")
    assert "vulnerable_py/app/db.py:15 [security/high]" in text
    md = review_markdown(report)
    assert "## Consensus (13)" in md and "## Disputed (1)" in md
    assert "| `vulnerable_py/app/db.py` | 9 | style |" in md


def test_copies_of_a_lens_share_its_work_and_count_once() -> None:
    report, oracle = review(reviewers=["security", "security", "documentation"])
    # the two security copies split the scans between them, each chunk scanned once
    assert len([s for s in oracle.scans if s[0] == "security"]) == 5
    security = [f for f in report.findings if f.category == "security"]
    assert len(security) == 10 and all(f.consensus for f in security)
    for f in security:
        assert len(f.support) == 2 and f.support[1] == "documentation"


def test_an_interrupted_review_resumes_from_its_journal(tmp_path: Path) -> None:
    full, _ = review()
    journal = Journal(tmp_path / "j.db")
    backend, _ = oracle_backend(SAMPLES, false_positives=FALSE_POSITIVE)
    first = asyncio.run(
        run_review(SAMPLES, backend, options=RunOptions(journal=journal, budget=Budget(calls=12)))
    )
    assert first.summary.stopped_by == "budget"
    backend, _ = oracle_backend(SAMPLES, false_positives=FALSE_POSITIVE)
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
    backend, _ = oracle_backend(SAMPLES, false_positives=FALSE_POSITIVE)
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
