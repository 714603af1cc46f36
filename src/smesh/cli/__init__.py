"""The ``smesh`` command.

One click group; each subcommand lives in its own module and registers itself here. Errors
never reach the user as tracebacks: bad arguments print one line and exit 2, run-time
failures print one line and exit 1.
"""

from __future__ import annotations

import sys

import click

from smesh._version import __version__
from smesh.errors import SmeshError
from smesh.errors import UsageError as SmeshUsageError

__all__ = ["cli", "main"]

EXIT_FAILURE = 1
EXIT_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="smesh")
def cli() -> None:
    """smesh: coordinate LLM agents through a decaying, reinforcing signal field."""


def _register() -> None:
    # Imported here so that `import smesh.cli` stays cheap and each command module can
    # import its own (possibly heavy) dependencies lazily.
    from smesh.cli import agents, bench, compare, review, sim, status, swarm, trace
    from smesh.cli import code as code_cmd

    for module in (status, sim, bench, agents, compare, trace, review, swarm, code_cmd):
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


def _error(message: str, code: int) -> int:
    first_line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    click.echo(f"smesh: error: {first_line}", err=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (also used as the console-script entry point)."""
    _register()
    try:
        result = cli.main(args=argv, prog_name="smesh", standalone_mode=False)
    except click.UsageError as exc:
        return _error(exc.format_message(), EXIT_USAGE)
    except click.ClickException as exc:
        return _error(exc.format_message(), exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        return 130
    except SmeshUsageError as exc:
        return _error(str(exc), EXIT_USAGE)
    except SmeshError as exc:
        return _error(str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
