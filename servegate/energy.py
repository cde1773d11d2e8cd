"""Energy per load level: GPU board power sampled with amd-smi / nvidia-smi while the level runs.

Power is summed over the GPUs at each tick (the server's draw is the node's draw on a dedicated runner), averaged
over the ticks, and times the level's wall time gives joules; joules per output token and its inverse, tokens per
joule (gated, higher is better), follow. The peak is the largest per-tick sum. On a CPU target, or when the tool
gives no power readings, the result says "not measured" and why: a missing number never reads as zero watts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from servegate.hardware.detect import HardwareInfo, detected
from servegate.hardware.telemetry import TelemetrySample, TelemetrySampler

PERIOD_S = 0.5


def power_per_tick(samples: list[TelemetrySample]) -> list[tuple[float, float]]:
    """(time, watts summed over devices) per tick; a tick where any device lacks a reading is dropped."""
    ticks: dict[float, list[float | None]] = {}
    for s in samples:
        if s.device >= 0:
            ticks.setdefault(s.t_s, []).append(s.power_w)
    return [(t, sum(w for w in ws if w is not None)) for t, ws in sorted(ticks.items()) if None not in ws]


def energy_result(samples: list[TelemetrySample], seconds: float, output_tokens: int, tool: str) -> dict[str, Any]:
    ticks = power_per_tick(samples)
    if not ticks:
        return {"status": f"not measured: {tool} gave no power readings ({len(samples)} samples)"}
    watts = [w for _, w in ticks]
    mean_w = sum(watts) / len(watts)
    joules = mean_w * seconds
    devices = len({s.device for s in samples if s.device >= 0})
    out: dict[str, Any] = {
        "status": "measured",
        "tool": tool,
        "devices": devices,
        "ticks": len(ticks),
        "power_mean_w": mean_w,
        "power_peak_w": max(watts),
        "energy_j": joules,
    }
    if output_tokens > 0 and joules > 0:
        out["joules_per_output_token"] = joules / output_tokens
        out["tokens_per_joule"] = output_tokens / joules
    return out


@dataclass
class EnergyMeter:
    """One level's power samples; ``sampler`` None means there is nothing to sample on this target."""

    sampler: TelemetrySampler | None
    reason: str = ""
    seconds: float = 0.0
    samples: list[TelemetrySample] = field(default_factory=list)

    def result(self, output_tokens: int) -> dict[str, Any]:
        if self.sampler is None:
            return {"status": f"not measured: {self.reason}"}
        out = energy_result(self.samples, self.seconds, output_tokens, self.sampler.tool or "?")
        if self.sampler.errors:
            out["errors"] = self.sampler.errors[:3]
        return out


@contextmanager
def meter(hardware: HardwareInfo | None = None, sampler: TelemetrySampler | None = None) -> Iterator[EnergyMeter]:
    """Sample power for the duration of the body (at least one tick, taken at the start)."""
    hw = hardware or detected()
    if sampler is None:
        candidate = TelemetrySampler(hw, PERIOD_S)
        sampler = candidate if candidate.tool is not None else None
    if sampler is None:
        yield EnergyMeter(None, f"no GPU power meter on {hw.vendor} ({hw.describe()})")
        return
    result = EnergyMeter(sampler)
    t0 = time.monotonic()
    sampler.start()
    try:
        yield result
    finally:
        result.samples = list(sampler.stop())
        result.seconds = time.monotonic() - t0
