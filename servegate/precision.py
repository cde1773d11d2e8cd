"""Where a metric's uncertainty comes from: within one start (which requests happened to be sampled) or between
starts (allocator, compile order, machine drift), and what each percentile of one run can support.

- A percentile's within-run interval comes from order statistics: the q-quantile of n requests lies between the
  l-th and u-th smallest values with probability >= 95%, where l and u are binomial(n, q) quantiles. When u would
  be past the largest value the run cannot bound the percentile from above (a p99 from 32 requests is the maximum
  itself): it is flagged *unsupported*. A mean's within-run spread is sd / sqrt(n).
- Over starts, a one-way random-effects split: the spread of per-start values = within-start sampling variance
  (the mean of each start's squared standard error) + between-start variance (the rest, floored at 0). When the
  within part dominates, more requests per start buy precision; otherwise only more starts do.

Computed while a start's records are in memory (servegate.runner); only these summaries are kept.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

from servegate.load.records import RequestRecord

_Z95 = 1.959963984540054
_LATENCY = re.compile(r"(ttft|itl|tpot|e2el)_(mean|median|p(\d+(?:\.\d+)?))_ms")


@dataclass(frozen=True)
class WithinRun:
    """One metric of one start: its within-run interval, standard error and whether the run supports it."""

    low: float
    high: float
    se: float
    supported: bool
    n: int

    def to_dict(self) -> dict[str, object]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def order_statistic_ranks(n: int, q: float, confidence: float = 0.95) -> tuple[int, int] | None:
    """1-based ranks (l, u) with P(x_(l) <= q-quantile <= x_(u)) >= confidence; None when n is too small for
    either end (l < 1 or u > n)."""
    if n < 1:
        return None
    tail = (1 - confidence) / 2
    low = int(sps.binom.ppf(tail, n, q))  # P(B < low) <= tail: the l-th order statistic is below the quantile
    high = int(sps.binom.ppf(1 - tail, n, q)) + 1
    if low < 1 or high > n:
        return None
    return low, high


def within_run(samples: Sequence[float], statistic: str) -> WithinRun:
    """``statistic``: "mean", "median" or "p<q>"."""
    x = np.sort(np.asarray([s for s in samples if math.isfinite(s)], dtype=float))
    n = int(x.size)
    if n == 0:
        return WithinRun(math.nan, math.nan, math.nan, False, 0)
    if statistic == "mean":
        se = float(x.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
        m = float(x.mean())
        return WithinRun(m - _Z95 * se, m + _Z95 * se, se, n > 1, n)
    q = 0.5 if statistic == "median" else float(statistic[1:]) / 100
    ranks = order_statistic_ranks(n, q)
    if ranks is None:
        return WithinRun(float(x[0]), float(x[-1]), math.inf, False, n)
    lo, hi = float(x[ranks[0] - 1]), float(x[ranks[1] - 1])
    return WithinRun(lo, hi, (hi - lo) / (2 * _Z95), True, n)


def _samples(records: Sequence[RequestRecord], metric: str) -> list[float]:
    ok = [r for r in records if r.success]
    if metric == "itl":
        return [g * 1000 for r in ok for g in r.itls]
    values = [getattr(r, metric) for r in ok]
    return [v * 1000 for v in values if v is not None]


def within_run_of(records: Sequence[RequestRecord], names: Sequence[str]) -> dict[str, WithinRun]:
    """Within-run intervals of the latency metrics among ``names`` (e.g. ``ttft_p99_ms``) from one level's records;
    run-level rates (throughputs) have one value per run and no within-run split here."""
    out = {}
    for name in names:
        match = _LATENCY.fullmatch(name)
        if match:
            out[name] = within_run(_samples(records, match.group(1)), match.group(2))
    return out


@dataclass(frozen=True)
class Components:
    """Variance of one metric over starts split into within-start sampling and between-start parts."""

    n_starts: int
    within: float
    between: float
    unsupported_starts: int

    @property
    def advice(self) -> str:
        if self.unsupported_starts:
            return f"more requests per start: {self.unsupported_starts} start(s) cannot support this percentile"
        if not math.isfinite(self.within) or self.within + self.between <= 0:
            return "n/a"
        share = self.within / (self.within + self.between)
        buy = "more requests per start" if share > 0.5 else "more starts"
        return f"{share:.0%} of the variance is within starts: buy {buy}"

    def to_dict(self) -> dict[str, object]:
        return {
            "n_starts": self.n_starts,
            "within_var": self.within if math.isfinite(self.within) else None,
            "between_var": self.between if math.isfinite(self.between) else None,
            "unsupported_starts": self.unsupported_starts,
            "advice": self.advice,
        }


def components(values: Sequence[float], within: Sequence[WithinRun]) -> Components:
    """One-way random effects over starts: between = var(per-start values) - mean(within-start se²), >= 0."""
    x = np.asarray(values, dtype=float)
    unsupported = sum(not w.supported for w in within)
    if x.size < 2 or unsupported or not within:
        return Components(int(x.size), math.nan, math.nan, unsupported)
    w = float(np.mean([v.se**2 for v in within]))
    return Components(int(x.size), w, max(float(x.var(ddof=1)) - w, 0.0), 0)


def case_components(starts: Sequence[object]) -> dict[str, Components]:
    """Per metric key of ``CaseResult.values()`` (``<level>/<metric>`` for multi-level starts): the variance split
    over the case's starts, from each start's within-run summaries (``StartResult.precision``)."""
    values: dict[str, list[float]] = {}
    within: dict[str, list[WithinRun]] = {}
    for start in starts:
        levels = start.levels  # type: ignore[attr-defined]
        multi = len(levels) > 1
        for level in levels:
            own = start.precision.get(level.label, {})  # type: ignore[attr-defined]
            for name, value in level.summary.flat().items():
                if name in own:
                    key = f"{level.label}/{name}" if multi else name
                    values.setdefault(key, []).append(value)
                    within.setdefault(key, []).append(own[name])
    return {key: components(values[key], within[key]) for key in values}
