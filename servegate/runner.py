"""One benchmark case end to end: n independent server starts, each with warmup and one measured run.

The unit of statistics is the server start (design.md): every round is a fresh server, so restart-to-restart
variance (allocator, compile order, machine drift) is inside the confidence interval instead of hidden from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from servegate.config import LoadConfig, ServerConfig
from servegate.launch.base import Launcher, StartupFacts
from servegate.load.measure import LevelResult, measure
from servegate.metrics import RunSummary

Progress = Callable[[str], None]


@dataclass
class StartResult:
    """One server start: what it said about itself and what the measured run saw."""

    start_index: int
    facts: StartupFacts
    levels: list[LevelResult]
    log_path: str | None
    warmup_s: float

    @property
    def summary(self) -> RunSummary:
        """The headline level: the only one, or the last of a sweep."""
        return self.levels[-1].summary


@dataclass
class CaseResult:
    case_id: str
    server: ServerConfig
    load: LoadConfig
    starts: list[StartResult] = field(default_factory=list)

    def values(self) -> dict[str, list[float]]:
        """Per-start values of every scalar metric, the input of the statistics."""
        out: dict[str, list[float]] = {}
        for start in self.starts:
            multi = len(start.levels) > 1
            for level in start.levels:
                for name, value in level.summary.flat().items():
                    out.setdefault(f"{level.label}/{name}" if multi else name, []).append(value)
        return out


def run_case(
    case_id: str,
    server_config: ServerConfig,
    load: LoadConfig,
    launcher: Launcher,
    restarts: int,
    log_dir: Path,
    progress: Progress | None = None,
) -> CaseResult:
    """``restarts`` rounds of: fresh server -> warmup -> measured run -> stop."""
    result = CaseResult(case_id, server_config, load)
    say = progress or (lambda _msg: None)
    for i in range(restarts):
        t = time.monotonic()
        say(f"[{case_id}] start {i + 1}/{restarts}: launching server")
        with launcher.start(server_config, log_dir) as server:
            ready = server.facts.time_to_ready_s
            say(f"[{case_id}] start {i + 1}/{restarts}: ready in {ready:.0f} s, {load.num_requests} requests")
            measured = measure(server, load, say, salt=i)
        result.starts.append(StartResult(i, server.facts, measured.levels, str(server.log_path), measured.warmup_s))
        summary = measured.summary
        say(
            f"[{case_id}] start {i + 1}/{restarts}: {summary.output_throughput:.0f} tok/s, "
            f"TTFT p50 {summary.ttft.median:.1f} ms, success {summary.success_rate:.0%} "
            f"({time.monotonic() - t:.0f} s)"
        )
    return result
