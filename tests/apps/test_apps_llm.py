"""``review`` and ``swarm`` on the real embedded model (marked ``llm``; kept short: few
files, few agents, small replies)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from _oracle import ISSUES, SAMPLES

from smesh.apps.review import review_sarif, run_review
from smesh.apps.swarm import run_swarm, swarm_sarif

pytestmark = [pytest.mark.llm, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local() -> AsyncIterator[Any]:
    from smesh.backends.local import LocalBackend
    from smesh.backends.model import model_status

    status = model_status("0.5b")
    if not status.available:
        pytest.skip(f"the embedded model is not installed: {status.detail}")
    backend = LocalBackend(n_parallel=2, ctx_per_slot=2048, extra={"seed": 1})
    await backend.start()
    try:
        yield backend
    finally:
        await backend.aclose()


async def test_swarm_with_the_local_model_finds_what_bandit_finds(
    local: Any, validate_sarif: Callable[[Any], None]
) -> None:
    pytest.importorskip("bandit")
    report = await run_swarm(
        SAMPLES / "vulnerable_py", local, specialists=["injection"], analyzers=["bandit"]
    )
    assert report.summary.stopped_by == "quiescent"
    assert report.summary.llm_calls > 0
    found = {(f.file, f.line) for f in report.findings}
    for issue in ISSUES:
        if issue["bandit"]:
            assert (issue["file"].removeprefix("vulnerable_py/"), issue["line"]) in found, issue
    validate_sarif(swarm_sarif(report))


async def test_review_with_the_local_model_completes_with_valid_sarif(
    local: Any, tmp_path: Path, validate_sarif: Callable[[Any], None]
) -> None:
    shutil.copy(SAMPLES / "vulnerable_py" / "app" / "db.py", tmp_path / "db.py")
    report = await run_review(tmp_path, local, reviewers=["security", "documentation"])
    assert report.summary.stopped_by == "quiescent"
    assert report.summary.llm_calls >= 2
    for f in report.findings:
        assert f.file == "db.py" and f.category in {"security", "documentation"}
        assert 1 <= f.line_start <= f.line_end <= 16
    validate_sarif(review_sarif(report))
