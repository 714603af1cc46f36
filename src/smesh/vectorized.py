"""Effective intensity of many signals at once, with numpy.

:class:`SignalArray` is a columnar snapshot of a batch of signals. Building it costs a pass
over the signals; after that, :meth:`SignalArray.effective` evaluates the same formula as
:meth:`smesh.signal.Signal.effective` for all of them in a handful of array operations, which
is what periodic statistics over large fields want.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from smesh.decay import Exponential, Linear, Sigmoid, Step
from smesh.signal import MAX_REINFORCEMENT_BOOST, Signal

__all__ = ["SignalArray"]

FloatArray = npt.NDArray[np.float64]
_EXP, _LIN, _SIG, _STEP, _CUSTOM = range(5)


class SignalArray:
    """A columnar snapshot of signals for vectorized intensity computation.

    Args:
        signals: the signals; their order is kept in every output array.
    """

    __slots__ = (
        "_base",
        "_ends",
        "_groups",
        "boost",
        "confidence",
        "created_at",
        "intensity",
        "param",
        "signals",
        "ttl",
    )

    def __init__(self, signals: Sequence[Signal]) -> None:
        n = len(signals)
        self.signals = list(signals)
        self.created_at = np.fromiter((s.created_at for s in signals), np.float64, n)
        self.intensity = np.fromiter((s.intensity for s in signals), np.float64, n)
        self.confidence = np.fromiter((s.confidence for s in signals), np.float64, n)
        self.ttl = np.fromiter((s.ttl for s in signals), np.float64, n)
        reinforcers = np.fromiter((len(s.reinforcers) for s in signals), np.float64, n)
        self.boost = 1.0 + np.minimum(0.1 * reinforcers, MAX_REINFORCEMENT_BOOST)
        self._base = self.intensity * self.confidence * self.boost
        self._ends = self.created_at + self.ttl
        codes = np.empty(n, dtype=np.int8)
        param = np.zeros(n, dtype=np.float64)
        for i, s in enumerate(signals):
            d = s.decay
            if isinstance(d, Exponential):
                codes[i], param[i] = _EXP, d.rate
            elif isinstance(d, Linear):
                codes[i] = _LIN
            elif isinstance(d, Sigmoid):
                codes[i], param[i] = _SIG, d.steepness
            elif isinstance(d, Step):
                codes[i] = _STEP
            else:
                codes[i] = _CUSTOM
        self.param = param
        # one (code, indices-or-None) per decay family present; None means "all of them",
        # which spares the fancy indexing in the common single-family case
        present = np.unique(codes)
        self._groups: list[tuple[int, npt.NDArray[np.intp] | None]] = [
            (int(c), None if len(present) == 1 else np.flatnonzero(codes == c)) for c in present
        ]

    def __len__(self) -> int:
        return len(self.signals)

    def effective(self, now: float) -> FloatArray:
        """Effective intensity of every signal at ``now``, in input order."""
        age = now - self.created_at
        # Exponential, linear and step all give the full intensity at age 0, so clamping
        # negative ages to 0 implements "age < 0 -> I0" for them without a mask.
        clamped = np.maximum(age, 0.0)
        factor = np.empty_like(age)
        for code, idx in self._groups:
            a = clamped if idx is None else clamped[idx]
            if code == _EXP:
                f = np.multiply(self.param if idx is None else self.param[idx], a)
                np.negative(f, out=f)
                np.exp(f, out=f)
            elif code == _LIN:
                f = 1.0 - a / (self.ttl if idx is None else self.ttl[idx])
            elif code == _SIG:
                k = self.param if idx is None else self.param[idx]
                ttl = self.ttl if idx is None else self.ttl[idx]
                raw = age if idx is None else age[idx]
                with np.errstate(over="ignore"):
                    f = np.where(raw < 0.0, 1.0, 1.0 / (1.0 + np.exp((raw - ttl / 2.0) * k)))
            elif code == _STEP:
                f = np.ones_like(a)
            else:
                rows = range(len(age)) if idx is None else idx.tolist()
                f = np.array(
                    [
                        1.0
                        if age[i] < 0.0
                        else self.signals[i].decay.factor(float(age[i]), float(self.ttl[i]))
                        for i in rows
                    ],
                    dtype=np.float64,
                )
            if idx is None:
                factor = f
            else:
                factor[idx] = f
        factor *= now < self._ends  # expired at created_at + ttl (compared as times)
        factor *= self._base
        return np.minimum(factor, 1.0, out=factor)
