"""Virtual time for async tests (see :mod:`smesh.agents.virtual_time`, where it lives)."""

from smesh.agents.virtual_time import LoopClock, VirtualEventLoop, run_virtual

__all__ = ["LoopClock", "VirtualEventLoop", "run_virtual"]
