"""``smesh compare``: the same prompts on every available backend."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence

import click
import msgspec
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table
from rich.text import Text

from smesh.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    backend_options,
    console,
    embedded_options,
    err_console,
    esc,
    exit_code_help,
    plain,
    print_json,
)
from smesh.cli._stop import run_async
from smesh.errors import (
    AuthenticationFailed,
    BackendUnavailable,
    ModelNotFound,
    SmeshError,
)

__all__ = ["DEFAULT_PROMPTS", "CompareResult", "command", "default_backends", "run_compare"]

#: The original's three prompts: a short function, a short explanation, and "2+2".
DEFAULT_PROMPTS: dict[str, str] = {
    "function": "Write a short Python function that returns the n-th Fibonacci number.",
    "explain": "In 2-3 sentences, explain what a hash table is.",
    "arithmetic": "What is 2+2?",
}


class CompareResult(msgspec.Struct, frozen=True, kw_only=True):
    """One backend x prompt outcome, in the stable ``smesh compare --json`` shape."""

    backend: str
    model: str
    prompt_id: str
    ok: bool
    latency_s: float | None
    input_tokens: int | None
    output_tokens: int | None
    tokens_per_s: float | None
    error: str | None
    answer: str = ""

    def to_json(self) -> dict[str, object]:
        """The contract's fields only (the answer goes to the table, not the JSON)."""
        data = msgspec.structs.asdict(self)
        data.pop("answer")
        return data


def default_backends(timeout: float = 2.0) -> list[str]:
    """``local`` plus every remote backend that looks usable here."""
    from smesh.backends.probe import ollama_models

    specs = ["local"]
    models = ollama_models(timeout)
    if isinstance(models, list) and (models or os.environ.get("OLLAMA_MODEL")):
        specs.append(f"ollama:{os.environ.get('OLLAMA_MODEL') or models[0]}")
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        specs.append(f"openai:{os.environ.get('OPENAI_MODEL', 'gpt-4o-mini')}")
    if os.environ.get("ANTHROPIC_API_KEY"):
        specs.append(f"anthropic:{os.environ.get('ANTHROPIC_MODEL', 'claude-3-5-haiku-latest')}")
    if os.environ.get("OPENROUTER_API_KEY"):
        model = os.environ.get("OPENROUTER_MODEL", "meta-llama/llama-3.1-8b-instruct")
        specs.append(f"openrouter:{model}")
    return specs


def _failure(spec: str, prompt_id: str, error: BaseException) -> CompareResult:
    return CompareResult(
        backend=spec,
        model=spec.partition(":")[2] or spec,
        prompt_id=prompt_id,
        ok=False,
        latency_s=None,
        input_tokens=None,
        output_tokens=None,
        tokens_per_s=None,
        error=str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__,
    )


async def _run_backend(
    spec: str,
    prompts: dict[str, str],
    *,
    max_tokens: int,
    timeout: float,
    threads: int | None = None,
    slots: int | None = None,
) -> list[CompareResult]:
    from smesh.backends import (
        Request,
        Timeout,
        aclose_backend,
        resolve_backend,
    )

    try:
        backend = resolve_backend(spec, **backend_options(spec, threads, slots, strict=False))
    except SmeshError as exc:
        return [_failure(spec, pid, exc) for pid in prompts]
    results: list[CompareResult] = []
    try:
        start = getattr(backend, "start", None)
        if start is not None:  # load the embedded model outside the timed calls
            try:
                await start()
            except SmeshError as exc:
                return [_failure(spec, pid, exc) for pid in prompts]
        timed = Timeout(backend, timeout)
        for pid, prompt in prompts.items():
            request = Request.of(
                prompt, max_tokens=max_tokens, temperature=0.2, allow_truncated=True
            )
            try:
                response = await timed.complete(request)
            except (BackendUnavailable, AuthenticationFailed, ModelNotFound) as exc:
                # The backend itself is unusable: report it once per prompt, don't re-try.
                results.extend(_failure(spec, p, exc) for p in list(prompts)[len(results) :])
                break
            except SmeshError as exc:
                results.append(_failure(spec, pid, exc))
                continue
            results.append(
                CompareResult(
                    backend=spec,
                    model=response.model,
                    prompt_id=pid,
                    ok=True,
                    latency_s=round(response.latency_s, 4),
                    input_tokens=response.input_tokens,
                    output_tokens=response.output_tokens,
                    tokens_per_s=round(response.tokens_per_s, 2),
                    error=None,
                    answer=response.text,
                )
            )
    finally:
        with contextlib.suppress(SmeshError):
            await aclose_backend(backend)
    return results


def run_compare(
    specs: Sequence[str],
    prompts: dict[str, str],
    *,
    max_tokens: int = 160,
    timeout: float = 120.0,
    progress: Callable[[str], None] | None = None,
    threads: int | None = None,
    slots: int | None = None,
) -> list[CompareResult]:
    """Run every prompt on every backend, one backend at a time (so timings don't mix).

    ``threads`` and ``slots`` apply to the embedded model (``local``) only. Ctrl-C stops
    the call in flight and ends the comparison (:class:`~smesh.cli._stop.Interrupted`).
    """

    async def main() -> list[CompareResult]:
        out: list[CompareResult] = []
        for spec in specs:
            if progress is not None:
                progress(spec)
            out.extend(
                await _run_backend(
                    spec,
                    prompts,
                    max_tokens=max_tokens,
                    timeout=timeout,
                    threads=threads,
                    slots=slots,
                )
            )
        return out

    return run_async(main())


def _table(results: list[CompareResult]) -> Table:
    table = Table(title="smesh compare", title_justify="left")
    for name, justify in (
        ("backend", "left"),
        ("prompt", "left"),
        ("latency s", "right"),
        ("in", "right"),
        ("out", "right"),
        ("tok/s", "right"),
        ("answer (first 80 chars) / error", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in results:
        if r.ok:
            answer = " ".join(r.answer.split())[:80]
            table.add_row(
                plain(r.backend),
                plain(r.prompt_id),
                f"{r.latency_s:.2f}",
                str(r.input_tokens),
                str(r.output_tokens),
                f"{r.tokens_per_s:.1f}",
                plain(answer),
            )
        else:
            reason = Text.assemble(("unavailable: ", "red"), str(r.error))
            table.add_row(plain(r.backend), plain(r.prompt_id), "-", "-", "-", "-", reason)
    return table


@click.command("compare", epilog=exit_code_help)
@click.option(
    "--backends",
    "backends",
    default=None,
    metavar="LIST",
    help="Comma-separated backend strings (default: local plus what is configured).",
)
@click.option(
    "--prompt",
    "prompts",
    multiple=True,
    help="A prompt to run instead of the three defaults (repeatable).",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(1, 8192),
    default=160,
    show_default=True,
    help="Cap on generated tokens per answer.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=120.0,
    show_default=True,
    help="Seconds allowed per call.",
)
@embedded_options
@click.option("--json", "as_json", is_flag=True, help='Print {"results": [...]} as JSON.')
def command(
    backends: str | None,
    prompts: tuple[str, ...],
    max_tokens: int,
    timeout: float,
    threads: int | None,
    slots: int | None,
    as_json: bool,
) -> int:
    """Run the same prompts on every available backend: latency, tokens, tok/s.

    A backend that cannot be used is listed with its reason instead of stopping the run;
    the command then exits 1 (every answer obtained: 0).
    """
    specs = [s.strip() for s in backends.split(",") if s.strip()] if backends else None
    chosen = (
        {f"custom{i}" if len(prompts) > 1 else "custom": p for i, p in enumerate(prompts, 1)}
        if prompts
        else dict(DEFAULT_PROMPTS)
    )
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        console=err_console,
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task("looking for backends", total=None)
        specs = specs or default_backends()
        results = run_compare(
            specs,
            chosen,
            max_tokens=max_tokens,
            timeout=timeout,
            progress=lambda spec: bar.update(task, description=f"running {esc(spec)}"),
            threads=threads,
            slots=slots,
        )
    if as_json:
        print_json({"results": [r.to_json() for r in results]})
    else:
        console.print(_table(results))
    failed = sorted({r.backend for r in results if not r.ok})
    if failed:
        click.echo(f"smesh: some prompts got no answer from {', '.join(failed)}", err=True)
    return EXIT_FAILED if failed else EXIT_OK
