"""Steady state: where a run's warmup ends and its cool-down begins, found in the data, and the over-saturation stop.

A closed-loop run starts with every slot's first request arriving at once (a prefill pile-up) and ends with slots
emptying one by one (the last requests run nearly alone): both edges bias the averages. Two signals bound the
steady window and the stricter one wins on each side:

- MSER-5 (White 1997, the truncation rule AIPerf uses) on per-request latency ordered by send time: batch means of
  5, truncate the head where the marginal standard error of what remains is smallest (searched over the first half);
  run on the reversed series it finds the cool-down edge.
- The in-flight ramp: the window starts when the number of requests in flight first reaches its typical
  (time-weighted median) level and ends when it last leaves it.

Latencies on the window come from requests that lived entirely inside it; throughputs count the tokens that arrived
inside it (each request's output tokens spread over its chunks), so cutting requests at the edges does not bias
them low. Over-saturation (GuideLLM's stop): an open-loop level whose queue grows for as long as it runs — the
number of requests in flight at each send and the TTFT both rise significantly with time — measures how long the
run lasted, not the server; sweeps and saturation searches stop there when asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats as sps

from servegate.config import SLO
from servegate.load.client import RunResult
from servegate.load.records import RequestRecord
from servegate.metrics import RunSummary, summarize

BATCH = 5
MSER_GAIN = 0.8  # truncate only when the marginal standard error drops by at least 20%
MIN_WINDOW_REQUESTS = 10  # fewer than this in the window: no trimming, the run is too short to tell
OVERSATURATION_P = 0.001
OVERSATURATION_RISE = 1.0  # TTFT must rise by at least its own early median across the level


def mser(values: Sequence[float], batch: int = BATCH) -> int:
    """Observations to drop from the head: MSER-``batch`` over batch means, truncation searched in the first half."""
    k = len(values) // batch
    if k < 4:
        return 0
    means = np.asarray(values[: k * batch], dtype=float).reshape(k, batch).mean(axis=1)
    scores = [float(((means[d:] - means[d:].mean()) ** 2).sum()) / (k - d) ** 2 for d in range(k // 2 + 1)]
    best = min(scores)
    # On a stationary series the statistic only grows with d (about var / (k - d)), so a minimum a few percent below
    # the untruncated value is noise: truncating then would throw data away for nothing. For the same reason the
    # earliest truncation within 5% of the minimum is taken, not a later noise dip.
    if best >= MSER_GAIN * scores[0]:
        return 0
    return next(d for d, s in enumerate(scores) if s <= 1.05 * best) * batch


def in_flight_edges(records: Sequence[RequestRecord]) -> tuple[float, float, float] | None:
    """(first time in flight reaches its typical level, last time it leaves it, that level); None without data."""
    events = sorted([(r.sent_at, 1) for r in records] + [(r.done_at, -1) for r in records])
    if len(events) < 4:
        return None
    times, counts = [], []
    n = 0
    for t, step in events:
        n += step
        times.append(t)
        counts.append(n)
    durations = np.diff(times)
    levels = np.asarray(counts[:-1], dtype=float)
    if durations.sum() <= 0:
        return None
    order = np.argsort(levels)
    cumulative = np.cumsum(durations[order])
    typical = float(levels[order][np.searchsorted(cumulative, cumulative[-1] / 2)])
    at_level = [i for i, c in enumerate(counts) if c >= typical]
    first = times[at_level[0]]
    last = times[at_level[-1] + 1] if at_level[-1] + 1 < len(times) else times[-1]
    return first, last, typical


@dataclass(frozen=True)
class Window:
    """The steady window of one run, in the run's clock, and what trimming to it removes."""

    start: float
    end: float
    run_start: float
    run_end: float
    requests_total: int
    requests_inside: int
    head_by: str  # "mser", "in-flight ramp" or "none": which signal set the start
    tail_by: str
    note: str = ""

    @property
    def head_trimmed_s(self) -> float:
        return self.start - self.run_start

    @property
    def tail_trimmed_s(self) -> float:
        return self.run_end - self.end

    def to_dict(self, applied: bool) -> dict[str, float | str | bool]:
        out: dict[str, float | str | bool] = {
            "applied": applied,
            "head_trimmed_s": self.head_trimmed_s,
            "tail_trimmed_s": self.tail_trimmed_s,
            "window_s": self.end - self.start,
            "run_s": self.run_end - self.run_start,
            "requests_total": self.requests_total,
            "requests_inside": self.requests_inside,
            "head_by": self.head_by,
            "tail_by": self.tail_by,
        }
        if self.note:
            out["note"] = self.note
        return out


def detect(run: RunResult) -> Window:
    """The steady window of a run (the whole run when it is too short to tell, with a note saying so)."""
    ok = sorted((r for r in run.records if r.success and r.e2el is not None), key=lambda r: r.sent_at)
    whole = Window(run.started_at, run.finished_at, run.started_at, run.finished_at, len(run.records),
                   len(run.records), "none", "none")
    if len(ok) < 4 * BATCH:
        return replace(whole, note=f"{len(ok)} successful requests: too few to detect warmup and cool-down")
    latencies = [r.e2el for r in ok]
    head = mser(latencies)
    tail = mser(latencies[::-1])
    mser_start = ok[head].sent_at if head else run.started_at
    kept = ok[head : len(ok) - tail] if tail else ok[head:]
    mser_end = max(r.done_at for r in kept) if tail else run.finished_at
    ramp = in_flight_edges(run.records)
    ramp_start, ramp_end = (ramp[0], ramp[1]) if ramp else (run.started_at, run.finished_at)
    start, head_by = (mser_start, "mser") if mser_start >= ramp_start else (ramp_start, "in-flight ramp")
    end, tail_by = (mser_end, "mser") if mser_end <= ramp_end else (ramp_end, "in-flight ramp")
    if start <= run.started_at:
        head_by = "none"
    if end >= run.finished_at:
        tail_by = "none"
    inside = sum(1 for r in run.records if r.sent_at >= start and r.done_at <= end)
    if end <= start or inside < MIN_WINDOW_REQUESTS:
        return replace(whole, note=f"steady window would keep {inside} requests: not trimmed")
    return Window(start, end, run.started_at, run.finished_at, len(run.records), inside, head_by, tail_by)


def summarize_window(
    run: RunResult, window: Window, percentiles: tuple[float, ...], slo: SLO | None = None
) -> RunSummary:
    """The run's summary on its steady window: latencies of requests inside it, throughputs of tokens inside it."""
    inside = [r for r in run.records if r.sent_at >= window.start and r.done_at <= window.end]
    trimmed = replace(run, records=inside, started_at=window.start, finished_at=window.end)
    summary = summarize(trimmed, percentiles, slo)
    duration = max(window.end - window.start, 1e-9)
    out_tokens = in_tokens = 0.0
    finished = 0
    for r in run.records:
        if not r.success or not r.chunk_times:
            continue
        if r.output_tokens:
            share = r.output_tokens / len(r.chunk_times)
            out_tokens += share * sum(1 for t in r.chunk_times if window.start <= t <= window.end)
        if r.prompt_tokens and window.start <= r.chunk_times[0] <= window.end:
            in_tokens += r.prompt_tokens
        if window.start <= r.done_at <= window.end:
            finished += 1
    summary.request_throughput = finished / duration
    summary.output_throughput = out_tokens / duration
    summary.total_token_throughput = (in_tokens + out_tokens) / duration
    return summary


def oversaturation(run: RunResult) -> str:
    """Why the level's queue grew without bound, or "" when it did not (see the module docstring)."""
    ok = sorted((r for r in run.records if r.success and r.ttft is not None), key=lambda r: r.sent_at)
    if len(ok) < 4 * BATCH:
        return ""
    t = np.asarray([r.sent_at - ok[0].sent_at for r in ok])
    if t[-1] <= 0:
        return ""
    ttft = np.asarray([r.ttft for r in ok])
    done = np.sort([r.done_at for r in run.records])
    sends = np.asarray([r.sent_at for r in ok])
    in_flight = np.searchsorted(np.sort([r.sent_at for r in run.records]), sends, side="right") - np.searchsorted(
        done, sends, side="right"
    )
    ttft_fit = sps.linregress(t, ttft)
    queue_fit = sps.linregress(t, in_flight) if np.ptp(in_flight) > 0 else None
    early = float(np.median(ttft[: max(BATCH, len(ttft) // 4)]))
    rise = ttft_fit.slope * t[-1]
    if (
        queue_fit is not None
        and ttft_fit.slope > 0
        and queue_fit.slope > 0
        and ttft_fit.pvalue / 2 < OVERSATURATION_P
        and queue_fit.pvalue / 2 < OVERSATURATION_P
        and rise > OVERSATURATION_RISE * early
    ):
        return (
            f"TTFT rose {rise * 1000:.0f} ms over {t[-1]:.1f} s (early median {early * 1000:.0f} ms) while requests "
            f"in flight grew by {queue_fit.slope:.2f}/s"
        )
    return ""
