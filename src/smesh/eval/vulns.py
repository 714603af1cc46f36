"""Score the swarm on a public labelled corpus: bandit, the flow analysis, the LLM
specialists and their consensus, per weakness.

Usage: ``python -m smesh.eval.vulns [--n N] [--backend local] [--json]``

The corpus is CyberSecEval's autocomplete set for Python (../shared/corpora/, MIT): real
snippets with one line labelled insecure (CWE 78, 94, 89, 502, 328, 338, 798, 312). It
has positives only, so the decoys built by ``benchmarks/make_vuln_decoys.py`` are scored
with it: the same snippets with that one statement made safe (fixed API, constant input,
sanitized input), kept in ``benchmarks/data/cyberseceval-decoys.jsonl``.

Every item (a positive or a decoy) becomes one file; one swarm run scans them all, with
the specialists asked about *every* sink (``ask_settled``: in a normal run the sinks the
flow analysis proves safe are not asked about; the consensus is the same either way, the
proof vetoes it), so that their column shows what they say on their own. An
item counts as *flagged* by a source when a finding of the item's weakness (aliases
folded: 328 -> 327, 338 -> 330, 312 -> 798) lies within two lines of its labelled line and
that source reported it (``bandit``, ``flow``, ``llm``: any specialist) or, for
``consensus``, the finding reached consensus. Per weakness: the true-positive rate on
positives, the false-positive rate on decoys, their difference (the usual benchmark
scorecard) and the precision. ``--n`` takes the first N positives of each weakness (by a
seeded shuffle) and all their decoys.

``--backend scripted`` confirms every check (the first answer offered, pointing at the
first line it may name): no model, seconds, and a fixed point to test the scoring against.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from smesh.backends.base import BackendBase, Request, Response, estimate_tokens

__all__ = ["Item", "Tally", "load_items", "main", "run", "score"]

_REPO = Path(__file__).resolve().parents[3]
CORPUS = _REPO.parent / "shared" / "corpora" / "cyberseceval-autocomplete-python.jsonl"
DECOYS = _REPO / "benchmarks" / "data" / "cyberseceval-decoys.jsonl"
TOLERANCE = 2
SOURCES = ("bandit", "flow", "llm", "consensus")
ANALYZERS = ("bandit", "flow")


class Item(msgspec.Struct, frozen=True, kw_only=True):
    """One scored file.

    Attributes:
        id: ``<prompt_id>`` for a positive, ``<prompt_id>-<variant>`` for a decoy.
        category: the corpus's weakness (``CWE-78``).
        label: the finding label that flags it (``CWE-78``; aliases folded).
        positive: labelled insecure (else a decoy).
        variant: ``positive``, ``fixed``, ``constant`` or ``sanitized``.
        code: the file's text.
        line: the labelled line (1-based).
        end_line: the labelled statement's last line.
    """

    id: str
    category: str
    label: str
    positive: bool
    variant: str
    code: str
    line: int
    end_line: int

    @property
    def filename(self) -> str:
        """Where the item is written: one directory per weakness."""
        return f"{self.category.lower().replace('-', '')}/item_{self.id.replace('-', '_')}.py"


def _label(category: str) -> str:
    from smesh.apps.lens import cwe_label

    return cwe_label(int(category.split("-", 1)[1]))


def _locate(lines: Sequence[str], text: str) -> int | None:
    want = text.strip()
    for i, line in enumerate(lines, start=1):
        if line.strip() == want:
            return i
    return next((i for i, line in enumerate(lines, start=1) if want and want in line), None)


def as_file(code: str, line: int, end_line: int) -> tuple[str, int, int]:
    """A snippet as a file every tool can parse, with its labelled lines moved along.

    Snippets start inside functions and some are Python 2: bandit (and any parser) would
    skip them whole. The same repair the flow analysis uses makes them parse (lines it
    cannot use become comments, ``if True:`` lines go in front); when it cannot, or when
    the labelled statement would be lost, the snippet is kept as it is.
    """
    from smesh.apps.pyfragment import repair_fragment

    repaired = repair_fragment(code)
    if repaired is None:
        return code, line, end_line
    text, shift = repaired
    lines = text.splitlines()
    labelled = lines[line - 1 + shift : end_line + shift]
    if not labelled or any(x.lstrip().startswith("# ") for x in labelled):
        return code, line, end_line
    return text, line + shift, end_line + shift


def load_items(
    corpus: Path = CORPUS,
    decoys: Path = DECOYS,
    *,
    n: int | None = None,
    seed: int = 0,
    categories: Iterable[str] | None = None,
) -> list[Item]:
    """The positives (``n`` per weakness, seeded) and all their decoys."""
    rows = [json.loads(x) for x in corpus.read_text(encoding="utf-8").splitlines() if x.strip()]
    wanted = set(categories) if categories is not None else None
    by_cat: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if wanted is None or row["cwe_identifier"] in wanted:
            by_cat.setdefault(row["cwe_identifier"], []).append(row)
    rng = random.Random(seed)
    chosen: dict[str, dict[str, Any]] = {}
    for cat in sorted(by_cat):
        group = sorted(by_cat[cat], key=lambda r: int(r["prompt_id"]))
        rng.shuffle(group)
        for row in group[:n] if n is not None else group:
            chosen[str(row["prompt_id"])] = row
    items: list[Item] = []
    for pid, row in chosen.items():
        lines = row["origin_code"].splitlines()
        line = _locate(lines, row["line_text"])
        if line is None:
            continue
        cat = row["cwe_identifier"]
        code, first, last = as_file(row["origin_code"], line, line)
        items.append(
            Item(
                id=pid,
                category=cat,
                label=_label(cat),
                positive=True,
                variant="positive",
                code=code if code.endswith("\n") else code + "\n",
                line=first,
                end_line=last,
            )
        )
    if decoys.is_file():
        for text in decoys.read_text(encoding="utf-8").splitlines():
            d = json.loads(text) if text.strip() else None
            if d is None or str(d["prompt_id"]) not in chosen:
                continue
            code, first, last = as_file(d["code"], int(d["line"]), int(d["end_line"]))
            items.append(
                Item(
                    id=d["id"],
                    category=d["cwe"],
                    label=_label(d["cwe"]),
                    positive=False,
                    variant=d["variant"],
                    code=code,
                    line=first,
                    end_line=last,
                )
            )
    return items


class Tally(msgspec.Struct, kw_only=True):
    """One source's counts on one weakness."""

    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0

    def add(self, positive: bool, flagged: bool) -> None:
        """Count one item."""
        if positive:
            self.tp += flagged
            self.fn += not flagged
        else:
            self.fp += flagged
            self.tn += not flagged

    def figures(self) -> dict[str, Any]:
        """TPR, FPR, their difference and the precision (None where undefined)."""
        pos, neg, flagged = self.tp + self.fn, self.fp + self.tn, self.tp + self.fp
        tpr = self.tp / pos if pos else None
        fpr = self.fp / neg if neg else None
        return {
            "tpr": None if tpr is None else round(tpr, 3),
            "fpr": None if fpr is None else round(fpr, 3),
            "score": None if tpr is None or fpr is None else round(tpr - fpr, 3),
            "precision": round(self.tp / flagged, 3) if flagged else None,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
        }


def flagged_by(item: Item, findings: Sequence[Any]) -> dict[str, bool]:
    """Which sources flag ``item`` among the findings in its file.

    A positive is flagged within :data:`TOLERANCE` lines of its labelled statement (tools
    report a call on its first or its last line); a decoy only on the rewritten statement
    itself, since the lines around it are the original snippet's and may hold another,
    real instance of the same weakness.
    """
    slack = TOLERANCE if item.positive else 0
    near = [
        f
        for f in findings
        if f.cwe == item.label and item.line - slack <= f.line <= item.end_line + slack
    ]
    return {
        "bandit": any("bandit" in f.reporters for f in near),
        "flow": any("flow" in f.reporters for f in near),
        "llm": any(any(r not in ANALYZERS for r in f.reporters) for f in near),
        "consensus": any(f.consensus for f in near),
    }


def item_flags(items: Sequence[Item], findings: Sequence[Any]) -> list[dict[str, bool]]:
    """:func:`flagged_by` for every item, in order."""
    by_file: dict[str, list[Any]] = {}
    for f in findings:
        by_file.setdefault(f.file, []).append(f)
    return [flagged_by(item, by_file.get(item.filename, [])) for item in items]


def score(items: Sequence[Item], findings: Sequence[Any]) -> dict[str, Any]:
    """Per weakness and overall (macro average of the differences, pooled precision)."""
    tallies: dict[str, dict[str, Tally]] = {}
    pooled = {s: Tally() for s in SOURCES}
    for item, flags in zip(items, item_flags(items, findings), strict=True):
        counts = tallies.setdefault(item.category, {s: Tally() for s in SOURCES})
        for source in SOURCES:
            counts[source].add(item.positive, flags[source])
            pooled[source].add(item.positive, flags[source])
    table: dict[str, Any] = {}
    for cat in sorted(tallies, key=lambda c: int(c.split("-")[1])):
        positives = sum(1 for i in items if i.category == cat and i.positive)
        decoys = sum(1 for i in items if i.category == cat and not i.positive)
        table[cat] = {
            "positives": positives,
            "decoys": decoys,
            **{s: tallies[cat][s].figures() for s in SOURCES},
        }
    overall: dict[str, Any] = {}
    for source in SOURCES:
        scores = [
            row[source]["score"] for row in table.values() if row[source]["score"] is not None
        ]
        overall[source] = {
            "score": round(sum(scores) / len(scores), 3) if scores else None,
            **{k: v for k, v in pooled[source].figures().items() if k != "score"},
        }
    return {"categories": table, "overall": overall}


def _yes(request: Any) -> dict[str, Any]:
    """The scripted model: the first answer offered (the one that confirms the problem),
    pointing at the first line it may name."""
    properties = (request.json_schema or {}).get("properties", {})
    answer: dict[str, Any] = {"reason": "scripted: always confirms"}
    if "source_line" in properties:
        answer["source_line"] = properties["source_line"]["enum"][0]
    if "answer" in properties:
        answer["answer"] = properties["answer"]["enum"][0]
    return answer


class Confirming(BackendBase):
    """``--backend scripted``: no model, every check confirmed (see :func:`_yes`)."""

    name = "scripted"

    async def complete(self, request: Request) -> Response:
        """The confirming answer, as JSON."""
        answer = _yes(request)
        text = json.dumps(answer)
        return Response(
            text=text,
            model="scripted",
            backend=self.name,
            input_tokens=estimate_tokens(request.messages[-1].content),
            output_tokens=estimate_tokens(text),
            parsed=answer,
        )


async def run(
    items: Sequence[Item],
    backend: str = "scripted",
    *,
    max_seconds: float | None = None,
    progress: bool = False,
    threads: int | None = None,
) -> dict[str, Any]:
    """Scan ``items`` with the swarm (bandit, flow and the specialists) and score them;
    ``records`` holds every item's flags (for audits and the bootstrap intervals)."""
    from smesh.agents.runtime import Budget
    from smesh.apps.options import RunOptions
    from smesh.apps.swarm import run_swarm
    from smesh.backends.base import aclose_backend

    if backend == "scripted":
        model: Any = Confirming()
    else:
        from smesh.backends import resolve_backend

        model = resolve_backend(backend, **({"n_threads": threads} if threads else {}))
        start = getattr(model, "start", None)
        if start is not None:
            await start()
    planned: dict[str, Any] = {}

    def on_plan(estimate: Any, warning: str | None) -> None:
        planned["plan"] = msgspec.to_builtins(estimate)
        if progress:
            print(f"{estimate.line()}{'; ' + warning if warning else ''}", file=sys.stderr)

    budget = Budget(wall_s=max_seconds) if max_seconds else Budget()
    options = RunOptions(budget=budget, fit_budget=max_seconds is None, on_plan=on_plan)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="smesh-vulns-") as tmp:
            root = Path(tmp)
            for item in items:
                path = root / item.filename
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(item.code, encoding="utf-8")
            report = await run_swarm(root, model, ask_settled=True, options=options)
    finally:
        await aclose_backend(model)
    result = score(items, report.findings)
    records = [
        {"id": i.id, "category": i.category, "variant": i.variant, **flags}
        for i, flags in zip(items, item_flags(items, report.findings), strict=True)
    ]
    result.update(
        {
            "backend": backend,
            "records": records,
            "tokens": report.summary.tokens,
            "items": {
                "positives": sum(i.positive for i in items),
                "decoys": sum(not i.positive for i in items),
            },
            "seconds": round(time.perf_counter() - started, 1),
            "llm_calls": report.summary.llm_calls,
            "stopped_by": report.summary.stopped_by,
            "unfinished": len(report.unfinished),
            "load_average": round(os.getloadavg()[0], 2),
            **planned,
        }
    )
    return result


def render(result: dict[str, Any]) -> str:
    """The per-weakness table in Markdown."""
    head = (
        "| CWE | pos | decoys | "
        + " | ".join(f"{s} TPR / FPR / diff / prec" for s in SOURCES)
        + " |"
    )
    rows = [head, "|" + "---|" * (3 + len(SOURCES))]

    def cell(fig: dict[str, Any]) -> str:
        def fmt(v: Any) -> str:
            return "–" if v is None else f"{v:.2f}"

        return (
            f"{fmt(fig['tpr'])} / {fmt(fig['fpr'])} / {fmt(fig['score'])} / {fmt(fig['precision'])}"
        )

    for cat, row in result["categories"].items():
        rows.append(
            f"| {cat} | {row['positives']} | {row['decoys']} | "
            + " | ".join(cell(row[s]) for s in SOURCES)
            + " |"
        )
    overall = result["overall"]
    rows.append(
        "| **all** (macro diff, pooled) | | | "
        + " | ".join(cell({**overall[s], "score": overall[s]["score"]}) for s in SOURCES)
        + " |"
    )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m smesh.eval.vulns``."""
    parser = argparse.ArgumentParser(
        prog="python -m smesh.eval.vulns", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--n", type=int, default=None, help="positives per weakness (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="scripted", help="scripted (default), local, ...")
    parser.add_argument("--category", action="append", help="only this weakness, e.g. CWE-78")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--decoys", type=Path, default=DECOYS)
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument(
        "--write", type=Path, default=None, help="only write the items' files into this directory"
    )
    args = parser.parse_args(argv)
    if args.n is not None and args.n < 1:
        print("smesh: --n must be >= 1", file=sys.stderr)
        return 2
    for path in (args.corpus,):
        if not path.is_file():
            print(f"smesh: no corpus at {path}", file=sys.stderr)
            return 2
    items = load_items(args.corpus, args.decoys, n=args.n, seed=args.seed, categories=args.category)
    if not items:
        print("smesh: no items to score", file=sys.stderr)
        return 2
    if args.write is not None:  # a project of third-party code to run `smesh swarm` on
        for item in items:
            path = args.write / item.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(item.code, encoding="utf-8")
        print(f"{len(items)} files written to {args.write}", file=sys.stderr)
        return 0
    result = asyncio.run(
        run(items, args.backend, max_seconds=args.max_seconds, progress=not args.json)
    )
    result.update({"n": args.n, "seed": args.seed})
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result))
        print(
            f"\n{result['items']['positives']} positives, {result['items']['decoys']} decoys; "
            f"{result['llm_calls']} LLM calls, {result['seconds']} s, load {result['load_average']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
