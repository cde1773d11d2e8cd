"""One RunSummary per server start, computed from per-request records with ``vllm bench serve``'s definitions.

- TTFT: send -> first streamed chunk that carries choices.
- ITL: gaps between consecutive such chunks, pooled over all requests of the run.
- TPOT: per request, (E2EL - TTFT) / (output tokens - 1), output tokens from the usage event.
- E2EL: send -> last chunk that carries choices.
- Throughputs: totals over the run's wall time (first send to last completion); only successful requests count.
ITL spreads the time between two network reads over the events that the later read brought
(``servegate.load.records.inter_token_latencies``); with one event per read it is vLLM's definition, and with
request_style "vllm-bench" it is vLLM's definition always (coalesced events give gaps of ~0).
Percentiles are numpy's default (linear), as in vLLM. A request that got fewer tokens than asked with ignore_eos is
not a success (validity), and neither is any error; success rate counts both. A metric whose value is not finite or
not positive is named in ``RunSummary.unusable_metrics`` with the reason, so no consumer drops it silently.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from servegate.config import SLO
from servegate.load.client import RunResult

Direction = Literal["lower", "higher"]
LATENCIES = ("ttft", "itl", "tpot", "e2el")
# Measured by the server (/metrics deltas) or the power meter rather than the client, yet gateable like the rest.
SERVER_SIDE_METRICS = ("prefix_cache_hit_rate", "spec_acceptance_rate", "spec_mean_acceptance_length",
                       "tokens_per_joule")


def direction_of(metric: str) -> Direction:
    """Latencies (``*_ms``) and failure shares are lower-is-better; throughputs and rates higher-is-better."""
    if metric.endswith("_ms") or metric.endswith("_s") or metric in {"error_rate"}:
        return "lower"
    return "higher"


@dataclass
class Distribution:
    mean: float
    median: float
    std: float
    percentiles: dict[str, float]  # "p90" -> value
    count: int

    @classmethod
    def of(cls, values_s: list[float], percentiles: tuple[float, ...]) -> Distribution:
        if not values_s:
            nan = float("nan")
            return cls(nan, nan, nan, {_pname(p): nan for p in percentiles}, 0)
        with np.errstate(all="ignore"):  # an inf or a huge value gives inf/nan statistics, never a warning or crash
            ms = np.asarray(values_s, dtype=float) * 1000.0
            return cls(
                float(ms.mean()),
                float(np.median(ms)),
                float(ms.std()),
                {_pname(p): float(np.percentile(ms, p)) for p in percentiles},
                int(ms.size),
            )


def _pname(p: float) -> str:
    return f"p{p:g}".replace(".", "_")


@dataclass
class RunSummary:
    """Everything one measured run says, per-request samples already reduced."""

    num_requests: int
    completed: int
    success_rate: float
    outcomes: dict[str, int]
    duration_s: float
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    goodput: float | None
    ttft: Distribution
    itl: Distribution
    tpot: Distribution
    e2el: Distribution
    max_send_lag_ms: float
    max_loop_lag_ms: float
    stopped_early: str | None = None
    first_errors: list[str] = field(default_factory=list)
    server_metrics: dict[str, float] = field(default_factory=dict)  # servegate.load.server_metrics keys
    # --- the client's self-check (servegate.load.selfcheck): is the client what limits these numbers? ---
    send_lag_p99_ms: float = 0.0  # how late requests left against their schedule (or after a slot freed)
    loop_lag_p99_ms: float = 0.0  # event-loop wake-up lateness during the run
    client_ceiling_rps: float | None = None  # req/s this client reached against the instant stub, same shape
    client_bound: bool = False  # CLIENT-BOUND: numbers may measure the client, not the server
    client_bound_reason: str = ""
    http_statuses: dict[str, int] = field(default_factory=dict)  # non-200 status -> count
    # flat() metric -> why its value cannot be compared as a ratio ("not finite (nan)", "zero", ...)
    unusable_metrics: dict[str, str] = field(default_factory=dict)
    steady: dict[str, Any] = field(default_factory=dict)  # servegate.steady_state.Window: what trimming removes
    oversaturation: str = ""  # why the level's queue grew without bound ("" when it did not)
    energy: dict[str, Any] = field(default_factory=dict)  # servegate.energy: power and joules, or why not measured

    def flat(self) -> dict[str, float]:
        """The scalar metrics that statistics and baselines work on, named ``<metric>_<stat>_ms`` or plainly."""
        out: dict[str, float] = {
            "request_throughput": self.request_throughput,
            "output_throughput": self.output_throughput,
            "total_token_throughput": self.total_token_throughput,
            "success_rate": self.success_rate,
        }
        if self.goodput is not None:
            out["goodput"] = self.goodput
        for name in LATENCIES:
            dist: Distribution = getattr(self, name)
            out[f"{name}_mean_ms"] = dist.mean
            out[f"{name}_median_ms"] = dist.median
            for pname, value in dist.percentiles.items():
                out[f"{name}_{pname}_ms"] = value
        for key in SERVER_SIDE_METRICS:  # the server's own counters and the power meter, when they were measured
            source = self.energy if key == "tokens_per_joule" else self.server_metrics
            if isinstance(source.get(key), (int, float)):
                out[key] = float(source[key])
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    run: RunResult, percentiles: tuple[float, ...] = (50.0, 90.0, 99.0), slo: SLO | None = None
) -> RunSummary:
    records = run.records
    ok = [r for r in records if r.success]
    duration = max(run.duration_s, 1e-9)
    ttfts = [r.ttft for r in ok if r.ttft is not None]
    tpots = [r.tpot for r in ok if r.tpot is not None]
    e2els = [r.e2el for r in ok if r.e2el is not None]
    itls = [gap for r in ok for gap in r.itls]
    in_tokens = sum(r.prompt_tokens or 0 for r in ok)
    out_tokens = sum(r.output_tokens or 0 for r in ok)
    errors = [f"#{r.index} {r.outcome}: {r.error}" for r in records if not r.success and r.error]
    summary = RunSummary(
        num_requests=len(records),
        completed=len(ok),
        success_rate=len(ok) / len(records) if records else 0.0,
        outcomes=dict(Counter(r.outcome for r in records)),
        duration_s=run.duration_s,
        total_input_tokens=in_tokens,
        total_output_tokens=out_tokens,
        request_throughput=len(ok) / duration,
        output_throughput=out_tokens / duration,
        total_token_throughput=(in_tokens + out_tokens) / duration,
        goodput=_goodput(ok, slo, duration),
        ttft=Distribution.of(ttfts, percentiles),
        itl=Distribution.of(itls, percentiles),
        tpot=Distribution.of(tpots, percentiles),
        e2el=Distribution.of(e2els, percentiles),
        max_send_lag_ms=max((r.send_lag for r in records), default=0.0) * 1000.0,
        max_loop_lag_ms=run.max_loop_lag_s * 1000.0,
        stopped_early=run.stopped_early,
        first_errors=errors[:5],
        send_lag_p99_ms=float(np.percentile([r.send_lag for r in records], 99)) * 1000.0 if records else 0.0,
        loop_lag_p99_ms=run.loop_lag_p99_s * 1000.0,
        http_statuses=dict(Counter(str(r.http_status) for r in records if r.http_status not in (None, 200))),
    )
    summary.unusable_metrics = unusable_metrics(summary.flat())
    return summary


def unusable_metrics(values: Mapping[str, float]) -> dict[str, str]:
    """Each metric whose value cannot enter a ratio or a log (not finite, zero, negative), with the reason.

    Such values are real outcomes (no successful request gives NaN latencies and zero throughput; a stream whose
    tokens all came in one read gives ITL 0), but a comparison of them would be meaningless or crash, so they are
    listed by name for the report and the gate instead of being dropped.
    """
    out: dict[str, str] = {}
    for name, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            out[name] = f"not a number ({type(value).__name__})"
        elif not math.isfinite(value):
            out[name] = f"not finite ({value})"
        elif value == 0:
            out[name] = "zero"
        elif value < 0:
            out[name] = f"negative ({value:g})"
    return out


def _goodput(ok: list, slo: SLO | None, duration: float) -> float | None:
    """Requests/s that met every SLO given (``vllm bench serve --goodput`` semantics), None without SLOs."""
    if slo is None or (slo.ttft_ms is None and slo.tpot_ms is None and slo.e2el_ms is None):
        return None
    good = 0
    for r in ok:
        checks = [
            (slo.ttft_ms, r.ttft),
            (slo.tpot_ms, r.tpot),
            (slo.e2el_ms, r.e2el),
        ]
        if all(limit is None or (value is not None and value * 1000.0 <= limit) for limit, value in checks):
            good += 1
    return good / duration
