"""The client against a misbehaving server: every fault ends as a counted outcome on its request, never a crash."""

from __future__ import annotations

import json

import pytest

from servegate.config import LoadConfig
from servegate.load.client import run_requests
from servegate.load.measure import run_async
from servegate.metrics import summarize
from servegate.testing.stub_server import StubConfig, StubServer


def run(stub: StubServer, n: int = 8, concurrency: int | None = 4, schedule=None, **load_kw):
    load = LoadConfig(num_requests=n, concurrency=concurrency or 1, output_tokens=8, prompt_tokens=8, **load_kw)
    return run_async(run_requests(stub.base_url, "stub", ["hi"] * n, load, schedule, concurrency))


def test_clean_streams_are_complete_and_token_exact() -> None:
    with StubServer(StubConfig(ttft_s=0.002, itl_s=0.001)) as stub:
        result = run(stub)
    assert [r.outcome for r in result.records] == ["ok"] * 8
    assert all(r.output_tokens == 8 and len(r.chunk_times) == 8 for r in result.records)
    assert all(r.ttft is not None and r.ttft >= 0.001 for r in result.records)


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        ("http500", "http_error"),
        ("http429", "http_error"),
        ("cut", "cut_stream"),
        ("malformed", "malformed"),
        ("error_event", "stream_error"),
        ("short", "short"),
    ],
)
def test_each_fault_is_its_own_outcome(fault: str, outcome: str) -> None:
    with StubServer(StubConfig(ttft_s=0.001, itl_s=0.0005, fault=fault, fault_every=2)) as stub:
        result = run(stub)
    outcomes = [r.outcome for r in sorted(result.records, key=lambda r: r.index)]
    assert outcomes.count(outcome) == 4, outcomes  # every 2nd request of 8 is faulty
    assert outcomes.count("ok") == 4, outcomes
    summary = summarize(result)
    assert summary.success_rate == 0.5 and summary.outcomes[outcome] == 4
    if fault.startswith("http"):
        assert summary.http_statuses == {fault[4:]: 4}


def test_a_hanging_server_times_out_within_the_bound() -> None:
    with StubServer(StubConfig(fault="hang")) as stub:
        result = run(stub, n=3, concurrency=3, request_timeout_s=0.3)
    assert [r.outcome for r in result.records] == ["timeout"] * 3
    assert result.duration_s < 2.0


def test_slow_server_is_bounded_by_max_seconds() -> None:
    with StubServer(StubConfig(itl_s=0.05)) as stub:
        result = run(stub, n=100, concurrency=1, max_seconds=0.3)
    assert result.stopped_early and "time limit" in result.stopped_early
    assert 1 <= len(result.records) < 100


def test_connection_refused_is_a_connect_error() -> None:
    with StubServer() as stub:
        url = stub.base_url
    load = LoadConfig(num_requests=2, concurrency=2)
    result = run_async(run_requests(url, "m", ["x", "y"], load, None, 2))
    assert {r.outcome for r in result.records} == {"connect_error"}


def test_rate_schedule_is_kept() -> None:
    """Never early, in schedule order, and the lateness is what the summary reports. How small the lateness is
    depends on the machine's load: bench/timing_accuracy.py measures it, a test on a shared machine cannot."""
    with StubServer(StubConfig(ttft_s=0.001, itl_s=0.001)) as stub:
        offsets = [i * 0.01 for i in range(20)]
        result = run(stub, n=20, concurrency=None, schedule=offsets)
    start = result.started_at
    records = sorted(result.records, key=lambda r: r.index)
    for r, due in zip(records, offsets, strict=True):
        assert r.sent_at - start >= due - 1e-6  # never early
    assert [r.sent_at for r in records] == sorted(r.sent_at for r in records)
    lags = sorted(1000 * (r.sent_at - r.scheduled_at) for r in records)
    assert summarize(result).send_lag_p99_ms == pytest.approx(lags[-1], abs=lags[-1] - lags[-2] + 1e-9)


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_vllm_bench_request_style_sends_what_vllm_bench_serve_sends(endpoint: str) -> None:
    """The body is compared with the one vLLM's own benchmark request function sends to the same stub."""
    import asyncio

    import aiohttp

    vllm_requests = pytest.importorskip("vllm.benchmarks.lib.endpoint_request_func")
    send = {
        "completions": vllm_requests.async_request_openai_completions,
        "chat": vllm_requests.async_request_openai_chat_completions,
    }[endpoint]
    path = "/v1/completions" if endpoint == "completions" else "/v1/chat/completions"

    async def vllm_bench_once(base_url: str, ignore_eos: bool) -> None:
        async with aiohttp.ClientSession() as session:
            item = vllm_requests.RequestFuncInput(
                prompt="hi", api_url=base_url + path, prompt_len=1, output_len=8, model="stub", ignore_eos=ignore_eos
            )
            assert (await send(item, session)).success

    for ignore_eos in (False, True):
        with StubServer(StubConfig(ttft_s=0.001, itl_s=0.0005)) as stub:
            asyncio.run(vllm_bench_once(stub.base_url, ignore_eos))
            result = run(stub, n=1, endpoint=endpoint, request_style="vllm-bench", ignore_eos=ignore_eos, seed=7)
            theirs, *ours = (json.loads(body) for body in stub.stats.first_bodies)
        assert result.records[0].outcome == "ok" and result.records[0].itl_rule == "per-event"
        assert ours == [theirs, theirs]  # the readiness request, then the measured one, as vllm bench sends them


def test_request_style_is_validated_and_keys_its_own_baseline() -> None:
    with pytest.raises(ValueError, match=r"request_style\n  Input should be 'servegate' or 'vllm-bench'"):
        LoadConfig(request_style="vllm")  # type: ignore[arg-type]
    assert LoadConfig().id == "c8-in128-out64"
    assert LoadConfig(request_style="vllm-bench").id == "c8-in128-out64-vllm-bench"


def test_stub_first_token_times_split_the_client_ttft() -> None:
    with StubServer(StubConfig(ttft_s=0.005, itl_s=0.001)) as stub:
        result = run(stub, n=8, seed=100)
        times = {seed: (read, wrote) for seed, read, wrote in stub.stats.first_token}
    for r in result.records:
        read, wrote = times[100 + r.index]  # the request's seed names it
        assert r.sent_at <= read <= wrote <= r.chunk_times[0]
        assert wrote - read >= 0.005 - 0.002  # event-loop timers may fire up to a millisecond early
