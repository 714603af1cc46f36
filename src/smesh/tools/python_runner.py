"""The sandboxed Python runner: a model runs a snippet and reads what it printed.

:class:`PythonTool` (``run_python``) writes the snippet into a fresh temporary directory
and runs ``python -I snippet.py`` there inside :class:`~smesh.sandbox.Sandbox`: no network,
a read-only system, a private writable copy of that directory only, a new PID namespace, a
fresh environment, and caps on wall time, memory, processes, disk and output. It answers
with the exit status and the tail of the output (stdout and stderr, interleaved)::

    agent = Agent("analyst", backend=..., tools=["python"])       # tool string
    loop = ToolLoop([PythonTool(limits=Limits(timeout_s=5))])      # or directly

Where the isolation layer is missing (no bubblewrap, user namespaces disabled) it refuses
to run anything: each call comes back to the model as an error saying why. Running
snippets unsandboxed takes an explicit opt-in: ``PythonTool(unsafe_local_exec=True)``, or
the tool string ``python:unsafe-local`` (same caps, no isolation).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from smesh.errors import SandboxUnavailable, ToolError, UsageError
from smesh.sandbox import Limits, Sandbox
from smesh.tools.base import CallContext, Tool

__all__ = ["DEFAULT_LIMITS", "PythonTool"]

#: Caps of one snippet: small, because a model's snippet computes an answer, nothing more.
DEFAULT_LIMITS = Limits(
    timeout_s=10.0,
    cpu_s=10,
    memory_bytes=512 * 1024**2,
    file_bytes=16 * 1024**2,
    disk_bytes=32 * 1024**2,
    tmp_bytes=32 * 1024**2,
    processes=32,
    open_files=64,
    output_bytes=8 * 1024,
)
_MAX_CODE_CHARS = 100_000
# the host kills a sandbox 10 s past its own limit: the tool waits a little longer still,
# so its answer is the sandbox's "killed after N s", not a bare tool timeout
_HOST_GRACE_S = 15.0


class PythonTool(Tool):
    """Runs Python snippets in a sandbox.

    Args:
        limits: caps of each run (default :data:`DEFAULT_LIMITS`: 10 s, 512 MiB, 32
            processes, 8 KiB of output kept).
        python: the interpreter (its installation and virtual environment are visible,
            read-only, so installed packages can be imported).
        unsafe_local_exec: where there is no isolation layer, run snippets as plain
            subprocesses (same caps, no isolation) instead of refusing.
        name: the tool's name.
        sandbox: a ready :class:`~smesh.sandbox.Sandbox` (overrides ``python`` and
            ``unsafe_local_exec``).
    """

    name = "run_python"
    description = (
        "Run a Python 3 program and get its exit status and output. Print what you need to "
        "see: only printed output comes back. No network and no files outside a scratch "
        "directory; runs are capped in time and memory."
    )
    parameters: dict[str, Any] = {  # noqa: RUF012 - the class-level schema every Tool has
        "type": "object",
        "properties": {
            "code": {"type": "string", "description": "the complete program to run"},
        },
        "required": ["code"],
        "additionalProperties": False,
    }

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        python: str = sys.executable,
        unsafe_local_exec: bool = False,
        name: str | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.limits = limits or DEFAULT_LIMITS
        if self.limits.timeout_s <= 0:
            raise UsageError("the Python tool's timeout_s must be > 0")
        self.sandbox = sandbox or Sandbox(
            limits=self.limits, python=python, unsafe_local_exec=unsafe_local_exec
        )
        super().__init__(name=name, timeout_s=self.limits.timeout_s + _HOST_GRACE_S)

    @property
    def isolated(self) -> bool:
        """Whether snippets run inside the isolation layer (probed once per interpreter)."""
        return self.sandbox.isolated

    async def invoke(self, args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        """Run ``args["code"]``; return ``{exit_code, output, ...}``.

        Raises:
            ToolError: no sandbox (and no opt-in), or the sandbox itself failed.
        """
        code = args["code"]
        if len(code) > _MAX_CODE_CHARS:
            raise ToolError(f"the program is over {_MAX_CODE_CHARS:,} characters", tool=self.name)
        try:
            self.sandbox.check()
        except SandboxUnavailable as exc:
            raise ToolError(str(exc), tool=self.name) from None
        with tempfile.TemporaryDirectory(prefix="smesh-python-") as workdir:
            (Path(workdir) / "snippet.py").write_text(code, encoding="utf-8")
            argv = [self.sandbox.python, "-I", "snippet.py"]
            result = await self.sandbox.run(argv, cwd=workdir, limits=self.limits)
        if result.error and result.exit_code != 0 and not result.killed_by:
            raise ToolError(f"the sandbox failed: {result.error}", tool=self.name)
        answer: dict[str, Any] = {"exit_code": result.exit_code, "output": result.output}
        if result.killed_by:
            limit = "time" if result.killed_by == "timeout" else result.killed_by
            answer["exit_code"] = -9
            answer["killed_by"] = result.killed_by
            answer["output"] = result.output.rstrip("\n") + f"\n(killed: over its {limit} limit)"
        if not result.isolated:
            answer["isolated"] = False
        return answer
