"""The files changed since a git ref: what ``review --changed REF`` (and ``swarm``) look at.

In CI a review runs on a pull request: only the files it touches matter. A file counts
as changed when it differs from ``REF`` in the working tree (committed since, staged or
not) or is new and not ignored; deleted files are gone and are not reviewed. The ref is
user input, so it is checked with ``git rev-parse --verify`` and always passed after
``--end-of-options``: a "ref" like ``--output=x`` is an error, never an option.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from smesh.errors import UsageError

__all__ = ["changed_files"]

_TIMEOUT_S = 60.0


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    git = shutil.which("git")
    if git is None:
        raise UsageError("--changed needs git, and git is not installed")
    try:
        return subprocess.run(
            [git, *args],
            cwd=cwd,
            capture_output=True,
            timeout=_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise UsageError(f"git {args[0]} did not answer within {_TIMEOUT_S:g} s") from None


def changed_files(root: str | Path, ref: str) -> list[str]:
    """Paths (relative to ``root``, ``/``-separated) of the files under ``root`` that
    changed since ``ref``, sorted.

    Raises:
        UsageError: no git, ``root`` is not in a git work tree, or ``ref`` names no commit.
    """
    base = Path(root).resolve()
    where = base if base.is_dir() else base.parent
    if not ref or "\0" in ref:
        raise UsageError("--changed needs a git ref (a branch, a tag or a commit)")
    top = _git(["rev-parse", "--show-toplevel"], where)
    if top.returncode != 0:
        raise UsageError(f"--changed: {str(root)!r} is not inside a git work tree")
    toplevel = Path(top.stdout.decode().strip()).resolve()
    verified = _git(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], where
    )
    if verified.returncode != 0:
        raise UsageError(f"--changed: {ref!r} names no commit in this repository")
    commit = verified.stdout.decode().strip()
    diff = _git(
        ["diff", "--name-only", "-z", "--no-renames", "--diff-filter=ACMRT", commit, "--"],
        toplevel,
    )
    new = _git(["ls-files", "--others", "--exclude-standard", "-z"], toplevel)
    if diff.returncode != 0 or new.returncode != 0:
        message = (diff.stderr or new.stderr).decode(errors="replace").strip().splitlines()
        raise UsageError(f"--changed: git failed: {message[-1] if message else 'no output'}")
    names = [n for n in (diff.stdout + new.stdout).decode(errors="replace").split("\0") if n]
    out: set[str] = set()
    for name in names:
        path = (toplevel / name).resolve()
        if base.is_file():
            if path == base:
                out.add(base.name)
            continue
        try:
            rel = path.relative_to(base)
        except ValueError:
            continue  # changed, but outside the directory being reviewed
        if path.is_file():
            out.add(rel.as_posix())
    return sorted(out)
