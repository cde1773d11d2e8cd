"""seed 002's two other modes: the latency floor (one request at a time) and offline peak throughput (all at once)."""

from __future__ import annotations

from fixtures.checks import assert_levels_succeeded

SUITE = "latency_offline"


def test_latency_offline(case, bench) -> None:
    result = bench.run(case)
    assert_levels_succeeded(result)
    for start in result.starts:
        floor, peak = start.levels[0].summary, start.levels[-1].summary
        # Continuous batching must turn many simultaneous requests into more tokens per second than one at a time;
        # if not, the server is not batching (or the client serialises) and the peak figure means nothing.
        assert peak.output_throughput > floor.output_throughput, (
            f"start {start.start_index + 1}: offline peak {peak.output_throughput:.0f} tok/s is not above the "
            f"one-at-a-time {floor.output_throughput:.0f} tok/s; server log {start.log_path}"
        )
