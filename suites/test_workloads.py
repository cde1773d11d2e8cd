"""Workloads users run today, on one server per start: a Mooncake trace replayed on its schedule, multi-turn chat
that resends the growing history, and a run measured on its detected steady window.

The trace's requests share hash-id blocks (53% of its blocks repeat an earlier request's) and every multi-turn
request after the first of its conversation resends the previous turns: both must show prefix-cache hits on the
server's own counters. The steady phase must report what it trimmed and keep fewer requests than it sent.
"""

from __future__ import annotations

from fixtures.checks import assert_levels_succeeded

SUITE = "workloads"


def test_workloads(case, bench) -> None:
    result = bench.run(case)
    assert_levels_succeeded(result)
    for start in result.starts:
        levels = {level.label: level.summary for level in start.levels}
        assert set(levels) == {"trace", "multiturn", "steady"}, sorted(levels)
        for name in ("trace", "multiturn"):
            metrics = levels[name].server_metrics
            hit_rate = metrics.get("prefix_cache_hit_rate")
            bench.progress(f"[{case.id}] start {start.start_index + 1} {name}: prefix-cache hit rate {hit_rate}")
            assert hit_rate is not None and hit_rate > 0.1, (
                f"{name}: shared prefixes should hit the prefix cache; server metrics {metrics}; log {start.log_path}"
            )
        steady = levels["steady"].steady
        bench.progress(f"[{case.id}] start {start.start_index + 1} steady window: {steady}")
        assert steady["applied"] and steady["requests_inside"] < steady["requests_total"], steady
        assert steady["head_trimmed_s"] + steady["tail_trimmed_s"] > 0, steady
