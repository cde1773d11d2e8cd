"""The async streaming client: sends one profile's requests, returns one RequestRecord per request.

One connection pool per run (a raw HTTP/1.1 protocol for http://, aiohttp for https://), bounded by request count
and wall time. Pacing (when each request may leave) comes from ``servegate.load.profiles``; this module only sends,
streams and timestamps.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from servegate.config import LoadConfig
from servegate.load.http import HTTPPool, ResponseError
from servegate.load.records import ITLRule, RequestRecord
from servegate.load.sse import SSEParser


@dataclass(frozen=True)
class Request:
    """A dataset item that carries its own sizes (ShareGPT: the recorded output length; images: a chat message)."""

    prompt: str | list[dict[str, Any]]  # completions text, or chat messages
    prompt_tokens: int = 0  # as measured, 0 when unknown
    output_tokens: int | None = None  # None: the load's output_tokens


Prompt = str | list[dict[str, Any]] | Request  # completions text, chat messages, or a sized dataset item


@dataclass
class RunResult:
    records: list[RequestRecord]
    started_at: float  # perf_counter
    finished_at: float
    wall_start: float  # time.time() at start, for correlating with server logs
    max_loop_lag_s: float = 0.0
    stopped_early: str | None = None  # why the run stopped before sending every request
    loop_lag_p99_s: float = 0.0  # 99th percentile of the event loop's wake-up lateness during the run

    @property
    def duration_s(self) -> float:
        return self.finished_at - self.started_at


def build_payload(model: str, prompt: Prompt, load: LoadConfig, max_tokens: int, index: int) -> dict[str, Any]:
    """The request body. Style "servegate" pins decoding so every start does the same work: temperature, a seed per
    request, ignore_eos. Style "vllm-bench" is field for field what ``vllm bench serve`` (openai and openai-chat
    backends) sends: no temperature (the server's default sampling), no seed, ``repetition_penalty`` 1.0 and
    ``logprobs`` null on completions, ``ignore_eos`` only when asked."""
    if isinstance(prompt, Request):
        prompt = prompt.prompt
    messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    body: dict[str, Any]
    if load.request_style == "vllm-bench":
        if load.endpoint == "chat":
            if not isinstance(prompt, list):  # vllm bench sends plain text as a list of content parts
                messages = [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
            body = {"model": model, "messages": messages, "max_completion_tokens": max_tokens}
        else:
            body = {"model": model, "prompt": prompt, "repetition_penalty": 1.0, "max_tokens": max_tokens}
            body["logprobs"] = None
        body.update({"stream": True, "stream_options": {"include_usage": True}})
        if load.ignore_eos:
            body["ignore_eos"] = True
        return body
    body = {
        "model": model,
        "max_tokens": max_tokens,
        "temperature": load.temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": load.ignore_eos,
        "seed": load.seed + index,
    }
    if load.endpoint == "chat":
        body["messages"] = messages
        body["max_completion_tokens"] = body.pop("max_tokens")
    else:
        body["prompt"] = prompt
    return body


def endpoint_path(load: LoadConfig) -> str:
    return "/v1/chat/completions" if load.endpoint == "chat" else "/v1/completions"


async def send_one(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    record: RequestRecord,
    timeout_s: float,
    collect_text: bool,
    ignore_eos: bool,
) -> None:
    """Send, stream, timestamp. Every failure becomes an outcome on the record, never an exception."""
    parser = SSEParser(collect_text=collect_text)
    feed = parser.feed
    clock = time.perf_counter
    record.sent_at = clock()
    try:
        async with asyncio.timeout(timeout_s):
            headers = {"content-type": "application/json"}
            async with session.post(url, data=body, headers=headers) as resp:
                record.http_status = resp.status
                if resp.status != 200:
                    record.outcome = "http_error"
                    record.error = f"HTTP {resp.status}: {(await resp.text())[:300]}"
                    return
                async for chunk in resp.content.iter_any():
                    feed(chunk, clock())
                parser.close()
    except TimeoutError:
        record.outcome, record.error = "timeout", f"no complete response within {timeout_s:g} s"
    except aiohttp.ClientPayloadError as exc:
        record.outcome, record.error = "cut_stream", f"stream cut: {exc}"
    except (aiohttp.ClientConnectionError, OSError) as exc:
        if parser.state.chunk_times:
            record.outcome, record.error = "cut_stream", f"connection lost mid-stream: {exc}"
        else:
            record.outcome, record.error = "connect_error", f"{type(exc).__name__}: {exc}"
    finally:
        record.done_at = clock()
        _fill(record, parser, collect_text, ignore_eos)


def _fill(record: RequestRecord, parser: SSEParser, collect_text: bool, ignore_eos: bool) -> None:
    st = parser.state
    record.chunk_times = st.chunk_times
    record.prompt_tokens = st.usage_prompt_tokens
    record.output_tokens = st.usage_completion_tokens
    record.malformed_events = st.malformed
    if collect_text:
        record.text = "".join(st.text_parts)
    if record.outcome != "ok":
        return
    if st.error_message is not None:
        record.outcome, record.error = "stream_error", st.error_message
    elif st.malformed and not st.chunk_times:
        record.outcome, record.error = "malformed", f"{st.malformed} malformed event(s), no token"
    elif not st.done and st.usage_completion_tokens is None:
        record.outcome, record.error = "cut_stream", "stream ended without usage or [DONE]"
    elif st.malformed:
        record.outcome, record.error = "malformed", f"{st.malformed} malformed event(s)"
    elif ignore_eos and (record.output_tokens or 0) < record.output_tokens_asked:
        record.outcome = "short"
        record.error = f"{record.output_tokens} of {record.output_tokens_asked} tokens with ignore_eos"


class LoopLagMonitor:
    """Measures how late the event loop wakes up: lag here means every timestamp of the run is late too."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.max_lag_s = 0.0
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        clock = time.perf_counter
        samples = self.samples
        while True:
            t = clock()
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, clock() - t - self.interval_s)
            if len(samples) < 1_000_000:
                samples.append(lag)
            if lag > self.max_lag_s:
                self.max_lag_s = lag

    def __enter__(self) -> LoopLagMonitor:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def _send_raw(
    pool: HTTPPool,
    request: bytes,
    record: RequestRecord,
    timeout_s: float,
    collect_text: bool,
    ignore_eos: bool,
) -> float:
    """The fast path (plain http): returns when the last byte arrived, so a closed-loop worker can schedule its
    next request from that instant and the gap until it actually leaves counts as the client's own lag."""
    parser = SSEParser(collect_text=collect_text)
    clock = time.perf_counter
    finished = 0.0
    record.sent_at = clock()
    try:
        async with asyncio.timeout(timeout_s):
            conn = await pool.connect()
            status, error_body = await pool.send(conn, request, parser.feed)
            finished = conn.finished_at
        record.http_status = status
        if status != 200:
            record.outcome = "http_error"
            record.error = f"HTTP {status}: {error_body[:300].decode('utf-8', 'replace')}"
        else:
            parser.close()
    except TimeoutError:
        record.outcome, record.error = "timeout", f"no complete response within {timeout_s:g} s"
    except ResponseError as exc:
        got = exc.got_body or bool(parser.state.chunk_times)
        record.outcome = "cut_stream" if got else "connect_error"
        record.error = str(exc)
    except OSError as exc:
        record.outcome, record.error = "connect_error", f"{type(exc).__name__}: {exc}"
    finally:
        record.done_at = clock()
        _fill(record, parser, collect_text, ignore_eos)
    return finished or record.done_at


async def run_requests(
    base_url: str,
    model: str,
    prompts: Sequence[Prompt],
    load: LoadConfig,
    schedule: Sequence[float] | None,
    concurrency: int | None,
    collect_text: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    start_at: float | None = None,
    max_seconds: float | None = None,
    indices: Sequence[int] | None = None,
) -> RunResult:
    """Send ``len(prompts)`` requests; request i may leave at ``schedule[i]`` s after start (None: at once) and
    at most ``concurrency`` are in flight (None: unbounded). Stops sending after ``max_seconds`` (default
    ``load.max_seconds``). ``start_at`` (perf_counter) lets several worker processes share one start instant;
    ``indices`` are the requests' global numbers (for seeds and records) when this is one worker's share."""
    n = len(prompts)
    limit_s = load.max_seconds if max_seconds is None else max_seconds
    index_of = list(indices) if indices is not None else list(range(n))
    max_tokens = [_max_tokens(p, load) for p in prompts]
    bodies = [
        json.dumps(build_payload(model, prompts[i], load, max_tokens[i], index_of[i]), separators=(",", ":")).encode()
        for i in range(n)
    ]
    itl_rule: ITLRule = "per-event" if load.request_style == "vllm-bench" else "spread"
    records = [
        RequestRecord(index_of[i], load.prompt_tokens, max_tokens[i], scheduled_at=0.0, itl_rule=itl_rule)
        for i in range(n)
    ]
    for i, prompt in enumerate(prompts):
        if isinstance(prompt, Request):
            records[i].prompt_tokens_asked = prompt.prompt_tokens
    path = endpoint_path(load)
    raw = base_url.startswith("http://")
    pool = HTTPPool(base_url) if raw else None
    requests = [pool.request_bytes(path, body) for body in bodies] if pool is not None else []
    url = base_url.rstrip("/") + path
    done = 0
    stopped_early: str | None = None
    sent = 0

    async def deliver(i: int, record: RequestRecord, session: aiohttp.ClientSession | None, text: bool) -> float:
        """Request ``i`` into ``record``, over the raw pool or aiohttp; returns when its last byte arrived."""
        if pool is not None:
            return await _send_raw(pool, requests[i], record, load.request_timeout_s, text, load.ignore_eos)
        assert session is not None
        await send_one(session, url, bodies[i], record, load.request_timeout_s, text, load.ignore_eos)
        return record.done_at

    async def send(i: int, session: aiohttp.ClientSession | None) -> float:
        nonlocal done
        try:
            return await deliver(i, records[i], session, collect_text)
        finally:
            done += 1
            if on_progress is not None:
                on_progress(done, n)

    gc.collect()
    gc.freeze()  # the run allocates many small objects; a full collection mid-run would show up as latency
    wall_start = time.time()
    session: aiohttp.ClientSession | None = None
    if not raw:
        limit = concurrency or 0
        connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, enable_cleanup_closed=True)
        session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=30))
    try:
        if n and load.request_style == "vllm-bench":
            # vllm bench serve's "initial single prompt test run": the first prompt once, unmeasured. It leaves one
            # open connection (the first wave opens the others inside its TTFT, as there) and the first prompt in
            # the prefix cache, so the first measured request is served as vllm bench's is.
            await deliver(0, RequestRecord(-1, load.prompt_tokens, max_tokens[0], scheduled_at=0.0), session, False)
        elif pool is not None and n:
            # Same connections a steady-state client would hold; bounded so an open-loop run cannot open thousands.
            await pool.prewarm(min(n, concurrency or 64, 2048))
        with LoopLagMonitor() as lag:
            t0 = time.perf_counter()
            if start_at is not None and start_at > t0:
                await asyncio.sleep(start_at - t0)
                t0 = start_at
            deadline = t0 + limit_s
            clock = time.perf_counter
            if schedule is None and concurrency:
                # Closed loop: ``concurrency`` workers, each sends its next request as soon as its last one ended.
                # A request is due the instant its predecessor's last byte arrived; lateness past that is ours.
                next_i = 0

                async def worker() -> None:
                    nonlocal next_i, sent, stopped_early
                    # The first wave is a ramp (all due at t0, they leave one after the other, ~50 us apart while
                    # connections open): each worker's first request is due when the worker first runs. Its cost
                    # shows in the run's duration, not as schedule lag.
                    due = clock()
                    while next_i < n:
                        if clock() > deadline:
                            stopped_early = f"time limit {limit_s:g} s reached after {sent} of {n} requests"
                            return
                        i = next_i
                        next_i += 1
                        sent += 1
                        records[i].scheduled_at = due
                        due = await send(i, session)

                await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
            else:
                gate = asyncio.Semaphore(concurrency) if concurrency else None
                tasks = []

                async def gated(i: int) -> None:
                    try:
                        await send(i, session)
                    finally:
                        if gate is not None:
                            gate.release()

                for i in range(n):
                    due = t0 + (schedule[i] if schedule is not None else 0.0)
                    # Timers have millisecond resolution (uvloop even fires early): sleep to ~1.5 ms before the
                    # due time, then yield loop iterations (I/O keeps flowing) until it has come.
                    while (now := clock()) < due:
                        await asyncio.sleep(due - now - 0.0015 if due - now > 0.002 else 0)
                    if gate is not None:
                        await gate.acquire()
                    if clock() > deadline:
                        stopped_early = f"time limit {limit_s:g} s reached after {i} of {n} requests"
                        if gate is not None:
                            gate.release()
                        break
                    # Due = scheduled and a slot free; what follows until the send is the client's own lag.
                    records[i].scheduled_at = max(due, clock()) if gate is not None else due
                    sent += 1
                    tasks.append(asyncio.create_task(gated(i)))
                if tasks:
                    await asyncio.gather(*tasks)
            t1 = time.perf_counter()
    finally:
        gc.unfreeze()
        if pool is not None:
            pool.close()
        if session is not None:
            await session.close()
    used = [r for r in records if r.sent_at > 0.0]
    return RunResult(
        used,
        t0,
        t1,
        wall_start,
        max_loop_lag_s=lag.max_lag_s,
        stopped_early=stopped_early,
        loop_lag_p99_s=_p99(lag.samples),
    )


def _max_tokens(prompt: Prompt, load: LoadConfig) -> int:
    if isinstance(prompt, Request) and prompt.output_tokens is not None:
        return prompt.output_tokens
    return load.output_tokens
