"""Capacity under an SLO: the highest concurrency at which every limit (``ttft_p99_ms <= 500``, ...) still holds.

The search spends few levels: it brackets by probing candidate levels at doubling index steps until one fails,
then bisects between the last passing and the first failing level. That assumes what a serving engine does — a
limited latency only grows with concurrency — and ``brute_force`` (every level) is the reference it must agree
with. One boundary comes from each server start; across starts the statistics give it a t confidence interval.

The gated value, ``capacity_at_slo``, is not just the passing level: between the last passing level ``lo`` and the
first failing ``hi`` it is interpolated linearly to where the most binding limited metric crosses its bound, so
that a build that serves fewer users moves the number even when it does not move the boundary by a whole level.
A *cliff* is a limited metric that grows by ``cliff_factor`` or more across that one step (a queue that suddenly
forms, KV-cache preemption): the capacity is then a wall, not a slope, and the report says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from servegate.metrics import LATENCIES, direction_of

# A level where requests fail is over capacity whatever its latencies say.
MIN_SUCCESS_RATE = 0.99
THROUGHPUTS = ("request_throughput", "output_throughput", "total_token_throughput", "goodput", "success_rate")

Measure = Callable[[int], Mapping[str, float]]


def limitable_metrics(percentiles: Iterable[float]) -> set[str]:
    """Names a limit may use: every ``RunSummary.flat()`` metric a load with these percentiles produces."""
    stats = ["mean", "median", *(f"p{p:g}".replace(".", "_") for p in percentiles)]
    return {f"{name}_{stat}_ms" for name in LATENCIES for stat in stats} | set(THROUGHPUTS)


@dataclass(frozen=True)
class Limit:
    """``metric <= bound`` for latencies, ``metric >= bound`` for throughputs (the metric's better direction)."""

    metric: str
    bound: float

    def holds(self, value: float | None) -> bool:
        if value is None or math.isnan(value):
            return False
        return value <= self.bound if direction_of(self.metric) == "lower" else value >= self.bound

    def __str__(self) -> str:
        return f"{self.metric} {'<=' if direction_of(self.metric) == 'lower' else '>='} {self.bound:g}"


def parse_limits(pairs: Iterable[tuple[str, float]], percentiles: Iterable[float]) -> tuple[Limit, ...]:
    """Limits from (metric, bound) pairs; an unknown metric name is rejected with the names that exist."""
    allowed = limitable_metrics(percentiles)
    limits = []
    for metric, bound in pairs:
        if metric not in allowed:
            names = ", ".join(sorted(allowed))
            raise ValueError(f"slo_limits: {metric!r} is not a metric of this load; allowed: {names}")
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not bound > 0:
            raise ValueError(f"slo_limits.{metric}: expected a number > 0, got {bound!r}")
        limits.append(Limit(metric, float(bound)))
    if not limits:
        raise ValueError("slo_limits: give at least one metric -> bound, e.g. {ttft_p99_ms: 500, tpot_p99_ms: 50}")
    return tuple(limits)


@dataclass
class Probe:
    """One measured level and which limits it broke."""

    level: int
    values: Mapping[str, float]
    violated: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.violated


@dataclass
class CapacityResult:
    """Boundary of one server start: ``boundary`` passes, ``first_failing`` (the next candidate level) does not."""

    levels: tuple[int, ...]
    limits: tuple[Limit, ...]
    probes: list[Probe] = field(default_factory=list)  # in the order they were measured
    boundary: int = 0  # highest passing level; 0 when even the lowest level fails
    first_failing: int | None = None  # None: every candidate passed (capacity is at least the top level)
    capacity: float = 0.0  # interpolated between boundary and first_failing
    cliff_factor: float = math.nan  # largest growth of a limited metric across the boundary step
    cliff: bool = False

    @property
    def censored(self) -> str:
        """'above': every level passed, the true capacity may be higher; 'below': the lowest level failed."""
        if self.first_failing is None:
            return "above"
        return "below" if self.boundary == 0 else ""

    def derived(self) -> dict[str, float]:
        """Per-start values for the statistics and the gate (higher capacity is better)."""
        return {
            "capacity_at_slo": self.capacity,
            "capacity_level": float(self.boundary),
            "capacity_cliff": 1.0 if self.cliff else 0.0,
        }

    def describe(self) -> str:
        limits = ", ".join(str(limit) for limit in self.limits)
        if self.censored == "above":
            return f"capacity >= {self.boundary} (every level up to {self.boundary} holds {limits})"
        if self.censored == "below":
            broken = ", ".join(self.probes[0].violated) if self.probes else limits
            return f"capacity < {self.levels[0]}: the lowest level breaks {broken}"
        cliff = f"; CLIFF x{self.cliff_factor:.1f}" if self.cliff else ""
        return f"capacity {self.capacity:.1f} (holds at {self.boundary}, breaks at {self.first_failing}){cliff}"


def _probe(level: int, measure: Measure, limits: Sequence[Limit]) -> Probe:
    values = dict(measure(level))
    violated = tuple(str(lim) for lim in limits if not lim.holds(values.get(lim.metric)))
    if values.get("success_rate", 1.0) < MIN_SUCCESS_RATE:
        violated += (f"success_rate >= {MIN_SUCCESS_RATE:g}",)
    return Probe(level, values, violated)


def search(
    levels: Sequence[int], limits: Sequence[Limit], measure: Measure, cliff_factor: float = 3.0
) -> CapacityResult:
    """Bracket (candidate indices 0, 1, 3, 7, ...) then bisect; about 2·log2(len(levels)) probes."""
    ordered = _ordered(levels)
    result = CapacityResult(ordered, tuple(limits))
    seen: dict[int, Probe] = {}

    def probe(i: int) -> Probe:
        if i not in seen:
            seen[i] = _probe(ordered[i], measure, limits)
            result.probes.append(seen[i])
        return seen[i]

    if not probe(0).passed:
        return _conclude(result, None, 0, cliff_factor, seen)
    lo, step, hi = 0, 1, None
    while hi is None:
        nxt = min(lo + step, len(ordered) - 1)
        if probe(nxt).passed:
            lo = nxt
            if lo == len(ordered) - 1:
                return _conclude(result, lo, None, cliff_factor, seen)
            step *= 2
        else:
            hi = nxt
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if probe(mid).passed:
            lo = mid
        else:
            hi = mid
    return _conclude(result, lo, hi, cliff_factor, seen)


def brute_force(
    levels: Sequence[int], limits: Sequence[Limit], measure: Measure, cliff_factor: float = 3.0
) -> CapacityResult:
    """Every level, lowest first; the boundary is the last level before the first failing one."""
    ordered = _ordered(levels)
    result = CapacityResult(ordered, tuple(limits))
    seen: dict[int, Probe] = {}
    for i, level in enumerate(ordered):
        seen[i] = _probe(level, measure, limits)
        result.probes.append(seen[i])
    first_fail = next((i for i in range(len(ordered)) if not seen[i].passed), None)
    if first_fail is None:
        return _conclude(result, len(ordered) - 1, None, cliff_factor, seen)
    return _conclude(result, first_fail - 1 if first_fail > 0 else None, first_fail, cliff_factor, seen)


def _ordered(levels: Sequence[int]) -> tuple[int, ...]:
    ordered = tuple(sorted(set(int(c) for c in levels)))
    if len(ordered) < 2 or ordered[0] < 1:
        raise ValueError(f"a capacity search needs >= 2 distinct concurrency levels >= 1, got {list(levels)}")
    return ordered


def _conclude(
    result: CapacityResult, lo: int | None, hi: int | None, cliff_factor: float, seen: Mapping[int, Probe]
) -> CapacityResult:
    ordered = result.levels
    result.boundary = ordered[lo] if lo is not None else 0
    result.first_failing = ordered[hi] if hi is not None else None
    if lo is None:
        result.capacity = 0.0
    elif hi is None:
        result.capacity = float(ordered[lo])
    else:
        result.capacity = _interpolate(seen[lo], seen[hi], result.limits)
        growth = [
            seen[hi].values.get(lim.metric, math.nan) / seen[lo].values[lim.metric]
            for lim in result.limits
            if direction_of(lim.metric) == "lower" and seen[lo].values.get(lim.metric, 0) > 0
        ]
        growth = [g for g in growth if math.isfinite(g)]
        if growth:
            result.cliff_factor = max(growth)
            result.cliff = result.cliff_factor >= cliff_factor
    return result


def _interpolate(lo: Probe, hi: Probe, limits: Sequence[Limit]) -> float:
    """Where the most binding broken limit crosses its bound, linearly between the two levels; a level broken by
    failures alone (no limited metric crossed) counts as the passing level itself."""
    crossings = []
    for lim in limits:
        v_lo, v_hi = lo.values.get(lim.metric), hi.values.get(lim.metric)
        if lim.holds(v_hi) or v_lo is None or v_hi is None or math.isnan(v_hi) or v_hi == v_lo:
            continue
        fraction = (lim.bound - v_lo) / (v_hi - v_lo)
        crossings.append(lo.level + (hi.level - lo.level) * min(max(fraction, 0.0), 1.0))
    return min(crossings) if crossings else float(lo.level)
