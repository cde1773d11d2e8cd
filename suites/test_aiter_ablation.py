"""A/B ablation (seed 003 Table 26 protocol): two arms of one server, interleaved fresh starts (A, B, A, B, ...).

On ROCm the arms switch AITER (``VLLM_ROCM_USE_AITER=1`` vs ``0``); on the CPU, where AITER does not exist, they
switch torch.compile (``--enforce-eager``), a real difference of the same engine. Each gated metric is compared
as a ratio (second arm / first arm, "> 1 means worse") with a Welch CI on log values; the verdicts are reported,
not asserted: an ablation measures, it does not gate. The test fails only when a run is invalid.
"""

from __future__ import annotations

from fixtures.checks import assert_levels_succeeded

SUITE = "aiter_ablation"


def test_aiter_ablation(case, bench) -> None:
    assert len(case.arms) == 2, f"an ablation compares two arms, the suite gives {[name for name, _ in case.arms]}"
    results = bench.run_ab(case)
    for result in results.values():
        assert_levels_succeeded(result)
    (name_a, a), (name_b, b) = results.items()
    rows = bench.compare_arms(case, a, b)
    bench.progress(f"[{case.id}] {name_b} vs {name_a}:")
    for row in rows:
        bench.progress(f"  {row.verdict.value}: {row.reason}")
