"""What every benchmark here prints: one JSON row per measurement (name, unit, median, p10, p90, n, and the
comparison figures), and the millisecond timer the rows are made from."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def stats(name: str, unit: str, samples: list[float], **extra: Any) -> dict[str, Any]:
    q = np.percentile(samples, [10, 90])
    row = {"name": name, "unit": unit, "median": statistics.median(samples), "p10": float(q[0]), "p90": float(q[1])}
    row["n"] = len(samples)
    row.update(extra)
    return row


def timed(fn: Callable[[], object], reps: int) -> list[float]:
    """Wall-clock milliseconds of `reps` calls."""
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return out
