"""When the client stamps an event and when it sends: the mechanisms behind its TTFT, not timing numbers."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from servegate.config import LoadConfig
from servegate.load import http
from servegate.load.client import run_requests
from servegate.load.measure import run_async
from servegate.load.sse import SSEParser
from servegate.testing.stub_server import StubConfig, StubServer

kernel_stamps = pytest.mark.skipif(http._SO_TIMESTAMPNS is None, reason="no SO_TIMESTAMPNS on this platform")


def _timespec(wall_ns: int) -> list[tuple[int, int, bytes]]:
    return [(socket.SOL_SOCKET, http._SO_TIMESTAMPNS or 35, http._TIMESPEC.pack(*divmod(wall_ns, 1_000_000_000)))]


@kernel_stamps
def test_arrival_time_is_the_kernel_stamp_on_perf_counters_clock() -> None:
    now = time.perf_counter()
    five_ms_ago = time.time_ns() - 5_000_000
    assert http.arrival_time(_timespec(five_ms_ago), now) == pytest.approx(now - 0.005, abs=0.001)
    assert http.arrival_time([], now) == now  # no stamp: the read's own time
    # a stamp from the future (a wall clock stepped back) never makes an event later than its read
    assert http.arrival_time(_timespec(time.time_ns() + 10**9), now) == now


@kernel_stamps
def test_a_stalled_event_loop_does_not_delay_the_first_token_stamp() -> None:
    """The first token arrives while the loop is blocked; its stamp is its arrival, not the late read."""
    stall_s = 0.3

    async def go(stub: StubServer) -> tuple[float, float]:
        pool = http.HTTPPool(stub.base_url)
        conn = await pool.connect()
        body = json.dumps({"model": "stub", "prompt": "hi", "max_tokens": 1, "stream": True}).encode()
        parser = SSEParser()
        task = asyncio.ensure_future(pool.send(conn, pool.request_bytes("/v1/completions", body), parser.feed))
        await asyncio.sleep(0)  # the task writes the request
        time.sleep(stall_s)  # the stimulus: a loop busy elsewhere while the token (TTFT 20 ms) comes in
        unblocked = time.perf_counter()
        assert (await task)[0] == 200
        pool.close()
        return parser.state.chunk_times[0], unblocked

    with StubServer(StubConfig(ttft_s=0.02, itl_s=0.001)) as stub:
        stamped, unblocked = run_async(go(stub))
        wrote = stub.stats.first_token[0][2]
    assert wrote < unblocked - stall_s / 2, "the stub answered only after the stall: nothing was tested"
    assert wrote - 0.001 <= stamped < wrote + stall_s / 4  # a read-time stamp would be >= unblocked


def test_vllm_bench_style_sends_the_first_prompt_once_before_the_run() -> None:
    """vllm bench serve's readiness request: the first prompt, unmeasured, before any measured request."""
    prompts = [f"prompt {i}" for i in range(4)]
    load = LoadConfig(num_requests=4, concurrency=2, output_tokens=4, prompt_tokens=8, request_style="vllm-bench")
    with StubServer(StubConfig(ttft_s=0.001, itl_s=0.001)) as stub:
        result = run_async(run_requests(stub.base_url, "stub", prompts, load, None, 2))
        sent = [json.loads(body)["prompt"] for body in stub.stats.first_bodies]
        requests = stub.stats.requests
    assert [r.outcome for r in result.records] == ["ok"] * 4
    assert requests == 5
    assert sent[0] == sent[1] == "prompt 0"
    assert sorted(sent[1:]) == prompts
    assert sorted(r.index for r in result.records) == [0, 1, 2, 3]  # the readiness request is not a record


def test_servegate_style_sends_only_the_measured_requests() -> None:
    prompts = [f"prompt {i}" for i in range(4)]
    load = LoadConfig(num_requests=4, concurrency=2, output_tokens=4, prompt_tokens=8)
    with StubServer(StubConfig(ttft_s=0.001, itl_s=0.001)) as stub:
        run_async(run_requests(stub.base_url, "stub", prompts, load, None, 2))
        assert stub.stats.requests == 4
