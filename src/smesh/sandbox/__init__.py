"""Running untrusted code (generated code, its tests) in the operating system's isolation layer.

:class:`Sandbox` runs a command on a copy of a project directory inside bubblewrap: no
network, a read-only root, a private writable copy of the project, a new PID namespace, a
fresh environment, and limits on processes, memory, disk, CPU and output; everything in it
is killed at the time limit. :func:`run_pytest` runs pytest in one and counts the results.
See ``docs/sandbox.md`` for what it does and does not protect against.

It sits beside the tools (see ``docs/design.md``): the apps, the Python tool and
``smesh eval`` all run generated code through it.
"""

from smesh.sandbox.box import Sandbox, isolation
from smesh.sandbox.bwrap import Isolation
from smesh.sandbox.host import Limits, SandboxResult
from smesh.sandbox.testrun import TestRun, run_pytest

__all__ = ["Isolation", "Limits", "Sandbox", "SandboxResult", "TestRun", "isolation", "run_pytest"]
