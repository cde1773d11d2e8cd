"""Serving sweep: throughput and latency per concurrency level, n fresh server starts (seed 002 `bench serve`)."""

from __future__ import annotations

from fixtures.checks import assert_levels_succeeded

SUITE = "serving"


def test_serving(case, bench) -> None:
    result = bench.run(case)
    assert_levels_succeeded(result)
    if case.steps[0][0]:  # phases: one level per phase, named after it (a plain load names its levels itself)
        labels = [level.label for level in result.starts[0].levels]
        assert labels == [name for name, _ in case.steps], f"levels measured {labels} differ from the suite's phases"
