"""Precision and recall of ``review`` and ``swarm`` on the planted samples.

Usage: python benchmarks/apps_samples.py [BACKEND] [--review-only|--swarm-only]

A finding matches a planted issue (samples/EXPECTED.json) when it is in the same file,
within ``line_tolerance`` lines, and of the same review category (review) or the same CWE
after folding aliases (swarm). Precision and recall are reported for every finding and
for the agreed (consensus) findings alone.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from smesh.apps.lens import CWE_ALIASES
from smesh.apps.review import run_review
from smesh.apps.swarm import run_swarm
from smesh.backends import resolve_backend
from smesh.backends.base import aclose_backend

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
EXPECTED = json.loads((SAMPLES / "EXPECTED.json").read_text())
TOL = EXPECTED["line_tolerance"]


def _cwe(value: int) -> str:
    return f"CWE-{CWE_ALIASES.get(value, value)}"


def score(found: list[tuple[str, int, str]], kind: str) -> dict[str, Any]:
    """Precision/recall of ``(file, line, label)`` findings against the planted issues."""
    issues = [i for i in EXPECTED["issues"] if kind == "review" or i["cwes"]]
    hit: set[str] = set()
    true_pos = 0
    for file, line, label in found:
        match = None
        for issue in issues:
            labels = {issue["category"]} if kind == "review" else {_cwe(c) for c in issue["cwes"]}
            if issue["file"] == file and abs(issue["line"] - line) <= TOL and label in labels:
                match = issue["id"]
                break
        if match is not None:
            true_pos += 1
            hit.add(match)
    return {
        "found": len(found),
        "true_positives": true_pos,
        "precision": round(true_pos / len(found), 3) if found else None,
        "recall": round(len(hit) / len(issues), 3),
        "issues": len(issues),
        "missed": sorted({i["id"] for i in issues} - hit),
    }


async def main(spec: str, which: str) -> dict[str, Any]:
    backend = resolve_backend(spec)
    out: dict[str, Any] = {"backend": spec}
    try:
        start = getattr(backend, "start", None)
        if start is not None:
            await start()
        if which in ("both", "review"):
            t = time.perf_counter()
            review = await run_review(SAMPLES, backend)
            rows = [(f.file, f.line_start, f.category) for f in review.findings]
            agreed = [(f.file, f.line_start, f.category) for f in review.findings if f.consensus]
            out["review"] = {
                "all": score(rows, "review"),
                "consensus": score(agreed, "review"),
                "disputed": sum(f.disputed for f in review.findings),
                "seconds": round(time.perf_counter() - t, 1),
                "summary": {
                    k: getattr(review.summary, k) for k in ("llm_calls", "tokens", "stopped_by")
                },
            }
        if which in ("both", "swarm"):
            t = time.perf_counter()
            swarm = await run_swarm(SAMPLES, backend)
            rows = [(f.file, f.line, f.cwe) for f in swarm.findings]
            agreed = [(f.file, f.line, f.cwe) for f in swarm.findings if f.consensus]
            out["swarm"] = {
                "all": score(rows, "swarm"),
                "consensus": score(agreed, "swarm"),
                "seconds": round(time.perf_counter() - t, 1),
                "summary": {
                    k: getattr(swarm.summary, k) for k in ("llm_calls", "tokens", "stopped_by")
                },
                "findings": [
                    [f.file, f.line, f.cwe, f.consensus, f.support] for f in swarm.findings
                ],
            }
    finally:
        await aclose_backend(backend)
    return out


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    which = (
        "review"
        if "--review-only" in sys.argv
        else "swarm"
        if "--swarm-only" in sys.argv
        else "both"
    )
    print(json.dumps(asyncio.run(main(args[0] if args else "local", which)), indent=2))
