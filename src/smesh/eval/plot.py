"""PNG plots of eval results (needs matplotlib: the ``plot`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smesh.errors import UsageError
from smesh.eval.result import EvalResult

__all__ = ["plot_result"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'smesh[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_result(result: EvalResult, directory: Path) -> Path:
    """Write ``eval-SUITE.png`` for ``result`` into ``directory``; return its path."""
    plt = _pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"eval-{result.suite}.png"
    drawers = {"faults": _faults, "scale": _scale}
    figure = drawers.get(result.suite, _bars)(plt, result)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def _bars(plt: Any, result: EvalResult) -> Any:
    """Score per condition with its interval; tokens per item under each bar."""
    names = [c.name for c in result.conditions]
    fig, ax = plt.subplots(figsize=(max(6.4, 1.55 * len(names)), 3.8))
    scores = [c.score for c in result.conditions]
    low = [max(0.0, c.score - c.ci_low) for c in result.conditions]
    high = [max(0.0, c.ci_high - c.score) for c in result.conditions]
    colors = ["#2a9d8f" if "smesh" in n or n.startswith("team") else "#8d99ae" for n in names]
    ax.bar(names, scores, yerr=[low, high], capsize=4, color=colors)
    ax.tick_params(axis="x", labelsize=8)
    rate = result.suite in ("code", "reason")
    for i, c in enumerate(result.conditions):
        label = f"{c.score:.0%}" if rate else f"{c.score:.1f}"
        if rate:
            label += f"\n{c.tokens_per_item:.0f} tok"
        ax.annotate(label, (i, c.ci_high), ha="center", va="bottom", fontsize=8)
    titles = {
        "code": "HumanEval pass@1 (hidden tests)",
        "reason": "reasoning-gym accuracy",
        "fanout": "makespan, virtual s (lower is better)",
    }
    ax.set_title(f"{titles.get(result.suite, result.suite)} · {result.backend} · n={result.n}")
    if rate:
        ax.set_ylim(0, min(1.15, max([c.ci_high for c in result.conditions] + [0.1]) * 1.25))
        budget = result.extra.get("budget_tokens_per_item")
        ax.set_xlabel(f"95% bootstrap CI · budget {budget} tokens/item · seed {result.seed}")
    else:
        ax.set_ylim(0, max([c.ci_high for c in result.conditions] + [1.0]) * 1.2)
        ax.set_xlabel(f"mean over draws, 95% bootstrap CI · seed {result.seed}")
    return fig


def _faults(plt: Any, result: EvalResult) -> Any:
    curve = result.extra["curve"]
    rates = [100 * p["rate"] for p in curve]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(rates, [p["completion"] * 100 for p in curve], "o-", color="#2a9d8f")
    ax.set_xlabel("agents killed mid-run (%)")
    ax.set_ylabel("tasks completed (%)", color="#2a9d8f")
    ax.set_ylim(0, 105)
    twin = ax.twinx()
    twin.plot(rates, [p["makespan_ratio_mean"] for p in curve], "s--", color="#e76f51")
    twin.set_ylabel("makespan / no-fault makespan", color="#e76f51")
    twin.set_ylim(0, max(2.6, max(p["makespan_ratio_max"] for p in curve) * 1.1))
    twin.axhline(2.5, color="#e76f51", linestyle=":", linewidth=1)
    rows = (result.extra.get("mesh") or {}).get("curve", [])
    if rows:
        rates_seen = sorted({p["rate"] for p in rows})
        mean = {
            r: [
                sum(p[k] for p in rows if p["rate"] == r) / sum(p["rate"] == r for p in rows)
                for k in ("completion", "duration_ratio")
            ]
            for r in rates_seen
        }
        xs = [100 * r for r in rates_seen]
        ax.plot(xs, [mean[r][0] * 100 for r in rates_seen], "o:", color="#264653")
        twin.plot(xs, [mean[r][1] for r in rates_seen], "s:", color="#9c4f2e")
        ax.legend(["in-process (asyncio kills)", "mesh (SIGKILL peers)"], loc="lower left")
    ax.set_title(f"faults: {result.n} tasks, {result.extra['agents']} agents, seed {result.seed}")
    return fig


def _scale(plt: Any, result: EvalResult) -> Any:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.6, 3.8))
    for ax, key, x, label in (
        (left, "agent_sweep", "agents", "agents"),
        (right, "task_sweep", "tasks", "tasks"),
    ):
        rows = result.extra[key]
        xs = [r[x] for r in rows]
        ax.loglog(xs, [r["us_per_task"] for r in rows], "o-", color="#2a9d8f", label="CPU µs/task")
        ax.loglog(
            xs, [r["wall_us_per_task"] for r in rows], "s--", color="#8d99ae", label="wall µs/task"
        )
        ax.set_xlabel(label)
        ax.set_ylabel("µs per task")
        fixed = rows[0]["tasks"] if x == "agents" else rows[0]["agents"]
        ax.set_title(f"{'tasks' if x == 'agents' else 'agents'} fixed at {fixed:,}")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("scale: coordination cost per task (zero-latency backend)")
    fig.tight_layout()
    return fig
