"""Summary statistics: means with seeded percentile-bootstrap intervals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["bootstrap_ci", "mean", "paired_difference"]


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean (0 for no values)."""
    return float(np.mean(values)) if len(values) else 0.0


def bootstrap_ci(
    values: Sequence[float], *, seed: int, level: float = 0.95, resamples: int = 4000
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``.

    Seeded, so the same values and seed give the same interval. With no values the interval
    is (0, 0); with identical values it collapses to that value.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, data.size, size=(resamples, data.size))
    means = data[picks].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_difference(
    a: Sequence[float], b: Sequence[float], *, seed: int, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired items with its bootstrap interval.

    Conditions are scored on the same items, so the paired difference has a much tighter
    interval than the two separate intervals suggest.
    """
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    diff = [x - y for x, y in zip(a, b, strict=True)]
    low, high = bootstrap_ci(diff, seed=seed, level=level)
    return mean(diff), low, high
