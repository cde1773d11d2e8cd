"""Within-run percentile intervals (order statistics) and the within/between-start variance split."""

from __future__ import annotations

import math

import numpy as np
import pytest

from servegate.load.records import RequestRecord
from servegate.precision import components, order_statistic_ranks, within_run, within_run_of


def test_order_statistic_intervals_cover_the_true_quantile() -> None:
    rng = np.random.default_rng(1)
    true_median, true_p90 = math.log(2), -math.log(0.1)  # exponential(1)
    hits = {"median": 0, "p90": 0}
    for _ in range(2000):
        x = rng.exponential(1.0, 200)
        for stat, truth in (("median", true_median), ("p90", true_p90)):
            w = within_run(x, stat)
            hits[stat] += w.low <= truth <= w.high
    assert all(h / 2000 >= 0.94 for h in hits.values()), hits


def test_a_p99_from_32_requests_is_unsupported_but_from_1000_it_is_not() -> None:
    assert order_statistic_ranks(32, 0.99) is None
    small = within_run(np.arange(1.0, 33.0), "p99")
    assert not small.supported and small.high == 32.0 and small.se == math.inf
    big = within_run(np.random.default_rng(2).exponential(1.0, 1000), "p99")
    assert big.supported and big.low < big.high


def test_variance_split_says_what_to_buy() -> None:
    rng = np.random.default_rng(3)
    # Starts differ a lot (between sd 10), requests inside each start are tight: buy starts.
    starts = [rng.normal(100 + 10 * rng.standard_normal(), 1.0, 100) for _ in range(6)]
    split = components([float(np.mean(s)) for s in starts], [within_run(s, "mean") for s in starts])
    assert split.between > 10 * split.within and "more starts" in split.advice
    # Starts alike, few noisy requests per start: buy requests.
    starts = [rng.normal(100, 20.0, 8) for _ in range(6)]
    split = components([float(np.mean(s)) for s in starts], [within_run(s, "mean") for s in starts])
    assert "more requests per start" in split.advice
    unsupported = components([1.0, 2.0], [within_run([1.0] * 10, "p99")] * 2)
    assert unsupported.unsupported_starts == 2 and "cannot support" in unsupported.advice


def test_within_run_of_reads_a_starts_records() -> None:
    records = [RequestRecord(i, 8, 4, 0.0, 0.0, [0.1 + 0.001 * i, 0.2, 0.3], 0.31) for i in range(50)]
    for r in records:
        r.output_tokens = 3
    out = within_run_of(records, ["ttft_median_ms", "itl_p99_ms", "output_throughput"])
    assert set(out) == {"ttft_median_ms", "itl_p99_ms"}
    assert out["ttft_median_ms"].low == pytest.approx(120.0, abs=6) and out["ttft_median_ms"].supported
    assert out["itl_p99_ms"].n == 100
