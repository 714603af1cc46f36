"""When live signals expire: a timing wheel over their expiry times.

Decay is lazy, and each signal's expiry time is known when it is emitted (see
:meth:`smesh.decay.Decay.expiry_age`). A :class:`~smesh.field.Field` files each address in
a bucket of :data:`BUCKET_SECONDS` by that time, with a heap of bucket keys, so collecting
what is due looks only at buckets whose time has come: its cost follows the number of
expiring signals, not live ones. An address filed again (a renewal) leaves its stale entry
behind, to be skipped when its bucket comes due.

Pure and synchronous, like the rest of the core; the wheel only files addresses, the field
owns the signals.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping

from smesh.decay import Decay
from smesh.signal import Signal

__all__ = ["BUCKET_SECONDS", "ExpiryWheel"]

#: Width of one bucket. Expiry itself is exact: a due bucket is checked signal by signal,
#: and signals not yet expired stay in it.
BUCKET_SECONDS = 0.25

_AGES_MAX = 4096  # signals rarely vary this much in (decay, I0, ttl)


class ExpiryWheel:
    """Addresses filed by expiry time (see the module docstring).

    Attributes:
        next_due: the time the earliest non-empty bucket starts (``inf`` when empty):
            nothing can be due before it, so a tick earlier than this has nothing to do.
    """

    __slots__ = ("_ages", "_buckets", "_heap", "next_due")

    def __init__(self) -> None:
        # (decay, I0, ttl) -> expiry age: signals mostly share these, and the age costs a
        # log and a division to compute
        self._ages: dict[tuple[Decay, float, float], float] = {}
        self._buckets: dict[int, list[str]] = {}
        self._heap: list[int] = []  # bucket keys
        self.next_due = math.inf

    def age(self, signal: Signal) -> float:
        """The age at which ``signal`` expires (cached per decay, intensity and ttl)."""
        key = (signal.decay, signal.intensity, signal.ttl)
        age = self._ages.get(key)
        if age is None:
            if len(self._ages) >= _AGES_MAX:
                self._ages.clear()
            age = self._ages[key] = signal.decay.expiry_age(signal.intensity, signal.ttl)
        return age

    def expires_at(self, signal: Signal) -> float:
        """The clock time at which ``signal`` expires."""
        age = self._ages.get((signal.decay, signal.intensity, signal.ttl))
        return signal.created_at + (self.age(signal) if age is None else age)

    def file(self, address: str, when: float) -> None:
        """File ``address`` to be checked at ``when``."""
        slot = int(when // BUCKET_SECONDS)
        pending = self._buckets.get(slot)
        if pending is None:
            self._buckets[slot] = [address]
            heapq.heappush(self._heap, slot)
            self.next_due = self._heap[0] * BUCKET_SECONDS
        else:
            pending.append(address)

    def file_signal(self, signal: Signal) -> None:
        """File ``signal``'s address at its own expiry time."""
        age = self._ages.get((signal.decay, signal.intensity, signal.ttl))
        if age is None:
            age = self.age(signal)
        slot = int((signal.created_at + age) // BUCKET_SECONDS)  # as file(), inlined: hot
        pending = self._buckets.get(slot)
        if pending is None:
            self._buckets[slot] = [signal.address]
            heapq.heappush(self._heap, slot)
            self.next_due = self._heap[0] * BUCKET_SECONDS
        else:
            pending.append(signal.address)

    def file_all(self, signals: Iterable[Signal]) -> None:
        """File many signals at their expiry times (:meth:`file_signal`, in one loop)."""
        ages = self._ages
        buckets = self._buckets
        heap = self._heap
        for signal in signals:
            age = ages.get((signal.decay, signal.intensity, signal.ttl))
            if age is None:
                age = self.age(signal)
            slot = int((signal.created_at + age) // BUCKET_SECONDS)
            pending = buckets.get(slot)
            if pending is None:
                buckets[slot] = [signal.address]
                heapq.heappush(heap, slot)
            else:
                pending.append(signal.address)
        self.next_due = heap[0] * BUCKET_SECONDS if heap else math.inf

    def collect(
        self, now: float, live: Mapping[str, Signal], remove: Callable[[Signal], None]
    ) -> list[Signal]:
        """Find the signals of ``live`` expired at ``now``; ``remove`` each as it is found.

        Args:
            now: the time of the tick.
            live: the field's signals by address (read only here).
            remove: takes a signal out of ``live`` (called once per expired signal, before
                the next is looked at, so an address filed twice is found once).

        Returns:
            The expired signals, in the order found.
        """
        heap = self._heap
        buckets = self._buckets
        expired: list[Signal] = []
        last = int(now // BUCKET_SECONDS)
        ages = self._ages
        while heap and heap[0] <= last:
            slot = heap[0]
            keep: list[str] = []
            for address in buckets[slot]:
                signal = live.get(address)
                if signal is None:
                    continue  # withdrawn, or expired through a newer entry
                age = ages.get((signal.decay, signal.intensity, signal.ttl))
                expires = signal.created_at + (self.age(signal) if age is None else age)
                if expires <= now:
                    remove(signal)
                    expired.append(signal)
                elif int(expires // BUCKET_SECONDS) == slot:
                    keep.append(address)  # due later within this bucket
                # else: renewed since; its newer entry sits in a later bucket
            if keep:
                buckets[slot] = keep
                break  # the rest of this bucket, and all later ones, are not due yet
            del buckets[slot]
            heapq.heappop(heap)
        self.next_due = heap[0] * BUCKET_SECONDS if heap else math.inf
        return expired
