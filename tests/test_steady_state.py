"""Steady-state detection and the over-saturation rule on constructed runs whose edges are known."""

from __future__ import annotations

import random

import pytest

from servegate.load.client import RunResult
from servegate.load.records import RequestRecord
from servegate.metrics import summarize
from servegate.steady_state import detect, mser, oversaturation, summarize_window


def record(i: int, sent: float, ttft: float, e2el: float, tokens: int = 16) -> RequestRecord:
    r = RequestRecord(i, 64, tokens, scheduled_at=sent, sent_at=sent)
    step = (e2el - ttft) / (tokens - 1)
    r.chunk_times = [sent + ttft + k * step for k in range(tokens)]
    r.done_at = r.chunk_times[-1]
    r.output_tokens = tokens
    r.prompt_tokens = 64
    return r


def closed_loop(n: int = 200, slots: int = 8, warm: int = 24, seed: int = 1) -> RunResult:
    """``slots`` workers; the first ``warm`` requests take 3x as long (a cold server), then a steady 1 s each."""
    rng = random.Random(seed)
    free = [0.0] * slots
    records = []
    for i in range(n):
        w = min(range(slots), key=lambda k: free[k])
        e2el = (3.0 if i < warm else 1.0) * rng.uniform(0.95, 1.05)
        r = record(i, free[w], 0.05 * e2el, e2el)
        free[w] = r.done_at
        records.append(r)
    return RunResult(records, 0.0, max(r.done_at for r in records), 0.0)


def test_mser_truncates_a_biased_head_and_keeps_a_stationary_series() -> None:
    rng = random.Random(3)
    stationary = [rng.gauss(1.0, 0.05) for _ in range(200)]
    assert mser(stationary) <= 10
    assert 25 <= mser([3.0] * 30 + stationary) <= 40


def test_detect_trims_the_cold_start_and_the_emptying_slots() -> None:
    run = closed_loop()
    window = detect(run)
    assert window.head_by != "none" and window.head_trimmed_s > 3.0  # the 24 slow requests take ~9 s per slot
    assert window.tail_trimmed_s > 0  # slots empty one by one at the end
    inside = [r for r in run.records if r.sent_at >= window.start and r.done_at <= window.end]
    assert len(inside) == window.requests_inside and all(r.index >= 20 for r in inside)
    steady = summarize_window(run, window, (50.0, 99.0))
    whole = summarize(run, (50.0, 99.0))
    assert steady.e2el.percentiles["p99"] < whole.e2el.percentiles["p99"] / 2
    # throughput on the window: 8 slots each finishing a 16-token request per second
    assert steady.output_throughput == pytest.approx(8 * 16, rel=0.08)
    assert whole.output_throughput < steady.output_throughput
    d = window.to_dict(applied=True)
    assert d["applied"] and d["requests_total"] == 200 and d["window_s"] > 0


def test_a_short_run_is_not_trimmed_and_says_why() -> None:
    run = closed_loop(n=12)
    window = detect(run)
    assert window.head_trimmed_s == 0 and window.tail_trimmed_s == 0 and "too few" in window.note


def open_loop(rate: float, service_s: float, n: int = 120) -> RunResult:
    """One server slot behind an open-loop arrival stream: over capacity when rate x service > 1."""
    free = 0.0
    records = []
    for i in range(n):
        sent = i / rate
        start = max(sent, free)
        free = start + service_s
        records.append(record(i, sent, start - sent + 0.01, free - sent))
    return RunResult(records, 0.0, max(r.done_at for r in records), 0.0)


def test_oversaturation_fires_when_the_queue_grows_and_not_below_capacity() -> None:
    assert "in flight grew" in oversaturation(open_loop(rate=10.0, service_s=0.2))
    assert oversaturation(open_loop(rate=2.0, service_s=0.2)) == ""
    assert oversaturation(closed_loop()) == ""  # a closed loop's queue is bounded by its slots
