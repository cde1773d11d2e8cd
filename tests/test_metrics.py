"""Metric math on hand-made records, checked against the definitions of vllm bench serve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from servegate.config import SLO
from servegate.load.client import RunResult
from servegate.load.records import RequestRecord, inter_token_latencies
from servegate.metrics import direction_of, summarize


def rec(i: int, sent: float, chunks: list[float], out: int, prompt: int = 10, outcome: str = "ok") -> RequestRecord:
    r = RequestRecord(i, prompt, out, scheduled_at=sent, sent_at=sent, chunk_times=chunks, done_at=chunks[-1] + 0.001)
    r.prompt_tokens, r.output_tokens, r.outcome = prompt, out, outcome  # type: ignore[assignment]
    return r


def test_definitions() -> None:
    a = rec(0, 0.0, [0.100, 0.110, 0.130, 0.160], out=4)
    b = rec(1, 0.050, [0.250, 0.260], out=2)
    run = RunResult([a, b], started_at=0.0, finished_at=0.5, wall_start=0.0)
    s = summarize(run, percentiles=(50, 99))
    assert s.ttft.mean == pytest.approx((100 + 200) / 2)
    assert s.ttft.median == pytest.approx(150)
    # ITL pooled over requests: 10, 20, 30 (a) and 10 (b)
    assert s.itl.mean == pytest.approx(17.5)
    assert s.itl.percentiles["p99"] == pytest.approx(np.percentile([10, 20, 30, 10], 99))
    # TPOT per request: (160-100)/(4-1)=20 and (260-250)/(2-1)=10
    assert s.tpot.mean == pytest.approx(15)
    # E2EL: send -> last chunk
    assert s.e2el.mean == pytest.approx((160 + 210) / 2)
    assert s.request_throughput == pytest.approx(2 / 0.5)
    assert s.output_throughput == pytest.approx(6 / 0.5)
    assert s.total_token_throughput == pytest.approx(26 / 0.5)
    assert s.success_rate == 1.0


def test_events_coalesced_into_one_read_share_its_gap() -> None:
    # reads at 0.10 (1 event), 0.13 (3 events), 0.14 (1 event): the 30 ms before the second read is 3 gaps of 10 ms
    assert inter_token_latencies([0.10, 0.13, 0.13, 0.13, 0.14]) == pytest.approx([0.01, 0.01, 0.01, 0.01])
    # extra events of the first read are spread over the next read's gap; gaps always sum to last - first
    itls = inter_token_latencies([0.10, 0.10, 0.16, 0.17])
    assert itls == pytest.approx([0.03, 0.03, 0.01]) and sum(itls) == pytest.approx(0.07)
    # a stream that arrived in one read has no gap to spread
    assert inter_token_latencies([0.2, 0.2, 0.2]) == [0.0, 0.0]
    assert inter_token_latencies([0.2]) == [] and inter_token_latencies([]) == []


def test_coalesced_reads_keep_itl_non_degenerate_and_consistent_with_tpot() -> None:
    # 16 events delivered two per read every 20 ms: per-read gaps would pool to p50 = 0
    times = [0.1 + 0.02 * (k // 2) for k in range(16)]
    s = summarize(RunResult([rec(0, 0.0, times, out=16)], 0.0, 1.0, 0.0), percentiles=(50,))
    assert s.itl.median == pytest.approx(10.0)
    assert s.itl.mean * (16 - 1) == pytest.approx(s.tpot.mean * (16 - 1))
    assert s.itl.count == 15


def test_per_event_rule_is_vllm_bench_serve_itl() -> None:
    r = rec(0, 0.0, [0.10, 0.13, 0.13, 0.14], out=4)
    r.itl_rule = "per-event"
    assert r.itls == pytest.approx([0.03, 0.0, 0.01])
    assert rec(0, 0.0, [0.10, 0.13, 0.13, 0.14], out=4).itls == pytest.approx([0.015, 0.015, 0.01])


def test_failures_and_short_outputs_are_not_successes() -> None:
    good = rec(0, 0.0, [0.1, 0.2], out=2)
    short = rec(1, 0.0, [0.1], out=1, outcome="short")
    failed = rec(2, 0.0, [0.3], out=0, outcome="http_error")
    s = summarize(RunResult([good, short, failed], 0.0, 1.0, 0.0))
    assert s.success_rate == pytest.approx(1 / 3)
    assert s.outcomes == {"ok": 1, "short": 1, "http_error": 1}
    assert s.total_output_tokens == 2  # failed requests' tokens do not inflate throughput
    assert s.ttft.count == 1


def test_goodput_counts_requests_meeting_every_slo() -> None:
    fast = rec(0, 0.0, [0.05, 0.06, 0.07], out=3)
    slow_start = rec(1, 0.0, [0.5, 0.51, 0.52], out=3)
    s = summarize(RunResult([fast, slow_start], 0.0, 1.0, 0.0), slo=SLO(ttft_ms=100, tpot_ms=20))
    assert s.goodput == pytest.approx(1.0)
    assert summarize(RunResult([fast], 0.0, 1.0, 0.0)).goodput is None


def test_empty_run_is_nan_not_an_error() -> None:
    s = summarize(RunResult([], 0.0, 1.0, 0.0))
    assert s.success_rate == 0.0 and math.isnan(s.ttft.median)


def test_non_finite_and_zero_metrics_are_named_not_dropped() -> None:
    s = summarize(RunResult([rec(0, 0.0, [0.3], out=0, outcome="http_error")], 0.0, 1.0, 0.0))
    assert s.unusable_metrics["ttft_median_ms"] == "not finite (nan)"
    assert s.unusable_metrics["output_throughput"] == "zero"
    assert s.unusable_metrics["success_rate"] == "zero"
    # every token in one read: ITL and TPOT are genuinely 0, and named as such
    one_read = summarize(RunResult([rec(0, 0.0, [0.2, 0.2, 0.2], out=3)], 0.0, 1.0, 0.0))
    decode = {name: "zero" for name in one_read.flat() if name.startswith(("itl_", "tpot_"))}
    assert one_read.unusable_metrics == decode and len(decode) == 10
    healthy = summarize(RunResult([rec(0, 0.0, [0.1, 0.2], out=2)], 0.0, 1.0, 0.0))
    assert healthy.unusable_metrics == {}


def test_extreme_values_do_not_crash() -> None:
    huge = rec(0, 0.0, [1e306, 1e307, 1.7e308], out=3)
    s = summarize(RunResult([huge, rec(1, 0.0, [0.1, 0.2], out=2)], 0.0, 1.0, 0.0))
    assert not math.isfinite(s.ttft.mean) and not math.isfinite(s.e2el.std)
    assert s.unusable_metrics["ttft_mean_ms"].startswith("not finite")
    assert "request_throughput" not in s.unusable_metrics


def test_directions() -> None:
    assert direction_of("ttft_median_ms") == "lower"
    assert direction_of("output_throughput") == "higher"
    assert direction_of("success_rate") == "higher"


def test_flat_names() -> None:
    s = summarize(RunResult([rec(0, 0.0, [0.1, 0.2], out=2)], 0.0, 1.0, 0.0))
    flat = s.flat()
    for key in ("ttft_median_ms", "ttft_p99_ms", "itl_p90_ms", "tpot_mean_ms", "e2el_p99_ms", "output_throughput"):
        assert key in flat
