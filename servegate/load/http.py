"""A minimal HTTP/1.1 client on raw non-blocking sockets: the hot path of the load generator.

Why not aiohttp: on one core aiohttp's per-request machinery (request/response objects, stream readers, header
multidicts) caps a streaming client at about 1,400 requests/s (issue 3's table), below what a fast server answers.
Here a request is one prebuilt bytes write, the response head is parsed once, chunked framing is undone on bytes,
and each network read goes straight to the SSE parser. Keep-alive connections are pooled (one pool per run). Plain
``http://`` only; ``https://`` falls back to aiohttp in ``client.py``.

Why not an asyncio transport: a transport hands over bytes when the event loop gets round to them, and a loop busy
with other streams (or a process the OS preempted) gets round late, so every timestamp taken then is late by the
loop's lag. Reading the socket ourselves with ``recvmsg`` brings the kernel's receive timestamp (``SO_TIMESTAMPNS``,
taken when the last segment of the read reached the socket): the events of a read are stamped with their arrival on
the host, whatever the loop was doing. Where the kernel gives no timestamp, the read's own clock reading is used.
"""

from __future__ import annotations

import asyncio
import platform
import socket
import struct
import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit

Feed = Callable[[bytes, float], None]

_HEAD, _CHUNK_SIZE, _CHUNK_DATA, _LENGTH, _UNTIL_CLOSE, _TRAILER, _DONE = range(7)

# SO_TIMESTAMPNS (= SCM_TIMESTAMPNS) is 35 in Linux's generic socket ABI; the socket module does not name it.
# Other architectures number it differently, so only these ask for it.
_SO_TIMESTAMPNS = 35 if sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64") else None
_TIMESPEC = struct.Struct("@qq")  # struct timespec on a 64-bit Linux
_ANC_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)
_READ_SIZE = 256 * 1024


def arrival_time(ancillary: list[tuple[int, int, bytes]], now: float) -> float:
    """The perf_counter time at which a read's data reached the socket: the kernel's receive timestamp (wall clock)
    moved onto perf_counter's clock, or ``now`` (the read's own time) when there is none. Never later than ``now``."""
    for level, kind, data in ancillary:
        if kind == _SO_TIMESTAMPNS and level == socket.SOL_SOCKET and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            offset_ns = time.time_ns() - time.perf_counter_ns()  # wall clock minus perf_counter, now
            stamped = (sec * 1_000_000_000 + nsec - offset_ns) * 1e-9
            return stamped if stamped < now else now
    return now


class ResponseError(Exception):
    """The connection ended before the response did; ``got_body`` says whether any body bytes had arrived."""

    def __init__(self, message: str, got_body: bool) -> None:
        super().__init__(message)
        self.got_body = got_body


class _Conn:
    """One keep-alive connection: a non-blocking socket watched by an event-loop reader, and the response parser.

    ``received`` and ``closed`` are the parser's inputs (the reader calls them; tests may too)."""

    __slots__ = (
        "body_seen",
        "buf",
        "done",
        "error_body",
        "feed",
        "finished_at",
        "keep_alive",
        "loop",
        "lost",
        "need",
        "sock",
        "state",
        "status",
    )

    def __init__(self, sock: socket.socket | None = None, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.sock = sock
        self.loop = loop
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
        if sock is not None and loop is not None:
            loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        assert self.sock is not None
        try:
            data, ancillary, _, _ = self.sock.recvmsg(_READ_SIZE, _ANC_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.close()
            self.closed(exc)
            return
        now = time.perf_counter()
        if not data:
            self.close()
            self.closed(None)
            return
        self.received(data, arrival_time(ancillary, now) if ancillary else now)

    def close(self) -> None:
        self.lost = True
        sock, self.sock = self.sock, None
        if sock is not None:
            if self.loop is not None and not self.loop.is_closed():
                self.loop.remove_reader(sock.fileno())
            sock.close()

    def closed(self, exc: Exception | None) -> None:
        """The peer closed the connection (or it failed): ends a response that lasts until close, fails any other."""
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
        """Write the request (the rest in the background if the socket takes only part) and return the future
        that the response's end resolves."""
        loop = self.loop or asyncio.get_running_loop()
        self.done = done = loop.create_future()
        self.feed = feed
        self.buf = b""
        self.state = _HEAD
        self.body_seen = False
        self.error_body = b""
        if self.sock is None:
            return done
        try:
            sent = self.sock.send(request)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent < len(request):
            rest = loop.create_task(loop.sock_sendall(self.sock, request[sent:]))
            rest.add_done_callback(self._sent)
        return done

    def _sent(self, task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is not None and self.done is not None and not self.done.done():
            self.done.set_exception(exc)

    def received(self, data: bytes, now: float) -> None:
        """Bytes that arrived at ``now`` (perf_counter)."""
        if self.state == _DONE:
            self.keep_alive = False  # bytes after the end of a response: ignored, and the connection not reused
            return
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
        self.close()


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
        self._addr: tuple | None = None  # getaddrinfo's first answer, looked up once

    def request_bytes(self, path: str, body: bytes) -> bytes:
        """The full request, built once per request before its send time (nothing left to do when it is due)."""
        return (
            b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\naccept: text/event-stream\r\n"
            b"content-length: %d\r\n\r\n%s" % ((self.prefix + path).encode(), self.host_header, len(body), body)
        )

    async def _resolve(self) -> tuple:
        if self._addr is None:
            infos = await asyncio.get_running_loop().getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            self._addr = infos[0]
        return self._addr

    async def _open(self) -> _Conn:
        loop = asyncio.get_running_loop()
        family, kind, proto, _, addr = await self._resolve()
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if _SO_TIMESTAMPNS is not None:
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            await loop.sock_connect(sock, addr)
        except BaseException:
            sock.close()
            raise
        return _Conn(sock, loop)

    async def _conn(self) -> _Conn:
        while self._idle:
            conn = self._idle.pop()
            if not conn.lost and conn.keep_alive:
                return conn
            conn.close()
        return await self._open()

    async def prewarm(self, count: int) -> int:
        """Open ``count`` keep-alive connections before the run starts, so the first wave's TTFT does not include
        TCP setup (at 512 streams that queue alone added ~70 ms to the first requests). Returns how many opened."""
        await self._resolve()
        results = await asyncio.gather(*(self._open() for _ in range(count)), return_exceptions=True)
        opened = [conn for conn in results if isinstance(conn, _Conn)]
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
            conn.close()
            raise
        if conn.keep_alive and not conn.lost:
            self._idle.append(conn)
        else:
            conn.close()
        return status, conn.error_body

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
