"""Capacity under an SLO and the interactivity/throughput front, with a planted regression as the second arm.

Every start runs the capacity search (bracket, then bisect) and then every candidate level (a brute-force sweep of
the same levels): the search's boundary must be the sweep's. The sweep is also the Pareto front's data. The arms
differ only in ``max_num_seqs``: fewer sequences in the batch means requests queue for a slot at lower concurrency,
so capacity at the same SLO must fall, and the gate's comparison of the arms must say REGRESSED on it.
"""

from __future__ import annotations

from fixtures.checks import assert_levels_succeeded
from servegate import capacity
from servegate.stats import Verdict

SUITE = "capacity"


def test_capacity(case, bench) -> None:
    steps = dict(case.steps)
    search_load, sweep_load = steps["search"], steps["sweep"]
    assert sorted(sweep_load.concurrency_levels) == sorted(search_load.concurrency_levels)
    results = bench.run_ab(case)
    limits = capacity.parse_limits(search_load.slo_limits, search_load.percentiles)
    mismatches = []
    for arm, result in results.items():
        assert_levels_succeeded(result)  # over capacity requests wait for a slot; they must still succeed
        for start in result.starts:
            found = start.findings["search/capacity"]
            swept = {lv.concurrency: lv.summary.flat() for lv in start.levels if lv.label.startswith("sweep/")}
            reference = capacity.brute_force(sorted(swept), limits, swept.__getitem__, search_load.cliff_factor)
            bench.progress(f"[{case.id}] {arm} start {start.start_index + 1}: search {found['text']}; "
                           f"brute force {reference.describe()}")
            if (found["boundary"], found["first_failing"]) != (reference.boundary, reference.first_failing):
                mismatches.append(f"{arm} start {start.start_index + 1}: search {found['text']} vs brute force "
                                  f"{reference.describe()}; log {start.log_path}")
    (name_a, a), (name_b, b) = results.items()
    rows = bench.compare_arms(case, a, b)
    for row in rows:
        bench.progress(f"  {name_b} vs {name_a}: {row.verdict.value}: {row.reason}")
    assert not mismatches, "\n".join(mismatches)
    verdicts = {row.metric.rsplit("/", 1)[-1]: row for row in rows if row.metric.endswith("capacity_at_slo")}
    assert verdicts, f"no capacity_at_slo comparison among {[row.metric for row in rows]}"
    row = next(iter(verdicts.values()))
    assert row.verdict is Verdict.REGRESSED, f"{name_b} should serve fewer users at the SLO than {name_a}: {row.reason}"
