"""Interactivity vs throughput: every level of a multi-level load is a point (tokens/s per user, output tokens/s
per GPU); the front and, with ``pareto_interactivity``, the gated throughput per GPU read off it there."""

from __future__ import annotations

import math

from fixtures.checks import assert_levels_succeeded

SUITE = "pareto"


def test_pareto(case, bench) -> None:
    result = bench.run(case)
    assert_levels_succeeded(result)
    for start in result.starts:
        front = start.findings["pareto"]
        assert len(front["points"]) == len(start.levels) and front["front"], front
        if case.load.pareto_interactivity is not None:
            value = start.derived["throughput_per_gpu_at_interactivity"]
            bench.progress(f"[{case.id}] start {start.start_index + 1}: {value:.0f} tok/s/GPU at "
                           f"{case.load.pareto_interactivity:g} tok/s/user")
            assert math.isfinite(value), (
                f"{case.load.pareto_interactivity:g} tok/s/user is outside the measured front {front}: "
                "choose levels whose interactivity brackets it"
            )
