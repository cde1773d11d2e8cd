"""Capacity under an SLO: the highest concurrency at which every limit of the suite's ``slo_limits`` holds.

Each start runs the capacity search (bracket, then bisect). When the case also has a ``sweep`` phase over the same
levels (a brute-force sweep, which is also the Pareto front's data), the search's boundary must be the sweep's, start
by start. When the case has arms, the second arm is a planted regression of the first (the CPU suite gives it 2
batch slots instead of 8: users beyond the slots queue for a whole request), so capacity at the same SLO must fall and
the comparison of the arms must say REGRESSED on ``capacity_at_slo``.
"""

from __future__ import annotations

from fixtures.checks import assert_levels_succeeded
from servegate import capacity
from servegate.runner import CaseResult
from servegate.stats import Verdict

SUITE = "capacity"


def _check_against_sweep(case, bench, arm: str, result: CaseResult) -> list[str]:
    steps = dict(case.steps)
    search_step = next(name for name, load in case.steps if load.profile == "capacity")
    search = steps[search_step]
    sweep = steps.get("sweep")
    if sweep is None:
        return []
    assert sorted(sweep.concurrency_levels) == sorted(search.concurrency_levels), "the sweep must cover the same levels"
    limits = capacity.parse_limits(search.slo_limits, search.percentiles)
    mismatches = []
    for start in result.starts:
        found = start.findings[f"{search_step}/capacity" if search_step else "capacity"]
        swept = {lv.concurrency: lv.summary.flat() for lv in start.levels if lv.label.startswith("sweep/")}
        reference = capacity.brute_force(sorted(swept), limits, swept.__getitem__, search.cliff_factor)
        bench.progress(
            f"[{case.id}] {arm} start {start.start_index + 1}: search {found['text']}; "
            f"brute force {reference.describe()}"
        )
        if (found["boundary"], found["first_failing"]) != (reference.boundary, reference.first_failing):
            mismatches.append(
                f"{arm} start {start.start_index + 1}: search {found['text']} vs brute force "
                f"{reference.describe()}; log {start.log_path}"
            )
    return mismatches


def test_capacity(case, bench) -> None:
    results = bench.run_ab(case) if case.arms else {"": bench.run(case)}
    mismatches = []
    for arm, result in results.items():
        assert_levels_succeeded(result)  # over capacity requests wait for a slot; they must still succeed
        mismatches += _check_against_sweep(case, bench, arm, result)
    assert not mismatches, "\n".join(mismatches)
    if not case.arms:
        return
    (name_a, a), (name_b, b) = results.items()
    rows = bench.compare_arms(case, a, b)
    for row in rows:
        bench.progress(f"  {name_b} vs {name_a}: {row.verdict.value}: {row.reason}")
    row = next((r for r in rows if r.metric.rsplit("/", 1)[-1] == "capacity_at_slo"), None)
    assert row is not None, f"no capacity_at_slo comparison among {[r.metric for r in rows]}"
    assert row.verdict is Verdict.REGRESSED, f"{name_b} should serve fewer users at the SLO than {name_a}: {row.reason}"
