"""Scripted workers for the ``fanout`` and ``faults`` suites: heterogeneous, heavy-tailed
latency and flaky calls, identical for every condition.

Every call's latency and failure is drawn from ``(seed, worker, task, try)`` alone, so the
smesh team, the round-robin dispatcher and the shared work queue meet exactly the same
workers on the same tasks, whatever order they reach them in. All conditions run on
virtual time (:func:`smesh.agents.virtual_time.run_virtual`): makespans are exact and a
run of hundreds of simulated seconds takes milliseconds.
"""

from __future__ import annotations

import asyncio
import math
import random
import zlib
from collections import Counter

import msgspec

from smesh.errors import BackendError

__all__ = ["CallFailed", "Ledger", "Workers"]


class CallFailed(BackendError):
    """A scripted call that failed (after spending its latency)."""


class Workers(msgspec.Struct, frozen=True, kw_only=True):
    """A population of scripted workers.

    Attributes:
        count: how many.
        base_s: median latency of a normal worker's call, in seconds.
        sigma: spread of the lognormal latency (1.0: a heavy tail; a few calls take 5-10x
            the median).
        slow_share: share of workers that are ``slow_factor`` times slower.
        slow_factor: how much slower they are.
        flaky_share: share of workers whose calls fail with ``fail_rate``.
        fail_rate: failure probability of a flaky worker's call.
        seed: the draw.
    """

    count: int = 20
    base_s: float = 1.0
    sigma: float = 1.0
    slow_share: float = 0.2
    slow_factor: float = 10.0
    flaky_share: float = 0.2
    fail_rate: float = 0.1
    seed: int = 0

    def ids(self) -> list[str]:
        """Worker ids, ``w00`` ...; the slow ones come first, then the flaky ones."""
        width = len(str(max(0, self.count - 1)))
        return [f"w{i:0{width}d}" for i in range(self.count)]

    def _index(self, worker: str) -> int:
        return int(worker[1:])

    def is_slow(self, worker: str) -> bool:
        return self._index(worker) < round(self.slow_share * self.count)

    def is_flaky(self, worker: str) -> bool:
        slow = round(self.slow_share * self.count)
        return slow <= self._index(worker) < slow + round(self.flaky_share * self.count)

    def _rng(self, worker: str, task: str, attempt: int) -> random.Random:
        key = f"{self.seed}/{worker}/{task}/{attempt}".encode()
        return random.Random(zlib.crc32(key) ^ (self.seed * 0x9E3779B1))

    def draw(self, worker: str, task: str, attempt: int) -> tuple[float, bool]:
        """``(latency_s, fails)`` of ``worker``'s ``attempt``-th try at ``task``."""
        rng = self._rng(worker, task, attempt)
        latency = self.base_s * math.exp(rng.gauss(0.0, self.sigma))
        if self.is_slow(worker):
            latency *= self.slow_factor
        fails = self.is_flaky(worker) and rng.random() < self.fail_rate
        return latency, fails


class Ledger:
    """What the workers did: executions, failures, busy time, per task and worker."""

    def __init__(self, workers: Workers) -> None:
        self.workers = workers
        self.started: Counter[str] = Counter()  # task -> calls started
        self.succeeded: Counter[str] = Counter()  # task -> calls that returned a result
        self.tries: Counter[tuple[str, str]] = Counter()  # (worker, task) -> tries
        self.busy: dict[str, float] = dict.fromkeys(workers.ids(), 0.0)  # seconds in calls
        self.failures = 0
        self.interrupted = 0  # calls cancelled mid-way (their worker was killed)

    async def call(self, worker: str, task: str) -> str:
        """Run one scripted call of ``worker`` on ``task``: wait its latency, then fail or
        return a result. Cancellation (a killed worker) is counted and propagated."""
        self.tries[(worker, task)] += 1
        latency, fails = self.workers.draw(worker, task, self.tries[(worker, task)])
        self.started[task] += 1
        loop = asyncio.get_running_loop()
        begun = loop.time()
        try:
            await asyncio.sleep(latency)
        except asyncio.CancelledError:
            self.interrupted += 1
            self.busy[worker] += loop.time() - begun
            raise
        self.busy[worker] += latency
        if fails:
            self.failures += 1
            raise CallFailed(f"{worker} failed on {task}", backend=worker)
        self.succeeded[task] += 1
        return f"{task} done by {worker}"

    def duplicates(self) -> int:
        """Executions beyond the first successful one, summed over tasks."""
        return sum(max(0, n - 1) for n in self.succeeded.values())

    def idle_s(self, makespan: float, alive: dict[str, float] | None = None) -> float:
        """Worker-seconds not spent in calls, up to the makespan (or a worker's death)."""
        total = 0.0
        for worker in self.workers.ids():
            until = makespan if alive is None else min(makespan, alive.get(worker, makespan))
            total += max(0.0, until - self.busy[worker])
        return total
