"""Property tests: any byte stream, split anywhere, gives a record or a counted error, never an exception."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from servegate.load.http import _Conn
from servegate.load.records import RequestRecord
from servegate.load.sse import SSEParser

EVENTS = [
    b'data: {"choices":[{"index":0,"text":"a","finish_reason":null}],"usage":null}\n\n',
    b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n',
    b"data: [DONE]\n\n",
    b'data: {"error":{"message":"boom"}}\n\n',
    b": keep-alive\n\n",
    b"data: {broken\n\n",
    b"event: x\nid: 1\n\n",
]

pieces = st.lists(st.one_of(st.sampled_from(EVENTS), st.binary(max_size=40)), max_size=20)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in [*points, len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


@settings(max_examples=300, deadline=None)
@given(pieces, st.lists(st.integers(min_value=0, max_value=10_000), max_size=8), st.booleans())
def test_parser_never_raises_and_splitting_does_not_matter(parts: list[bytes], cuts: list[int], text: bool) -> None:
    data = b"".join(parts)
    whole = SSEParser(collect_text=text)
    whole.feed(data, 1.0)
    whole.close()
    chunked = SSEParser(collect_text=text)
    for piece in split(data, cuts):
        chunked.feed(piece, 1.0)
    chunked.close()
    a, b = whole.state, chunked.state
    assert (len(a.chunk_times), a.usage_completion_tokens, a.done, a.malformed, a.error_message) == (
        len(b.chunk_times),
        b.usage_completion_tokens,
        b.done,
        b.malformed,
        b.error_message,
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=400), max_size=6), st.booleans())
def test_http_framing_never_raises(body: bytes, cuts: list[int], lose: bool) -> None:
    """Arbitrary bytes as an HTTP response: the request ends with a status or a ResponseError, nothing else."""

    async def go() -> None:
        conn = _Conn()
        parser = SSEParser()
        fut = conn.start(b"GET / HTTP/1.1\r\n\r\n", parser.feed)
        for piece in split(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + body, cuts):
            conn.received(piece, 1.0)
        if lose or not fut.done():
            conn.closed(None)
        assert fut.done()
        exc = fut.exception()
        assert exc is None or type(exc).__name__ == "ResponseError"
        record = RequestRecord(0, 1, 1, 0.0)
        record.chunk_times = parser.state.chunk_times
        assert record.ttft is None or record.ttft >= -1e9

    asyncio.run(go())


TOKEN = EVENTS[0]


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=40), st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_coalesced_reads_give_one_itl_per_event_summing_to_the_stream(events: int, cuts: list[int]) -> None:
    # events written 10 ms apart, read back split anywhere (reads stamped 10 ms apart): however the bytes are
    # grouped, ITL has one value per event after the first, none negative, summing to last minus first event
    parser = SSEParser()
    for k, piece in enumerate(split(TOKEN * events, cuts)):
        parser.feed(piece, 0.01 * k)
    times = parser.state.chunk_times
    assert len(times) == events
    itls = RequestRecord(0, 1, events, 0.0, chunk_times=times).itls
    assert len(itls) == events - 1
    assert all(gap >= 0 for gap in itls)
    assert abs(sum(itls) - (times[-1] - times[0])) < 1e-9
