"""A minimal HTTP/1.1 client on a raw asyncio protocol: the hot path of the load generator.

Why not aiohttp: on one core aiohttp's per-request machinery (request/response objects, stream readers, header
multidicts) caps a streaming client at about 1,400 requests/s (issue 3's table), below what a fast server answers.
Here a request is one prebuilt bytes write, the response head is parsed once, chunked framing is undone on bytes,
and each network read is timestamped on arrival and handed straight to the SSE parser. Keep-alive connections are
pooled (one pool per run). Plain ``http://`` only; ``https://`` falls back to aiohttp in ``client.py``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

Feed = Callable[[bytes, float], None]

_HEAD, _CHUNK_SIZE, _CHUNK_DATA, _LENGTH, _UNTIL_CLOSE, _TRAILER, _DONE = range(7)


class ResponseError(Exception):
    """The connection ended before the response did; ``got_body`` says whether any body bytes had arrived."""

    def __init__(self, message: str, got_body: bool) -> None:
        super().__init__(message)
        self.got_body = got_body


class _Conn(asyncio.Protocol):
    __slots__ = (
        "body_seen",
        "buf",
        "done",
        "error_body",
        "feed",
        "finished_at",
        "keep_alive",
        "lost",
        "need",
        "state",
        "status",
        "transport",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[int] | None = None
        self.feed: Feed | None = None
        self.buf = b""
        self.state = _DONE
        self.status = 0
        self.need = 0
        self.keep_alive = True
        self.lost = False
        self.body_seen = False
        self.error_body = b""
        self.finished_at = 0.0  # perf_counter when the last byte of the response arrived

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        done = self.done
        if done is None or done.done():
            return
        if self.state == _UNTIL_CLOSE:
            self.finished_at = time.perf_counter()
            done.set_result(self.status)
        else:
            reason = f"connection closed by server{f': {exc}' if exc else ''}"
            done.set_exception(ResponseError(reason, self.body_seen))

    def start(self, request: bytes, feed: Feed) -> asyncio.Future[int]:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        self.feed = feed
        self.buf = b""
        self.state = _HEAD
        self.body_seen = False
        self.error_body = b""
        assert self.transport is not None
        self.transport.write(request)
        return self.done

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self.state == _DONE:
            return  # bytes after the end of a response: ignored (the connection is then not reused)
        buf = self.buf + data if self.buf else data
        out: list[bytes] = []
        pos = 0
        n = len(buf)
        state = self.state
        while pos < n:
            if state == _CHUNK_SIZE:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    break
                try:
                    size = int(buf[pos:nl].split(b";", 1)[0], 16)
                except ValueError:
                    self._fail("bad chunk size")
                    return
                pos = nl + 2
                if size == 0:
                    state = _TRAILER
                else:
                    self.need = size + 2  # data and its CRLF
                    state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                take = min(self.need, n - pos)
                piece = buf[pos : pos + take]
                pos += take
                self.need -= take
                if self.need < 2:  # some of the CRLF was in this piece
                    piece = piece[: len(piece) - (2 - self.need)]
                    if self.need == 0:
                        state = _CHUNK_SIZE
                if piece:
                    out.append(piece)
            elif state == _LENGTH:
                take = min(self.need, n - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self.need -= take
                if self.need == 0:
                    state = _DONE
                    break
            elif state == _UNTIL_CLOSE:
                out.append(buf[pos:])
                pos = n
            elif state == _TRAILER:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    break
                line, pos = buf[pos:nl], nl + 2
                if not line:
                    state = _DONE
                    break
            elif state == _HEAD:
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    if n - pos > 65536:
                        self._fail("response head larger than 64 KiB")
                        return
                    break
                state = self._head(buf[pos:end])
                if state < 0:
                    return
                pos = end + 4
            else:
                break
        self.buf = buf[pos:] if pos < n and state != _DONE else b""
        self.state = state
        if out:
            self.body_seen = True
            payload = out[0] if len(out) == 1 else b"".join(out)
            if self.status == 200:
                assert self.feed is not None
                self.feed(payload, now)
            elif len(self.error_body) < 1000:
                self.error_body += payload[:1000]
        if state == _DONE and self.done is not None and not self.done.done():
            self.finished_at = now
            if pos < n:
                self.keep_alive = False
            self.done.set_result(self.status)

    def _head(self, head: bytes) -> int:
        lines = head.split(b"\r\n")
        try:
            self.status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError):
            self._fail(f"bad status line {lines[0][:80]!r}")
            return -1
        chunked = False
        length: int | None = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    self._fail("bad content-length")
                    return -1
            elif name == b"connection" and b"close" in value.lower():
                self.keep_alive = False
        if chunked:
            return _CHUNK_SIZE
        if length is not None:
            self.need = length
            return _LENGTH if length > 0 else _DONE
        self.keep_alive = False
        return _UNTIL_CLOSE

    def _fail(self, reason: str) -> None:
        self.state = _DONE
        self.keep_alive = False
        if self.done is not None and not self.done.done():
            self.done.set_exception(ResponseError(f"malformed HTTP response: {reason}", self.body_seen))
        if self.transport is not None:
            self.transport.close()


class HTTPPool:
    """Keep-alive connections to one ``http://host:port``; at most as many as requests in flight."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http":
            raise ValueError(f"HTTPPool speaks plain http only, got {base_url!r}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.host_header = f"{self.host}:{self.port}".encode()
        self._idle: list[_Conn] = []

    def request_bytes(self, path: str, body: bytes) -> bytes:
        """The full request, built once per request before its send time (nothing left to do when it is due)."""
        return (
            b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\naccept: text/event-stream\r\n"
            b"content-length: %d\r\n\r\n%s" % ((self.prefix + path).encode(), self.host_header, len(body), body)
        )

    async def _conn(self) -> _Conn:
        while self._idle:
            conn = self._idle.pop()
            if not conn.lost and conn.transport is not None and not conn.transport.is_closing():
                return conn
        _, conn = await asyncio.get_running_loop().create_connection(_Conn, self.host, self.port)
        return conn

    async def prewarm(self, count: int) -> int:
        """Open ``count`` keep-alive connections before the run starts, so the first wave's TTFT does not include
        TCP setup (at 512 streams that queue alone added ~70 ms to the first requests). Returns how many opened."""
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(
            *(loop.create_connection(_Conn, self.host, self.port) for _ in range(count)), return_exceptions=True
        )
        opened = [conn for res in results if not isinstance(res, BaseException) for conn in [res[1]]]
        self._idle.extend(opened)
        return len(opened)

    async def connect(self) -> _Conn:
        """A ready connection (opened now if none is idle): call before stamping the send time."""
        return await self._conn()

    async def send(self, conn: _Conn, request: bytes, feed: Feed) -> tuple[int, bytes]:
        """Send on ``conn`` and wait for the whole response; returns (status, first bytes of a non-200 body)."""
        try:
            status = await conn.start(request, feed)
        except BaseException:
            conn.keep_alive = False
            if conn.transport is not None:
                conn.transport.close()
            raise
        if conn.keep_alive and not conn.lost:
            self._idle.append(conn)
        elif conn.transport is not None:
            conn.transport.close()
        return status, conn.error_body

    def close(self) -> None:
        for conn in self._idle:
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()
