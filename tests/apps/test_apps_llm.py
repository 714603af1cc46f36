"""``review`` and ``swarm`` on the real embedded model (marked ``llm``; kept short: few
files, few agents, small replies)."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from _oracle import ISSUES, SAMPLES, TOLERANCE

from smesh.agents.runtime import Budget
from smesh.apps.options import RunOptions
from smesh.apps.review import review_sarif, run_review
from smesh.apps.swarm import run_swarm, swarm_sarif

#: how long after the budget a run may take to stop: in-flight generations are cancelled
#: and llama.cpp lets go of them at its next step
STOP_GRACE_S = 15.0

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
            where = issue["file"].removeprefix("vulnerable_py/")
            near = [line for file, line in found if file == where]
            assert any(abs(line - issue["line"]) <= TOLERANCE for line in near), issue
    validate_sarif(swarm_sarif(report))


async def test_swarm_with_the_local_model_holds_a_60_second_budget(
    local: Any, validate_sarif: Callable[[Any], None]
) -> None:
    pytest.importorskip("bandit")
    started = time.monotonic()
    report = await run_swarm(SAMPLES, local, options=RunOptions(budget=Budget(wall_s=60.0)))
    elapsed = time.monotonic() - started
    assert elapsed <= 60.0 + STOP_GRACE_S, elapsed
    assert report.summary.stopped_by in ("quiescent", "budget")
    if report.summary.stopped_by == "quiescent":
        assert report.unfinished == []  # every planned check done within the budget
    assert report.plan is not None and report.plan.checks > 0
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
