"""Per-request records: the raw timestamps a run produces, from which every metric is computed afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# How a request can end. "ok" is the only success; "short" is the validity failure of design.md: the server said
# 200 but produced fewer tokens than asked while ignore_eos was set.
Outcome = Literal["ok", "short", "http_error", "timeout", "cut_stream", "malformed", "connect_error", "stream_error"]
# How events that arrived in one network read become inter-token latencies (see ``inter_token_latencies``):
# "spread" shares the read's gap among them; "per-event" gives each its own gap, 0 after the first, which is
# ``vllm bench serve``'s number to within its parsing time (request_style "vllm-bench").
ITLRule = Literal["spread", "per-event"]


@dataclass
class RequestRecord:
    index: int
    prompt_tokens_asked: int
    output_tokens_asked: int
    scheduled_at: float  # perf_counter seconds when the profile wanted it sent
    sent_at: float = 0.0  # perf_counter seconds when it was actually sent
    chunk_times: list[float] = field(default_factory=list)
    done_at: float = 0.0  # end of body (or of the failure)
    prompt_tokens: int | None = None  # from the usage event
    output_tokens: int | None = None  # from the usage event
    outcome: Outcome = "ok"
    http_status: int | None = None
    error: str | None = None
    text: str | None = None
    malformed_events: int = 0
    itl_rule: ITLRule = "spread"

    @property
    def success(self) -> bool:
        return self.outcome == "ok"

    @property
    def send_lag(self) -> float:
        """How late the request left against its schedule (client-side queueing)."""
        return max(0.0, self.sent_at - self.scheduled_at)

    @property
    def ttft(self) -> float | None:
        return self.chunk_times[0] - self.sent_at if self.chunk_times else None

    @property
    def e2el(self) -> float | None:
        """As ``vllm bench serve``: send to the last chunk that carried choices."""
        return self.chunk_times[-1] - self.sent_at if self.chunk_times else None

    @property
    def itls(self) -> list[float]:
        """Inter-token latencies, one per streamed event after the first, by this record's ``itl_rule``."""
        t = self.chunk_times
        if self.itl_rule == "per-event":
            return [t[i] - t[i - 1] for i in range(1, len(t))]
        return inter_token_latencies(t)

    @property
    def tpot(self) -> float | None:
        """(E2EL - TTFT) / (output tokens - 1); undefined for one-token outputs."""
        if not self.chunk_times or not self.output_tokens or self.output_tokens < 2:
            return None
        return (self.chunk_times[-1] - self.chunk_times[0]) / (self.output_tokens - 1)


def inter_token_latencies(event_times: list[float]) -> list[float]:
    """One gap per event after the first; events that arrived in the same network read share that read's gap.

    ``event_times`` holds, per streamed event that carried choices, the arrival time of the read that completed it,
    so events coalesced into one read carry the same time. They did arrive together, but a gap of 0 for all but one
    of them is an artefact of where the bytes were split, not of the server: on a loaded host most events arrive
    two or three to a read, and a pooled ITL p50 of 0 says nothing. ``vllm bench serve`` timestamps each event when
    it parses it, which gives those events gaps of a few microseconds: its own parsing time, just as degenerate.

    Here the time since the previous read is divided evenly among the events of this read, so k events that took
    ``d`` seconds to arrive count as k gaps of ``d / k``. The definition is identical to vLLM's when every event has
    its own read (the usual case at low load), the gaps still sum to last event minus first event (so mean ITL,
    TPOT and E2EL stay consistent), and the count is always events - 1. Extra events in the first read are spread
    over the next read's gap; a stream that arrived in a single read has nothing to spread and gives gaps of 0.
    TPOT (per token, from the usage count) does not depend on how events are split at all, which is why it is the
    steadier decode metric to gate on.
    """
    out: list[float] = []
    if not event_times:
        return out
    previous = event_times[0]
    pending = 0  # events not yet given a gap: the first read's extras, then each read's own events
    for i in range(1, len(event_times)):
        pending += 1
        t = event_times[i]
        last_of_read = i + 1 == len(event_times) or event_times[i + 1] != t
        if last_of_read and t != previous:
            out.extend([(t - previous) / pending] * pending)
            pending = 0
            previous = t
    out.extend([0.0] * pending)
    return out
