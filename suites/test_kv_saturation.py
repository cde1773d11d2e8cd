"""KV-cache saturation (seed 000 phase A): long prompts pushed until the KV cache is nearly full, without failures.

The server's own ``vllm:kv_cache_usage_perc`` (peak, scraped during each level) says how full the cache got;
``vllm:num_preemptions_total`` says how often the scheduler had to evict running requests to make room.
"""

from __future__ import annotations

from fixtures.checks import assert_levels_succeeded

SUITE = "kv_saturation"
NEAR_FULL = 0.8  # the last level must drive the cache at least this full (or preempt), or it did not test saturation


def test_kv_saturation(case, bench) -> None:
    result = bench.run(case)
    rows = []
    for start in result.starts:
        for level in start.levels:
            m = level.server_metrics
            rows.append(
                {
                    "start": start.start_index + 1,
                    "level": level.label,
                    "kv_cache_usage_peak": m.get("kv_cache_usage_peak"),
                    "running_peak": m.get("running_peak"),
                    "waiting_peak": m.get("waiting_peak"),
                    "preemptions": m.get("preemptions"),
                }
            )
    bench.annotate(kv_saturation=rows)
    for row in rows:
        bench.progress(f"[{case.id}] " + ", ".join(f"{k} {v}" for k, v in row.items()))
    assert_levels_succeeded(result, min_success=1.0)  # seed 000: saturation must degrade gracefully, never fail
    last = [row for row in rows if row["level"] == case.steps[-1][0]]
    missing = [row for row in last if row["kv_cache_usage_peak"] is None]
    assert not missing, f"/metrics gave no vllm:kv_cache_usage_perc during the last level: {missing}"
    # The peak is sampled (one /metrics scrape every interval), so on a busy machine a scrape can miss it; a
    # preemption cannot be missed (a counter) and happens only when the cache had no room left: either proves it.
    shallow = [row for row in last if row["kv_cache_usage_peak"] < NEAR_FULL and not row["preemptions"]]
    assert not shallow, (
        f"the last level neither filled the KV cache to {NEAR_FULL:.0%} nor preempted a request ({shallow}); raise "
        f"concurrency or prompt length, or shrink kv_cache_memory_bytes in {case.source}"
    )
