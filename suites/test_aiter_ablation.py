"""A/B ablation (seed 003 Table 26 protocol): arms of one server, interleaved fresh starts (A, B, A, B, ...).

On ROCm the arms switch AITER (``VLLM_ROCM_USE_AITER=1`` vs ``0``); on the CPU, where AITER does not exist, they
switch torch.compile (``--enforce-eager``) and batching (``max_num_seqs: 1`` serializes the server: a large, real
effect, so the main job always ends with a decided comparison). Every arm after the first is compared with the
first, two-sided (which arm is better and by how much: IMPROVED, REGRESSED, OK = equivalent within the tolerance),
paired by round when that is tighter, with rounds until every row is decided or the budget is spent. The verdicts
are reported, not asserted: an ablation measures, it does not gate. The test fails only when a run is invalid.
"""

from __future__ import annotations

from fixtures.checks import assert_levels_succeeded

SUITE = "aiter_ablation"
GATED = False  # reports in its own family; the session's gate family does not count these rows


def test_aiter_ablation(case, bench) -> None:
    assert len(case.arms) >= 2, f"an ablation compares arms, the suite gives {[name for name, _ in case.arms]}"
    results = bench.run_ab(case)
    for result in results.values():
        assert_levels_succeeded(result)
    (name_a, a), *others = results.items()
    for name_b, b in others:
        rows = bench.compare_arms(case, a, b)
        bench.progress(f"[{case.id}] {name_b} vs {name_a}:")
        for row in rows:
            bench.progress(f"  {row.verdict.value}: {row.reason}")
