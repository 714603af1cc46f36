"""The ``smesh`` command.

One click group; each subcommand lives in its own module and registers itself here. Errors
never reach the user as tracebacks: a usage or configuration error prints one line and
exits 2, a run-time failure prints one line and exits 1, Ctrl-C exits 130 (see
:mod:`smesh.cli._common` for the conventions and :mod:`smesh.cli._stop` for stopping).

Run as a program (``smesh``, ``python -m smesh``), stdout is kept for smesh's own output:
native libraries that print to file descriptor 1 (zenoh's log, llama.cpp) write to stderr
instead, so ``--json`` stays one JSON document.
"""

from __future__ import annotations

import io
import os
import sys
import threading

import click

from smesh._version import __version__
from smesh.cli._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    exit_code_help,
    json_written,
    print_json,
)
from smesh.cli._stop import Interrupted, guard
from smesh.errors import SmeshError
from smesh.errors import UsageError as SmeshUsageError

__all__ = ["cli", "main"]


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=exit_code_help,
)
@click.version_option(__version__, prog_name="smesh")
def cli() -> None:
    """smesh: coordinate LLM agents through a decaying, reinforcing signal field."""


def _register() -> None:
    # Imported here so that `import smesh.cli` stays cheap and each command module can
    # import its own (possibly heavy) dependencies lazily.
    from smesh.cli import agents, bench, compare, review, runs, sim, status, swarm, trace
    from smesh.cli import code as code_cmd

    for module in (status, sim, bench, agents, compare, trace, runs, review, swarm, code_cmd):
        cli.add_command(module.command)
    from smesh.cli import mesh

    cli.add_command(mesh.command)
    cli.add_command(mesh.node_command)
    from smesh.cli import dashboard

    cli.add_command(dashboard.command)
    from smesh.cli import eval as eval_cmd

    cli.add_command(eval_cmd.command)
    from smesh.cli import approve

    cli.add_command(approve.command)
    from smesh.cli import cancel

    cli.add_command(cancel.command)


def _wants_json(argv: list[str]) -> bool:
    if "--json" in argv:
        return True
    for i, arg in enumerate(argv):
        value = arg.partition("=")[2] if arg.startswith("--format=") else None
        if arg == "--format" and i + 1 < len(argv):
            value = argv[i + 1]
        if value in ("json", "sarif"):
            return True
    return False


def _error(message: str, code: int, argv: list[str]) -> int:
    text = message.strip()
    first_line = text.splitlines()[0] if text else "unknown error"
    # on its own line: a live view or a table may have left the cursor mid-line
    click.echo(f"smesh: error: {first_line}", err=True)
    if _wants_json(argv) and not json_written():
        print_json({"error": first_line, "exit_code": code})
    return code


def _dispatch(argv: list[str]) -> int:
    try:
        result = cli.main(args=argv, prog_name="smesh", standalone_mode=False)
    except click.UsageError as exc:
        return _error(exc.format_message(), EXIT_USAGE, argv)
    except click.ClickException as exc:
        return _error(exc.format_message(), exc.exit_code, argv)
    except (click.Abort, KeyboardInterrupt, Interrupted):
        guard.say("smesh: interrupted")
        if _wants_json(argv) and not json_written():
            print_json({"error": "interrupted", "exit_code": EXIT_INTERRUPTED})
        return EXIT_INTERRUPTED
    except SmeshUsageError as exc:
        return _error(str(exc), EXIT_USAGE, argv)
    except SmeshError as exc:
        return _error(str(exc), EXIT_FAILED, argv)
    except BrokenPipeError:
        return EXIT_FAILED  # `smesh ... | head`: the reader left; nothing to tell it
    except Exception as exc:  # a bug: still one line (SMESH_DEBUG=1 shows the traceback)
        if os.environ.get("SMESH_DEBUG"):
            raise
        name = type(exc).__name__
        return _error(f"internal error ({name}: {exc}); please report it", EXIT_FAILED, argv)
    return int(result) if isinstance(result, int) else 0


def _native_stdout_to_stderr() -> None:
    """Point file descriptor 1 at stderr and keep Python's ``sys.stdout`` on the real
    stdout: what native code prints (zenoh's log, llama.cpp) cannot mix with our output."""
    try:
        sys.stdout.flush()
        real = os.dup(1)
        os.dup2(2, 1)
    except (OSError, ValueError, AttributeError):
        return
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    sys.stdout = io.TextIOWrapper(
        io.FileIO(real, "w"), encoding=encoding, errors="replace", line_buffering=True
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (also the console-script entry point, which
    passes no ``argv``: then the process itself is set up as described above)."""
    program = argv is None
    args = sys.argv[1:] if argv is None else list(argv)
    if program:
        _native_stdout_to_stderr()
    _register()
    json_written(reset=True)
    restore = guard.install(args)
    guard.program = program
    try:
        code = _dispatch(args)
    finally:
        restore()
    if program:
        # What matters is written (output flushed, journal closed). Exiting normally
        # would join the threads a library left behind (llama.cpp letting go of its
        # model): when there are any, or after Ctrl-C, end the process now.
        left = [
            t for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()
        ]
        guard.exit_later(code, after_s=0.0 if left or code == EXIT_INTERRUPTED else 1.0)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
