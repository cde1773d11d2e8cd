"""Cold start (seed 001): time to ready split into phases, with vLLM's compile cache cold, then warm.

Start 1 gets an empty ``VLLM_CACHE_ROOT``; the later starts reuse it, as a pod whose cache volume survived would.
"""

from __future__ import annotations

import pytest

from fixtures.checks import assert_levels_succeeded
from servegate.coldstart import cold_start_phases

SUITE = "cold_start"
GATED = False  # measures startup phases, no gate rows


def test_cold_start(case, bench, tmp_path_factory: pytest.TempPathFactory) -> None:
    restarts = bench.restarts_for(case)
    assert restarts >= 2, "cold_start needs at least two starts: one cold, one warm"
    cache_root = tmp_path_factory.mktemp("vllm-cache-root")  # empty: the first start compiles from scratch
    server = case.server.with_overrides(env={**case.server.env_dict, "VLLM_CACHE_ROOT": str(cache_root)})
    result = bench.run_starts(case, [server] * restarts)
    phases = [
        {"start": s.start_index + 1, "cache": "cold" if s.start_index == 0 else "warm", **cold_start_phases(s.facts)}
        for s in result.starts
    ]
    for start, row in zip(result.starts, phases, strict=True):  # the stacked bar of the HTML report
        start.facts.extra["phases"] = {k: v for k, v in row.items() if k.endswith("_s") and k != "time_to_ready_s"}
        start.facts.extra["compile_cache"] = row["cache"]
    bench.record(case, result, cold_start=phases)
    for row in phases:
        bench.progress(
            "cold start " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
        )
    assert_levels_succeeded(result)
    cold = phases[0]["compile_and_warmup_s"]
    warm = [row["compile_and_warmup_s"] for row in phases[1:]]
    assert cold is not None and all(w is not None for w in warm), f"the server log did not report engine init: {phases}"
    # The compile cache is the point of VLLM_CACHE_ROOT: a warm start that compiles as long as a cold one means the
    # cache was not written or not found (wrong mount, changed flags, a vLLM upgrade invalidating it).
    assert all(w < cold for w in warm), f"warm starts did not reuse the compile cache: cold {cold:.1f} s, warm {warm}"
