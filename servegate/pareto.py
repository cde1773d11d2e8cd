"""Interactivity vs throughput: the trade every serving config makes, as InferenceMAX and ``vllm bench sweep`` plot it.

Each load level is one point: interactivity = tokens/s one user sees (1000 / median TPOT in ms) against output
tokens/s per GPU (the level's output throughput over the server's tensor-parallel GPUs; one server counts as one on
the CPU). More concurrency buys throughput with interactivity; the Pareto front keeps the levels no other level beats
on both. "Throughput per GPU at a fixed interactivity" reads the front at one interactivity, linearly between its
neighbours: that is the number a regression like "1,223 -> 753 tok/s/GPU at ~17 tok/s/user" is stated in, and the
gated value. Outside the front's interactivity range it is NaN: extrapolating would invent a measurement.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from servegate.metrics import RunSummary


class _Level(Protocol):
    label: str
    summary: RunSummary


@dataclass(frozen=True)
class Point:
    label: str
    interactivity: float  # output tokens/s per user
    throughput_per_gpu: float  # output tokens/s per GPU


def point_of(label: str, tpot_median_ms: float, output_throughput: float, gpus: int) -> Point | None:
    """None when the level has no TPOT (every output was one token, or nothing succeeded)."""
    if not (tpot_median_ms > 0 and math.isfinite(tpot_median_ms)) or not math.isfinite(output_throughput):
        return None
    return Point(label, 1000.0 / tpot_median_ms, output_throughput / max(1, gpus))


def front_of(points: Iterable[Point]) -> list[Point]:
    """Non-dominated points (no other point at least as good on both axes and better on one), by interactivity."""
    pts = sorted(points, key=lambda p: (-p.interactivity, -p.throughput_per_gpu))
    front: list[Point] = []
    best = -math.inf
    for p in pts:  # from the most interactive down: keep a point only if it adds throughput
        if p.throughput_per_gpu > best:
            front.append(p)
            best = p.throughput_per_gpu
    return sorted(front, key=lambda p: p.interactivity)


@dataclass
class Front:
    points: list[Point]  # every level
    front: list[Point]  # the non-dominated ones, by interactivity

    @classmethod
    def of(cls, levels: Sequence[_Level], gpus: int) -> Front:
        pts = [
            p
            for lv in levels
            if (p := point_of(lv.label, lv.summary.tpot.median, lv.summary.output_throughput, gpus)) is not None
        ]
        return cls(pts, front_of(pts))

    def throughput_at(self, interactivity: float) -> float:
        """Throughput per GPU on the front at this interactivity (linear between neighbours), NaN outside it."""
        f = self.front
        if not f or not (f[0].interactivity <= interactivity <= f[-1].interactivity):
            return math.nan
        for a, b in itertools.pairwise(f):
            if a.interactivity <= interactivity <= b.interactivity:
                span = b.interactivity - a.interactivity
                w = (interactivity - a.interactivity) / span if span > 0 else 0.0
                return a.throughput_per_gpu + w * (b.throughput_per_gpu - a.throughput_per_gpu)
        return f[0].throughput_per_gpu  # a one-point front, read exactly at its interactivity

    def to_dict(self) -> dict[str, Any]:
        return {"points": [asdict(p) for p in self.points], "front": [p.label for p in self.front]}
