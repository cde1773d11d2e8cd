"""One benchmark case end to end: n independent server starts, each with warmup and its measured steps.

The unit of statistics is the server start (design.md): every round is a fresh server, so restart-to-restart
variance (allocator, compile order, machine drift) is inside the confidence interval instead of hidden from it.
A case runs one or more *steps* on every start: a single load, or the phases of a progressive run (seed 003 §5.1),
each step giving one or more load levels. A/B ablations interleave their arms start by start (A, B, A, B, …) so
that drift of the machine hits both arms alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servegate.config import LoadConfig, ServerConfig
from servegate.launch.base import Launcher, StartupFacts
from servegate.load.measure import LevelResult, measure
from servegate.metrics import RunSummary
from servegate.precision import WithinRun, within_run_of

Progress = Callable[[str], None]
Steps = Sequence[tuple[str, LoadConfig]]


@dataclass
class StartResult:
    """One server start: what it said about itself and what the measured run saw."""

    start_index: int
    facts: StartupFacts
    levels: list[LevelResult]
    log_path: str | None
    warmup_s: float
    server_lost: str | None = None  # the level during which the server died (its errors are counted there)
    precision: dict[str, dict[str, WithinRun]] = field(default_factory=dict)  # level -> metric -> within-run CI
    derived: dict[str, float] = field(default_factory=dict)  # per-start values over levels: capacity, Pareto
    findings: dict[str, Any] = field(default_factory=dict)  # what the report shows about them

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
        """Per-start values of every scalar metric, the input of the statistics.

        With several levels per start, each metric is keyed ``<level label>/<metric>``; a level missing from some
        start (a saturation search that stopped earlier) simply has fewer values.
        """
        out: dict[str, list[float]] = {}
        for start in self.starts:
            multi = len(start.levels) > 1
            for level in start.levels:
                for name, value in level.summary.flat().items():
                    out.setdefault(f"{level.label}/{name}" if multi else name, []).append(value)
            for name, value in start.derived.items():
                out.setdefault(name, []).append(value)
        return out


def run_start(
    case_id: str,
    server_config: ServerConfig,
    steps: Steps,
    launcher: Launcher,
    index: int,
    restarts: int,
    log_dir: Path,
    progress: Progress | None = None,
) -> StartResult:
    """One fresh server: start, run every step (each with its own warmup), stop."""
    say = progress or (lambda _msg: None)
    t = time.monotonic()
    tag = f"[{case_id}] start {index + 1}/{restarts}"
    say(f"{tag}: launching server")
    levels: list[LevelResult] = []
    warmup_s = 0.0
    lost: str | None = None
    derived: dict[str, float] = {}
    findings: dict[str, Any] = {}
    with launcher.start(server_config, log_dir) as server:
        say(f"{tag}: ready in {server.facts.time_to_ready_s or 0:.0f} s")
        for step_name, load in steps:
            if step_name:
                say(f"{tag}: step {step_name} ({load.profile}, {load.num_requests} requests)")
            measured = measure(server, load, say, salt=index)
            warmup_s += measured.warmup_s
            derived.update({f"{step_name}/{k}" if step_name else k: v for k, v in measured.derived.items()})
            findings.update({f"{step_name}/{k}" if step_name else k: v for k, v in measured.findings.items()})
            for level in measured.levels:
                if step_name:
                    level.label = f"{step_name}/{level.label}" if len(measured.levels) > 1 else step_name
                levels.append(level)
            if measured.server_lost is not None:
                lost = levels[-1].label
                say(f"{tag}: the server died during {lost}; the remaining steps of this start are not run")
                break
            if load.cooldown_s > 0:
                time.sleep(load.cooldown_s)
    precision = {lv.label: within_run_of(lv.run.records, list(lv.summary.flat())) for lv in levels if lv.run}
    result = StartResult(
        index,
        server.facts,
        levels,
        str(server.log_path),
        warmup_s,
        server_lost=lost,
        precision=precision,
        derived=derived,
        findings=findings,
    )
    summary = result.summary
    say(
        f"{tag}: {summary.output_throughput:.0f} tok/s, TTFT p50 {summary.ttft.median:.1f} ms, "
        f"success {summary.success_rate:.0%} ({time.monotonic() - t:.0f} s)"
    )
    return result


Looks = Callable[[int, dict[str, "CaseResult"]], bool]


def run_rounds(
    case_id: str,
    arms: Sequence[tuple[str, ServerConfig]],
    steps: Steps,
    launcher: Launcher,
    restarts: int,
    log_dir: Path,
    progress: Progress | None = None,
    first_look: int | None = None,
    stop: Looks | None = None,
) -> dict[str, CaseResult]:
    """Rounds of one fresh start per arm (arms in the listed order), at most ``restarts`` rounds. From round
    ``first_look`` on, ``stop(rounds_done, results)`` is asked after every round; True ends the case (the
    sequential gate: every verdict decided). Without ``stop`` every round runs. An arm named "" is a plain case."""
    load = steps[-1][1]
    results = {name: CaseResult(f"{case_id}[{name}]" if name else case_id, config, load) for name, config in arms}
    for i in range(restarts):
        for name, config in arms:
            start = run_start(results[name].case_id, config, steps, launcher, i, restarts, log_dir, progress)
            results[name].starts.append(start)
        if stop is not None and i + 1 >= (first_look or 1) and stop(i + 1, results):
            break
    return results
