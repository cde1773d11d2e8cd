"""The SSE parser on hand-made streams: chunk boundaries anywhere, usage, errors, malformed events."""

from __future__ import annotations

import json

import pytest

from servegate.load.sse import SSEParser


def event(obj: object) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def token(text: str, finish: str | None = None) -> bytes:
    return event({"id": "c", "choices": [{"index": 0, "text": text, "finish_reason": finish}]})


USAGE = event({"id": "c", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
STREAM = token("a") + token("") + token("c", "length") + USAGE + b"data: [DONE]\n\n"


@pytest.mark.parametrize("split", [1, 2, 3, 7, 50, 10_000])
def test_any_chunking_gives_the_same_result(split: int) -> None:
    p = SSEParser(collect_text=True)
    for i in range(0, len(STREAM), split):
        p.feed(STREAM[i : i + split], float(i))
    p.close()
    st = p.state
    assert len(st.chunk_times) == 3  # every chunk with choices counts, as in vllm bench serve (even empty text)
    assert st.usage_prompt_tokens == 7 and st.usage_completion_tokens == 3
    assert st.done and st.malformed == 0
    assert "".join(st.text_parts) == "ac"
    assert st.finish_reason == "length"
    assert st.chunk_times == sorted(st.chunk_times)


def test_timestamps_are_arrival_times_of_the_completing_chunk() -> None:
    p = SSEParser()
    first, second = token("a"), token("b")
    p.feed(first[:10], 1.0)
    p.feed(first[10:] + second[:5], 2.0)
    p.feed(second[5:], 3.0)
    assert p.state.chunk_times == [2.0, 3.0]


def test_malformed_events_are_counted_not_raised() -> None:
    p = SSEParser()
    p.feed(b"data: {not json}\n\ndata: [1,2]\n\ndata: hello\n\n: comment\n\nevent: x\n\n", 0.0)
    p.feed(token("ok"), 1.0)
    p.close()
    assert p.state.malformed == 3
    assert len(p.state.chunk_times) == 1


def test_in_stream_error_is_reported() -> None:
    p = SSEParser()
    p.feed(event({"error": {"message": "boom", "code": 500}}), 0.0)
    assert p.state.error_message == "boom"


def test_chat_deltas_collect_text() -> None:
    p = SSEParser(collect_text=True)
    p.feed(event({"choices": [{"delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}), 0.0)
    p.feed(event({"choices": [{"delta": {"content": "hi"}, "finish_reason": None}]}), 1.0)
    assert "".join(p.state.text_parts) == "hi"
    assert p.state.chunk_times == [0.0, 1.0]


def test_trailing_event_without_newline() -> None:
    p = SSEParser()
    p.feed(token("a") + USAGE.rstrip(b"\n"), 5.0)
    p.close()
    assert p.state.usage_completion_tokens == 3
