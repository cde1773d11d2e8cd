"""Statistics over independent server starts: the estimate of one condition and the comparison of two.

A server start is the unit of replication (seed 003: restart-to-restart CoV dominates request-to-request noise),
so every interval here is a t-interval over per-start values with df = n - 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class Estimate:
    n: int
    mean: float
    sd: float
    cov: float
    ci_low: float
    ci_high: float


def estimate(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Mean with a two-sided t confidence interval; with one value the interval is unbounded, not zero-width."""
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    if n == 0:
        raise ValueError("estimate() needs at least one value")
    mean = float(x.mean())
    if n == 1:
        return Estimate(1, mean, math.nan, math.nan, -math.inf, math.inf)
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    cov = sd / abs(mean) if mean else math.nan
    return Estimate(n, mean, sd, cov, mean - half, mean + half)
