"""Render the `smesh eval` results saved under benchmarks/eval/ as Markdown tables.

    python benchmarks/eval_tables.py            # every saved suite
    python benchmarks/eval_tables.py code.json  # one file
    python benchmarks/eval_tables.py --plot docs/img  # also re-plot the merged results

Each JSON file is the output of `smesh eval SUITE --json`; results of the same suite on
the same items (e.g. a condition run separately) are merged by condition.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent / "eval"


def _load(paths: list[Path]) -> dict[str, dict[str, Any]]:
    suites: dict[str, dict[str, Any]] = {}
    for path in paths:
        text = path.read_text(encoding="utf-8").strip()
        if not text:
            continue
        doc = json.loads(text)
        into = suites.setdefault(doc["suite"], {**doc, "conditions": [], "files": []})
        into["conditions"].extend(doc["conditions"])
        into["files"].append(path.name)
        into.setdefault("details", {}).update(doc["extra"].get("details", {}))
    return suites


def _rate_table(doc: dict[str, Any]) -> str:
    rows = [
        "| condition | score | 95 % CI | tokens/item (max) | calls/item | s/item |",
        "|---|---|---|---|---|---|",
    ]
    for c in doc["conditions"]:
        detail = doc["details"].get(c["name"], {})
        rows.append(
            f"| {c['name']} | **{c['score']:.1%}** | {c['ci_low']:.1%} – {c['ci_high']:.1%} | "
            f"{c['tokens_per_item']:,.0f} ({detail.get('tokens_max', 0):,}) | "
            f"{detail.get('calls_per_item', 0):.1f} | {c['seconds_per_item']:.1f} |"
        )
    return "\n".join(rows)


def _paired(doc: dict[str, Any]) -> str:
    names = [c["name"] for c in doc["conditions"]]
    scores = {
        name: [i["score"] for i in doc["details"][name]["items"]]
        for name in names
        if name in doc["details"]
    }
    lines = []
    for a in names:
        for b in names:
            if a < b and a in scores and b in scores and len(scores[a]) == len(scores[b]):
                wins = sum(x > y for x, y in zip(scores[a], scores[b], strict=True))
                losses = sum(x < y for x, y in zip(scores[a], scores[b], strict=True))
                lines.append(
                    f"- {a} vs {b}: {a} alone right on {wins} items, {b} alone on {losses}"
                )
    return "\n".join(lines)


def _plot(doc: dict[str, Any], directory: Path) -> None:
    import msgspec

    from smesh.eval import EvalResult
    from smesh.eval.plot import plot_result

    keys = ("suite", "backend", "n", "seed", "conditions", "extra")
    result = msgspec.convert({k: doc[k] for k in keys}, EvalResult)
    print(f"plot: {plot_result(result, directory)}\n")


def main(argv: list[str]) -> None:
    plot_dir: Path | None = None
    if "--plot" in argv:
        at = argv.index("--plot")
        plot_dir = Path(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
    paths = [Path(a) for a in argv] or sorted(HERE.glob("*.json"))
    for suite, doc in _load(paths).items():
        if plot_dir is not None:
            _plot(doc, plot_dir)
        print(
            f"### {suite} ({', '.join(doc['files'])}; backend {doc['backend']}, n={doc['n']}, "
            f"seed {doc['seed']})\n"
        )
        if suite in ("code", "reason"):
            print(_rate_table(doc))
            print()
            print(_paired(doc))
        else:
            print("| condition | score | 95 % CI | s/item |\n|---|---|---|---|")
            for c in doc["conditions"]:
                print(
                    f"| {c['name']} | {c['score']:,.4g} | {c['ci_low']:,.4g} – "
                    f"{c['ci_high']:,.4g} | {c['seconds_per_item']:.4g} |"
                )
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
