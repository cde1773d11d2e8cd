"""A server-sent-events parser for OpenAI-style streams that works on raw bytes and never raises.

Each ``data:`` event is timestamped with the arrival time of the network read that completed it, so events that
came in one read share one time. ``vllm bench serve`` instead stamps each event when its parser reaches it, which
differs from ours by microseconds of parsing; how coalesced events become inter-token latencies is decided in
``servegate.load.records.inter_token_latencies``. JSON is decoded only where a number is needed (the usage event)
or where the caller wants the text; everything else is classified from bytes, so parsing stays cheap at thousands
of events per second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

DONE = b"[DONE]"


@dataclass
class StreamState:
    """What one response stream has told us so far."""

    chunk_times: list[float] = field(default_factory=list)  # arrival of each event with a non-empty choices list
    usage_prompt_tokens: int | None = None
    usage_completion_tokens: int | None = None
    finish_reason: str | None = None
    text_parts: list[str] = field(default_factory=list)
    done: bool = False
    malformed: int = 0
    error_message: str | None = None  # an {"error": ...} event sent in-stream


class SSEParser:
    """Feed bytes as they arrive; the parser keeps the partial line between calls."""

    __slots__ = ("_buf", "collect_text", "state")

    def __init__(self, collect_text: bool = False) -> None:
        self._buf = b""
        self.collect_text = collect_text
        self.state = StreamState()

    def feed(self, chunk: bytes, now: float) -> None:
        buf = self._buf + chunk if self._buf else chunk
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            if line.startswith(b"data:"):
                self._event(line[5:].strip(), now)
            # blank lines, comments (":"), "event:", "id:", "retry:" carry nothing we measure
        self._buf = buf[start:]

    def close(self) -> None:
        """End of body: a trailing event without its newline still counts."""
        rest = self._buf.strip()
        self._buf = b""
        if rest.startswith(b"data:"):
            self._event(rest[5:].strip(), self.state.chunk_times[-1] if self.state.chunk_times else 0.0)
        elif rest:
            self.state.malformed += 1

    def _event(self, data: bytes, now: float) -> None:
        st = self.state
        if data == DONE:
            st.done = True
            return
        if not (data.startswith(b"{") and data.endswith(b"}")):
            st.malformed += 1
            return
        has_usage = b'"usage":{' in data or b'"usage": {' in data
        has_choices = b'"choices":[{' in data or b'"choices": [{' in data
        if not (has_usage or has_choices or self.collect_text) and b'"error"' not in data:
            st.malformed += 1
            return
        if has_choices and not has_usage and not self.collect_text and b'"finish_reason":null' in data:
            st.chunk_times.append(now)  # the hot path: a token chunk, no JSON decode needed
            return
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            st.malformed += 1
            return
        if not isinstance(obj, dict):
            st.malformed += 1
            return
        self._decoded(obj, now)

    def _decoded(self, obj: dict, now: float) -> None:
        st = self.state
        if "error" in obj and "choices" not in obj:
            err = obj["error"]
            st.error_message = str(err.get("message", err) if isinstance(err, dict) else err)[:500]
            return
        choices = obj.get("choices")
        if isinstance(choices, list) and choices:
            st.chunk_times.append(now)
            first = choices[0] if isinstance(choices[0], dict) else {}
            if self.collect_text:
                text = first.get("text")
                if text is None and isinstance(first.get("delta"), dict):
                    text = first["delta"].get("content")
                if isinstance(text, str):
                    st.text_parts.append(text)
            if first.get("finish_reason"):
                st.finish_reason = str(first["finish_reason"])
        usage = obj.get("usage")
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(prompt, int):
                st.usage_prompt_tokens = prompt
            if isinstance(completion, int):
                st.usage_completion_tokens = completion
