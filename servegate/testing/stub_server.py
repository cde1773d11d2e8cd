"""A tiny OpenAI-format streaming stub: for measuring the *client* (its ceiling, its timing) and for fault tests.

It is never a stand-in for vLLM in a benchmark. It speaks just enough HTTP/1.1 (keep-alive, chunked transfer
encoding) on a raw asyncio protocol so that one core of stub outruns one core of client: if the stub were the slower
side, a ceiling measured against it would be the stub's, not ours.

Timing: token i of a request is written at ``arrival + ttft + i * itl`` on the loop's clock (absolute deadlines, so
the stub's own scheduling delays do not accumulate); with ttft = itl = 0 the whole response is one write.
Faults, applied to every ``fault_every``-th request: ``http500``, ``http429``, ``cut`` (connection closed after half
the tokens), ``malformed`` (non-JSON data lines between tokens), ``hang`` (no bytes at all), ``slow`` (ITL x 20),
``error_event`` (an in-stream {"error": ...} event), ``short`` (half the tokens, with usage saying so).

Run as ``python -m servegate.testing.stub_server --port 8123 --ttft-ms 50 --itl-ms 10`` (prints ``READY <port>``) or
in-process with ``StubServer(...)`` as a context manager (a background thread with its own event loop).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

FAULTS = ("http500", "http429", "cut", "malformed", "hang", "slow", "error_event", "short")


@dataclass
class StubConfig:
    ttft_s: float = 0.0
    itl_s: float = 0.0
    tokens: int | None = None  # None: as many as the request's max_tokens
    fault: str | None = None
    fault_every: int = 1
    # Busy-poll near deadlines: event-loop timers have millisecond resolution (uvloop fires up to 1 ms early, epoll
    # rounds up), too coarse for a server whose TTFT/ITL are the truth a timing benchmark compares against. Costs a
    # whole core while streams are open, so only for a stub pinned to its own core, never in a thread.
    precise: bool = False


@dataclass
class StubStats:
    requests: int = 0
    tokens_sent: int = 0
    # how late the stub itself wrote token events against their deadlines (s); bounded sample
    write_lateness: list[float] = field(default_factory=list)
    first_bodies: list[bytes] = field(default_factory=list)  # the first request bodies, as sent (what clients send)
    # per streamed request: (its seed, perf_counter when the stub read it, when it wrote the first token); perf_counter
    # is CLOCK_MONOTONIC, shared by processes on one host, so a client can split its TTFT into send path, stub and
    # receive path. Bounded sample.
    first_token: list[tuple[int | None, float, float]] = field(default_factory=list)


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


_TOKEN_COMPLETION = b'data: {"id":"cmpl-stub","object":"text_completion","created":0,"model":"stub","choices":[{"index":0,"text":" tok","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}\n\n'  # noqa: E501
_TOKEN_CHAT = b'data: {"id":"chatcmpl-stub","object":"chat.completion.chunk","created":0,"model":"stub","choices":[{"index":0,"delta":{"content":" tok"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'  # noqa: E501
_DONE = b"data: [DONE]\n\n"
_HEAD_OK = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n"
    b"connection: keep-alive\r\n\r\n"
)


def _final(chat: bool, prompt_tokens: int, n: int) -> bytes:
    obj = "chat.completion.chunk" if chat else "text_completion"
    last: dict[str, Any] = {"index": 0, "finish_reason": "length"}
    last.update({"delta": {"content": " tok"}} if chat else {"text": " tok"})  # the last token carries finish_reason
    fin = {"id": "stub", "object": obj, "created": 0, "model": "stub", "choices": [last], "usage": None}
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}
    use = {"id": "stub", "object": obj, "created": 0, "model": "stub", "choices": [], "usage": usage}
    return b"data: %s\n\ndata: %s\n\n" % (
        json.dumps(fin, separators=(",", ":")).encode(),
        json.dumps(use, separators=(",", ":")).encode(),
    )


class _StubProtocol(asyncio.Protocol):
    def __init__(self, server: _Stub) -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.busy = False
        self.queue: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while not self.busy:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            self.busy = True
            self.server.handle(self, head.split(" ", 2)[1], body)

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def finish(self) -> None:
        self.busy = False
        if self.buf and not self.closed:
            self.data_received(b"")


class _Stub:
    def __init__(self, config: StubConfig) -> None:
        self.config = config
        self.stats = StubStats()
        self._cache: dict[tuple[bool, int, int], bytes] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._heap: list[tuple[float, int, Any, int]] = []  # (deadline perf_counter, seq, emit, token index)
        self._seq = 0
        self._wake: asyncio.Event | None = None

    def at(self, deadline: float, emit: Any, i: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, emit, i))
        if self._wake is not None:
            self._wake.set()

    async def ticker(self) -> None:
        """Runs due token writes in deadline order; sleeps on a timer when the next one is far, else polls."""
        self._wake = asyncio.Event()
        heap, clock = self._heap, time.perf_counter
        while True:
            if not heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            now = clock()
            while heap and heap[0][0] <= now:
                _, _, emit, i = heapq.heappop(heap)
                emit(i)
            if not heap:
                continue
            wait = heap[0][0] - clock()
            if self.config.precise and wait < 0.002:
                await asyncio.sleep(0)  # one loop iteration with a zero-timeout poll: microsecond precision
            elif wait > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait - 0.0015 if self.config.precise else wait)

    def handle(self, proto: _StubProtocol, path: str, body: bytes) -> None:
        cfg = self.config
        self.stats.requests += 1
        nth = self.stats.requests
        if path.startswith("/metrics") or path.startswith("/health"):
            text = b"# stub\n"
            proto.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(text), text))
            proto.finish()
            return
        if len(self.stats.first_bodies) < 16:
            self.stats.first_bodies.append(body)
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            req = {}
        chat = "chat" in path
        asked = int(req.get("max_completion_tokens") or req.get("max_tokens") or 16)
        n = cfg.tokens if cfg.tokens is not None else asked
        prompt = req.get("prompt")
        prompt_tokens = len(prompt.split()) if isinstance(prompt, str) else 1
        fault = cfg.fault if cfg.fault and nth % max(1, cfg.fault_every) == 0 else None
        if fault in ("http500", "http429"):
            status = b"500 Internal Server Error" if fault == "http500" else b"429 Too Many Requests"
            msg = b'{"error":{"message":"stub fault","code":%s}}' % status[:3]
            proto.write(
                b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (status, len(msg), msg)
            )
            proto.finish()
            return
        if fault == "hang":
            return  # never answers; the connection stays busy until the client gives up
        itl = cfg.itl_s * (20 if fault == "slow" else 1)
        if cfg.ttft_s == 0 and itl == 0 and fault is None:
            key = (chat, n, prompt_tokens)
            data = self._cache.get(key)
            if data is None:
                token = _TOKEN_CHAT if chat else _TOKEN_COMPLETION
                data = _HEAD_OK + _chunk(token * (n - 1) + _final(chat, prompt_tokens, n) + _DONE) + b"0\r\n\r\n"
                if len(self._cache) < 256:
                    self._cache[key] = data
            proto.write(data)
            self.stats.tokens_sent += n
            proto.finish()
            return
        seed = req.get("seed")
        self._stream(proto, chat, n, prompt_tokens, fault, cfg.ttft_s, itl, time.perf_counter(), seed)

    def _stream(
        self,
        proto: _StubProtocol,
        chat: bool,
        n: int,
        prompt_tokens: int,
        fault: str | None,
        ttft: float,
        itl: float,
        arrival: float,
        seed: int | None = None,
    ) -> None:
        clock = time.perf_counter
        token = _TOKEN_CHAT if chat else _TOKEN_COMPLETION
        proto.write(_HEAD_OK)
        stop_at = (n // 2 if fault in ("cut", "short") else n) - 1  # the last token comes with usage
        lateness = self.stats.write_lateness
        first_token = self.stats.first_token

        def emit(i: int) -> None:
            if proto.closed:
                return
            deadline = arrival + ttft + i * itl
            now = clock()
            if len(lateness) < 200_000:
                lateness.append(now - deadline)
            if i == 0 and len(first_token) < 200_000:
                first_token.append((seed if isinstance(seed, int) else None, arrival, now))
            if i < stop_at:
                payload = token
                if fault == "malformed" and i % 2 == 1:
                    payload = b"data: {not json at all\n\n" + token
                if fault == "error_event" and i == stop_at // 2:
                    payload = b'data: {"error":{"message":"stub in-stream error","code":500}}\n\n'
                proto.write(_chunk(payload))
                self.stats.tokens_sent += 1
                self.at(arrival + ttft + (i + 1) * itl, emit, i + 1)
                return
            if fault == "cut":
                assert proto.transport is not None
                proto.transport.close()
                return
            proto.write(_chunk(_final(chat, prompt_tokens, stop_at + 1) + _DONE) + b"0\r\n\r\n")
            proto.finish()

        self.at(arrival + ttft, emit, 0)


async def serve(config: StubConfig, host: str = "127.0.0.1", port: int = 0) -> tuple[asyncio.AbstractServer, _Stub]:
    stub = _Stub(config)
    stub.loop = asyncio.get_running_loop()
    server = await stub.loop.create_server(lambda: _StubProtocol(stub), host, port, backlog=4096)
    stub.ticker_task = stub.loop.create_task(stub.ticker())  # type: ignore[attr-defined]
    return server, stub


class StubServer:
    """The stub on a background thread (tests): ``with StubServer(StubConfig(...)) as s: s.base_url``."""

    def __init__(self, config: StubConfig | None = None) -> None:
        self.config = config or StubConfig()
        self.port = 0
        self.stub: _Stub | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stats(self) -> StubStats:
        assert self.stub is not None
        return self.stub.stats

    def _run(self) -> None:
        loop = _new_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def start() -> asyncio.AbstractServer:
            server, self.stub = await serve(self.config)
            self.port = server.sockets[0].getsockname()[1]
            return server

        server = loop.run_until_complete(start())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    def __enter__(self) -> StubServer:
        self._thread = threading.Thread(target=self._run, name="servegate-stub", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("stub server did not start within 10 s")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ttft-ms", type=float, default=0.0)
    ap.add_argument("--itl-ms", type=float, default=0.0)
    ap.add_argument("--tokens", type=int, default=None)
    ap.add_argument("--fault", choices=FAULTS, default=None)
    ap.add_argument("--fault-every", type=int, default=1)
    ap.add_argument("--precise", action="store_true", help="busy-poll near deadlines (pin the stub to its own core)")
    args = ap.parse_args(argv)
    config = StubConfig(
        args.ttft_ms / 1000, args.itl_ms / 1000, args.tokens, args.fault, args.fault_every, precise=args.precise
    )
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    server, stub = loop.run_until_complete(serve(config, port=args.port))
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)

    async def report_on_stdin_close() -> None:
        # The parent closes our stdin to stop us; before exiting we print our own write lateness (stub accuracy).
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await reader.read()
        lat = sorted(stub.stats.write_lateness)

        def p(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0.0

        print(
            f"STATS requests={stub.stats.requests} lateness_p50_ms={p(0.5):.3f} lateness_p99_ms={p(0.99):.3f}",
            flush=True,
        )
        print("FIRST_TOKEN " + json.dumps(stub.stats.first_token, separators=(",", ":")), flush=True)

    try:
        loop.run_until_complete(report_on_stdin_close())
    finally:
        server.close()
        stub.ticker_task.cancel()  # type: ignore[attr-defined]
        loop.run_until_complete(asyncio.gather(stub.ticker_task, return_exceptions=True))  # type: ignore[attr-defined]
        loop.close()


if __name__ == "__main__":
    main()
