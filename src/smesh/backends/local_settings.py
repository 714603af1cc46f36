"""Threads and parallel slots of the embedded model, from arguments or the environment.

:func:`embedded_settings` is the one place that reads ``SMESH_THREADS`` and ``SMESH_SLOTS``;
:class:`~smesh.backends.local.LocalBackend` (and so ``resolve_backend("local", threads=,
slots=)``) resolves its defaults through it, and a CLI passes its ``--threads``/``--slots``
to the backend the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from smesh.errors import UsageError

__all__ = [
    "DEFAULT_SLOTS",
    "SLOTS_ENV",
    "THREADS_ENV",
    "EmbeddedSettings",
    "default_threads",
    "embedded_settings",
    "positive",
]

THREADS_ENV = "SMESH_THREADS"
SLOTS_ENV = "SMESH_SLOTS"
DEFAULT_SLOTS = 4


@dataclass(frozen=True, slots=True)
class EmbeddedSettings:
    """CPU threads and parallel slots of the embedded model.

    Attributes:
        threads: llama.cpp compute threads.
        slots: sequences decoded together (``n_parallel``); each gets its own context.
    """

    threads: int
    slots: int


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours taskset and container CPU sets
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """Threads when nothing is configured: every usable core but one (at least one).

    llama.cpp's threads wait for each other after every step, so one that shares its core
    with anything else (the agents' own event loop, another job) stalls them all: on the
    2-core machine measured here, under load, 2 threads generated ~1 tok/s and 1 thread
    ~15 tok/s. Leaving a core free costs a little peak speed and avoids that collapse.
    """
    return max(1, _usable_cpus() - 1)


def positive(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{what} must be a whole number >= 1, not {value!r}")
    return value


def _from_env(variable: str, environ: Mapping[str, str]) -> int | None:
    raw = environ.get(variable, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"{variable}={raw!r}: expected a whole number >= 1")
    return value


def embedded_settings(
    threads: int | None = None,
    slots: int | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> EmbeddedSettings:
    """Resolve threads and slots: the argument, else ``$SMESH_THREADS``/``$SMESH_SLOTS``, else
    the default (:func:`default_threads`; 4 slots).

    This is the only place that reads those variables; a CLI passes its ``--threads`` and
    ``--slots`` here (None when not given) and lets the environment fill the rest.

    Raises:
        UsageError: a value, or a variable's value, that is not a whole number >= 1.
    """
    env = os.environ if environ is None else environ
    t = positive(threads, "threads") if threads is not None else _from_env(THREADS_ENV, env)
    n = positive(slots, "slots") if slots is not None else _from_env(SLOTS_ENV, env)
    return EmbeddedSettings(
        threads=t if t is not None else default_threads(),
        slots=n if n is not None else DEFAULT_SLOTS,
    )
