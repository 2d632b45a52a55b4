"""How sure a comparison of merge methods is: 95% intervals from resampling the evaluated pairs.

The images of one pair share its two LoRAs, so they are not independent draws: the unit resampled is the pair (a
cluster bootstrap over the per-pair rates; every pair has the same number of images, so the mean of the pair rates
is the rate over all images). Every method is evaluated on the same pairs and seeds, so the difference between two
methods resamples the same pairs for both (paired), which is tighter than comparing two separate intervals.
Percentile intervals (scipy.stats.bootstrap): BCa is undefined when every pair scores the same, which happens
(a method at 0% on every pair).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 10_000


def _bootstrap(
    samples: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray], seed: int
) -> tuple[float, float] | None:
    from scipy import stats

    if len(samples[0]) < 2:
        return None  # one pair says nothing about the spread between pairs
    result = stats.bootstrap(
        samples,
        statistic,
        paired=len(samples) > 1,
        vectorized=True,
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return float(low), float(high)


def pair_interval(per_pair: Sequence[float], seed: int = 0) -> tuple[float, float] | None:
    """95% interval of the mean of per-pair rates; None for fewer than two pairs."""
    return _bootstrap((np.asarray(per_pair, dtype=np.float64),), np.mean, seed)


def _difference(reference: np.ndarray, other: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(other, axis=axis) - np.mean(reference, axis=axis)


def paired_difference_interval(
    reference: Sequence[float], other: Sequence[float], seed: int = 0
) -> tuple[float, float] | None:
    """95% interval of mean(other) - mean(reference) over the same pairs; None for fewer than two pairs."""
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(other, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired rates differ in length: {len(a)} vs {len(b)}")
    return _bootstrap((a, b), _difference, seed)
