"""Helpers every ``smesh`` command shares: the consoles, escaping, JSON output, exit codes
and the embedded model's ``--threads``/``--slots``.

Conventions (every command, including ones added later):

- Exit codes: :data:`EXIT_OK` (0) all work accepted; :data:`EXIT_FAILED` (1) the run
  ended with failed or unfinished work, or a backend or analyzer never worked;
  :data:`EXIT_USAGE` (2) a usage or configuration error, found before anything ran;
  :data:`EXIT_INTERRUPTED` (130) Ctrl-C. Return one from the command, or raise a
  :class:`~smesh.errors.UsageError` (2) or another :class:`~smesh.errors.SmeshError` (1).
- Text that came from a user, a file, a model or an exception goes through :func:`esc`
  (or :func:`plain`) before rich renders it: ``[local-1.5b]`` is not markup and
  ``anthropic:x`` is not an emoji. The consoles here never render emoji codes.
- ``--json`` prints exactly one JSON document on stdout, through :func:`print_json`;
  progress and errors go to stderr. When a ``--json`` command fails before printing its
  document, ``smesh`` prints ``{"error": ..., "exit_code": ...}`` instead.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.text import Text

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "backend_options",
    "console",
    "embedded_options",
    "err_console",
    "esc",
    "exit_code_help",
    "journal_option",
    "json_written",
    "live_view",
    "plain",
    "print_json",
    "wrote_json",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: the exit-code paragraph of ``smesh --help`` and the run commands' help
exit_code_help = (
    "Exit status: 0 all work accepted; 1 the run ended with failed or unfinished work (or a "
    "backend or analyzer never worked); 2 usage or configuration error (found before "
    "anything runs); 130 interrupted (Ctrl-C; a second Ctrl-C exits at once)."
)

T = TypeVar("T")

# emoji=False: ``anthropic:x:`` must not become an emoji; stdout and stderr are looked up
# when writing, so a redirected sys.stdout (tests, ``smesh`` keeping native logs off
# stdout) is honoured.
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)

_JSON = {"written": False}


def esc(value: object) -> str:
    """``value`` as text that rich prints literally (no markup)."""
    return escape(str(value))


def plain(value: object) -> Text:
    """``value`` as a rich ``Text`` (no markup, no emoji): for table cells."""
    return Text(str(value))


def print_json(data: Any) -> None:
    """Print ``data`` (msgspec structs included) as indented JSON on stdout: the command's
    one JSON document."""
    builtins = msgspec.to_builtins(data)
    sys.stdout.write(json.dumps(builtins, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    wrote_json()


def wrote_json() -> None:
    """Note that the command printed its JSON document (it printed it another way)."""
    _JSON["written"] = True


def json_written(reset: bool = False) -> bool:
    """Whether a JSON document was printed (and forget it with ``reset``)."""
    written = _JSON["written"]
    if reset:
        _JSON["written"] = False
    return written


def backend_options(
    spec: str, threads: int | None, slots: int | None, *, strict: bool = True
) -> dict[str, Any]:
    """The options to resolve ``spec`` with: ``threads``/``slots`` for the embedded model.

    Args:
        spec: the backend string.
        threads: ``--threads`` (None: ``$SMESH_THREADS`` or the default).
        slots: ``--slots`` (None: ``$SMESH_SLOTS`` or the default).
        strict: refuse them for another kind of backend (else they are dropped).

    Raises:
        UsageError: a malformed spec, or ``--threads``/``--slots`` for another backend.
    """
    from smesh.backends import parse_backend
    from smesh.errors import UsageError

    kind, _ = parse_backend(spec)
    given = {k: v for k, v in (("threads", threads), ("slots", slots)) if v is not None}
    if kind != "local":
        if given and strict:
            flags = " and ".join(f"--{k}" for k in given)
            verb = "apply" if len(given) > 1 else "applies"
            raise UsageError(f"{flags} {verb} to the embedded model (--backend local), not {spec}")
        return {}
    return given


def embedded_options(func: Callable[..., T]) -> Callable[..., T]:
    """Add ``--threads`` and ``--slots`` (the embedded model's CPU threads and parallel
    slots); the command receives them as ``threads`` and ``slots`` (None when not given)."""
    options = (
        click.option(
            "--threads",
            type=click.IntRange(min=1),
            default=None,
            help="CPU threads of the embedded model (default $SMESH_THREADS, else every "
            "usable core but one).",
        ),
        click.option(
            "--slots",
            type=click.IntRange(min=1),
            default=None,
            help="Generations the embedded model runs at once (default $SMESH_SLOTS, else 4).",
        ),
    )
    decorated: Callable[..., T] = func
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


def journal_option(
    help_text: str = "The SQLite journal.",
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """``--journal PATH``, received as ``journal_path`` (default: ``journal.db`` in the
    user's state directory, ``$XDG_STATE_HOME/smesh``)."""
    from smesh.agents.journal import default_journal

    return click.option(
        "--journal",
        "journal_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=default_journal,
        show_default="$XDG_STATE_HOME/smesh/journal.db",
        help=help_text,
    )


@contextlib.contextmanager
def live_view(renderable: RenderableType, *, console: Console = err_console) -> Iterator[Live]:
    """A rich live view that always ends its last line: rich does so on a terminal only,
    and a line printed after it (an error, the stop line) must start a line of its own."""
    try:
        with Live(renderable, console=console, refresh_per_second=4) as live:
            yield live
    finally:
        if not console.is_terminal:
            console.file.write("\n")
            console.file.flush()
