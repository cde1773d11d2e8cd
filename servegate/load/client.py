"""The async streaming client: sends one profile's requests, returns one RequestRecord per request.

One aiohttp session and one connection pool per run, bounded by request count and wall time. Pacing (when each
request may leave) comes from ``servegate.load.profiles``; this module only sends, streams and timestamps.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from servegate.config import LoadConfig
from servegate.load.records import RequestRecord
from servegate.load.sse import SSEParser

Prompt = str | list[dict[str, Any]]  # completions text, or chat messages


@dataclass
class RunResult:
    records: list[RequestRecord]
    started_at: float  # perf_counter
    finished_at: float
    wall_start: float  # time.time() at start, for correlating with server logs
    max_loop_lag_s: float = 0.0
    stopped_early: str | None = None  # why the run stopped before sending every request

    @property
    def duration_s(self) -> float:
        return self.finished_at - self.started_at


def build_payload(model: str, prompt: Prompt, load: LoadConfig, max_tokens: int, index: int) -> dict[str, Any]:
    """The request body, identical in shape to what ``vllm bench serve`` sends."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "temperature": load.temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": load.ignore_eos,
        "seed": load.seed + index,
    }
    if load.endpoint == "chat":
        body["messages"] = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        body["max_completion_tokens"] = body.pop("max_tokens")
    else:
        body["prompt"] = prompt
    return body


def endpoint_path(load: LoadConfig) -> str:
    return "/v1/chat/completions" if load.endpoint == "chat" else "/v1/completions"


async def send_one(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
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
            async with session.post(url, json=body) as resp:
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

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.max_lag_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        clock = time.perf_counter
        while True:
            t = clock()
            await asyncio.sleep(self.interval_s)
            self.max_lag_s = max(self.max_lag_s, clock() - t - self.interval_s)

    def __enter__(self) -> LoopLagMonitor:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


async def run_requests(
    base_url: str,
    model: str,
    prompts: Sequence[Prompt],
    load: LoadConfig,
    schedule: Sequence[float] | None,
    concurrency: int | None,
    collect_text: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Send ``len(prompts)`` requests; request i may leave at ``schedule[i]`` s after start (None: at once) and
    at most ``concurrency`` are in flight (None: unbounded). Stops sending after ``load.max_seconds``."""
    n = len(prompts)
    url = base_url.rstrip("/") + endpoint_path(load)
    limit = concurrency or 0
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=None, enable_cleanup_closed=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    records: list[RequestRecord] = []
    done = 0
    gate = asyncio.Semaphore(concurrency) if concurrency else None
    stopped_early: str | None = None

    async def one(i: int, record: RequestRecord) -> None:
        nonlocal done
        try:
            body = build_payload(model, prompts[i], load, load.output_tokens, i)
            await send_one(session, url, body, record, load.request_timeout_s, collect_text, load.ignore_eos)
        finally:
            if gate is not None:
                gate.release()
            done += 1
            if on_progress is not None:
                on_progress(done, n)

    gc.collect()
    gc.freeze()  # the run allocates many small objects; a full collection mid-run would show up as latency
    wall_start = time.time()
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            with LoopLagMonitor() as lag:
                t0 = time.perf_counter()
                tasks = []
                for i in range(n):
                    offset = schedule[i] if schedule is not None else 0.0
                    now = time.perf_counter() - t0
                    if offset > now:
                        await asyncio.sleep(offset - now)
                    if gate is not None:
                        await gate.acquire()
                    if time.perf_counter() - t0 > load.max_seconds:
                        stopped_early = f"time limit {load.max_seconds:g} s reached after {i} of {n} requests"
                        if gate is not None:
                            gate.release()
                        break
                    # Eligible = scheduled and a slot is free; what follows until the send is the client's own lag.
                    eligible = max(t0 + offset, time.perf_counter()) if gate is not None else t0 + offset
                    record = RequestRecord(i, load.prompt_tokens, load.output_tokens, scheduled_at=eligible)
                    records.append(record)
                    tasks.append(asyncio.create_task(one(i, record)))
                if tasks:
                    await asyncio.gather(*tasks)
                t1 = time.perf_counter()
    finally:
        gc.unfreeze()
    return RunResult(records, t0, t1, wall_start, max_loop_lag_s=lag.max_lag_s, stopped_early=stopped_early)
