"""Per-request records: the raw timestamps a run produces, from which every metric is computed afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# How a request can end. "ok" is the only success; "short" is the validity failure of design.md: the server said
# 200 but produced fewer tokens than asked while ignore_eos was set.
Outcome = Literal["ok", "short", "http_error", "timeout", "cut_stream", "malformed", "connect_error", "stream_error"]


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
        t = self.chunk_times
        return [t[i] - t[i - 1] for i in range(1, len(t))]

    @property
    def tpot(self) -> float | None:
        """(E2EL - TTFT) / (output tokens - 1); undefined for one-token outputs."""
        if not self.chunk_times or not self.output_tokens or self.output_tokens < 2:
            return None
        return (self.chunk_times[-1] - self.chunk_times[0]) / (self.output_tokens - 1)
