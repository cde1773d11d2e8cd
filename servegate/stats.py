"""Statistics over independent server starts: the estimate of one condition and the comparison of two.

A server start is the unit of replication (seed 003: restart-to-restart CoV dominates request-to-request noise),
so every interval here is a t-interval over per-start values with df = n - 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

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


# --------------------------------------------------------------------------------------------------------------
# Comparison of two conditions: ratio "> 1 means worse", Welch t on logs (or paired rounds), verdicts.
# --------------------------------------------------------------------------------------------------------------

DEFAULT_ALPHA = 0.05
# 3%, not 5%: at the tolerance itself the point estimate exceeds 1 + delta only half the time, so a gate meant to
# catch a 5% slowdown needs delta below 5%.
DEFAULT_TOLERANCE = 0.03


class Verdict(StrEnum):
    """Outcome of one gated comparison. Only REGRESSED fails the build by default."""

    REGRESSED = "REGRESSED"
    OK = "OK"
    INCONCLUSIVE = "INCONCLUSIVE"
    IMPROVED = "IMPROVED"  # two-sided comparisons (ablations): significantly better, beyond the tolerance
    NOT_COMPARED = "NOT COMPARED"  # other hardware, missing metric, fewer than two starts, non-positive values


@dataclass(frozen=True)
class RatioTest:
    """Current vs baseline for one metric, oriented so that ``ratio > 1`` means *worse*.

    ``log_ratio`` and ``se`` are on the natural-log scale; ``df`` is Welch-Satterthwaite's (unpaired) or n - 1
    (paired rounds: the mean of per-round log ratios); ``pairing`` says which.
    """

    direction: str
    n_baseline: int
    n_current: int
    baseline_mean: float
    current_mean: float
    log_ratio: float
    se: float
    df: float
    pairing: str = "unpaired"

    @property
    def ratio(self) -> float:
        return math.exp(self.log_ratio)


def _log_values(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.size and (not np.all(np.isfinite(x)) or np.any(x <= 0)):
        raise ValueError("ratio comparison needs finite positive values (logs of them)")
    with np.errstate(over="ignore"):
        return np.log(x)


def _welch(lb: np.ndarray, lc: np.ndarray) -> tuple[float, float, float]:
    nb, nc = lb.size, lc.size
    vb_n, vc_n = float(lb.var(ddof=1)) / nb, float(lc.var(ddof=1)) / nc
    se2 = vb_n + vc_n
    denom = vb_n**2 / (nb - 1) + vc_n**2 / (nc - 1)
    df = se2**2 / denom if denom > 0 else float(nb + nc - 2)
    return float(lc.mean() - lb.mean()), math.sqrt(se2), df


def compare(baseline: Sequence[float], current: Sequence[float], direction: str, paired: bool = False) -> RatioTest:
    """Welch's t on log values: multiplicative noise (CoV) becomes additive, and the ratio's CI is exp of a t-CI.

    ``direction`` is ``"lower"`` (latency: lower is better) or ``"higher"`` (throughput); for ``"higher"`` the
    ratio is baseline/current so that it, too, reads "> 1 means worse". Needs >= 2 values per side.

    ``paired``: the values are interleaved rounds (baseline i and current i ran next to each other); the test is
    then on the per-round log ratios (df n - 1), which removes drift that hits both arms of a round.
    """
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction must be 'lower' or 'higher', got {direction!r}")
    lb, lc = _log_values(baseline), _log_values(current)
    nb, nc = int(lb.size), int(lc.size)
    if nb < 2 or nc < 2:
        raise ValueError(f"need at least 2 starts per side for a t-interval, got baseline {nb}, current {nc}")
    if paired and nb != nc:
        raise ValueError(f"paired rounds need as many starts per side, got baseline {nb}, current {nc}")
    if direction == "higher":  # worse = smaller: compare the negated logs, so "> 0" still means worse
        lb, lc = -lb, -lc
    if paired:
        rounds = lc - lb
        d, se, df = float(rounds.mean()), float(rounds.std(ddof=1)) / math.sqrt(nb), float(nb - 1)
    else:
        d, se, df = _welch(lb, lc)
    return RatioTest(
        direction=direction,
        n_baseline=nb,
        n_current=nc,
        baseline_mean=float(np.mean(baseline)),
        current_mean=float(np.mean(current)),
        log_ratio=d,
        se=se,
        df=df,
        pairing="paired" if paired else "unpaired",
    )
