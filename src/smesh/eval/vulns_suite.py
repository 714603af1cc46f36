"""``smesh eval vulns``: the swarm scored on a public labelled corpus, as an eval suite.

Four conditions on the same items (see :mod:`smesh.eval.vulns` for the corpus, the decoys
and what "flagged" means): ``bandit`` alone, the ``flow`` analysis alone, the LLM
specialists alone (``llm``) and the swarm's ``consensus``. The score of each is the macro
average over weaknesses of the true-positive rate minus the false-positive rate, with a
95 % interval from a seeded bootstrap that resamples positives and decoys within each
weakness; ``extra`` holds the per-weakness table, the pooled precision of every condition,
every item's flags (``records``), the plan and how the run ended.

The analyzers' time is measured apart (bandit alone, the flow analysis alone, on the same
files, no model), so each condition's seconds per item are its own: what running that
condition alone would cost.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from smesh.eval.result import ConditionResult, EvalResult
from smesh.eval.vulns import ANALYZERS, SOURCES, Item, load_items, run

__all__ = ["bootstrap_macro", "evaluate"]

#: positives per weakness when ``--n`` is not given: 8 weaknesses, about 55 files with their
#: decoys, about ten minutes with the embedded model on two cores
DEFAULT_N = 3


def bootstrap_macro(
    records: Sequence[Mapping[str, Any]],
    source: str,
    *,
    seed: int,
    level: float = 0.95,
    resamples: int = 2000,
) -> tuple[float, float]:
    """Percentile interval of the macro TPR - FPR of ``source`` over ``records``.

    Positives and decoys are resampled apart within each weakness (its rates are defined
    on each), and weaknesses with no positives or no decoys are left out, as in the score.
    """
    rng = np.random.default_rng(seed)
    per_category: list[np.ndarray] = []
    for cat in sorted({str(r["category"]) for r in records}):
        pos = np.array(
            [
                bool(r[source])
                for r in records
                if r["category"] == cat and r["variant"] == "positive"
            ]
        )
        neg = np.array(
            [
                bool(r[source])
                for r in records
                if r["category"] == cat and r["variant"] != "positive"
            ]
        )
        if pos.size == 0 or neg.size == 0:
            continue
        tpr = pos[rng.integers(0, pos.size, size=(resamples, pos.size))].mean(axis=1)
        fpr = neg[rng.integers(0, neg.size, size=(resamples, neg.size))].mean(axis=1)
        per_category.append(tpr - fpr)
    if not per_category:
        return 0.0, 0.0
    macro = np.mean(np.stack(per_category), axis=0)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(macro, [tail, 1.0 - tail])
    return float(low), float(high)


async def _analyzer_seconds(items: Sequence[Item], name: str) -> float:
    """Wall time of one analyzer alone over the items' files (no model)."""
    from smesh.apps.swarm import run_swarm

    with tempfile.TemporaryDirectory(prefix="smesh-vulns-") as tmp:
        root = Path(tmp)
        for item in items:
            path = root / item.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(item.code, encoding="utf-8")
        started = time.perf_counter()
        await run_swarm(root, None, specialists=[], analyzers=[name])
        return time.perf_counter() - started


def evaluate(
    *,
    backend: str,
    n: int,
    seed: int,
    threads: int | None = None,
    max_seconds: float | None = None,
    corpus: Path | None = None,
    decoys: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> EvalResult:
    """Score ``n`` positives per weakness (seeded draw) and all their decoys.

    Raises:
        UsageError: no corpus, or no items to score.
    """
    from smesh.errors import UsageError
    from smesh.eval import vulns

    corpus = corpus or vulns.CORPUS
    if not corpus.is_file():
        raise UsageError(f"no corpus at {corpus} (the shared corpora directory beside the repo)")
    items = load_items(corpus, decoys or vulns.DECOYS, n=n, seed=seed)
    if not items:
        raise UsageError("no items to score")
    say = progress or (lambda _: None)
    say(f"vulns: {sum(i.positive for i in items)} positives, {len(items)} files in all")
    alone = {name: asyncio.run(_analyzer_seconds(items, name)) for name in ANALYZERS}
    say("vulns: analyzers timed alone; the swarm scans")
    result = asyncio.run(
        run(items, backend, max_seconds=max_seconds, progress=progress is not None, threads=threads)
    )
    count = len(items)
    conditions = []
    for source in SOURCES:
        overall = result["overall"][source]
        low, high = bootstrap_macro(result["records"], source, seed=seed)
        spends = source not in ANALYZERS
        conditions.append(
            ConditionResult(
                name=source,
                score=float(overall["score"] or 0.0),
                ci_low=low,
                ci_high=high,
                tokens_per_item=result["tokens"] / count if spends else 0.0,
                seconds_per_item=(result["seconds"] if spends else alone[source]) / count,
            )
        )
    extra = {
        "categories": result["categories"],
        "precision": {s: result["overall"][s]["precision"] for s in SOURCES},
        "pooled": result["overall"],
        "items": result["items"],
        "analyzer_seconds": {k: round(v, 2) for k, v in alone.items()},
        "swarm_seconds": result["seconds"],
        "llm_calls": result["llm_calls"],
        "stopped_by": result["stopped_by"],
        "unfinished": result["unfinished"],
        "plan": result.get("plan"),
        "load_average": result["load_average"],
        "records": result["records"],
    }
    return EvalResult(
        suite="vulns", backend=backend, n=n, seed=seed, conditions=conditions, extra=extra
    )
