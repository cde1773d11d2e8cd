"""Measure a load on a running server: requests from the dataset, warmup, then one run per load level.

Single-level profiles (synchronous, concurrent, constant, poisson, gamma) give one level; ``sweep`` gives
synchronous, then evenly spaced constant rates, then max throughput (GuideLLM's sweep, ordered by rate); and
``saturation`` climbs concurrency levels until throughput gains < 5% (seed 003 phase 5). Every level gets fresh,
unique prompts (so the prefix cache cannot carry over), a /metrics window, and the client self-check; levels are
separated by ``cooldown_s``. The caller owns the server's lifecycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from servegate import capacity, energy, pareto, steady_state
from servegate.config import LoadConfig
from servegate.launch.base import ServerHandle
from servegate.load import multiturn, profiles, trace
from servegate.load.client import Prompt, RunResult, run_requests
from servegate.load.datasets import build_requests
from servegate.load.prompts import Tokenizer, tokenizer_for
from servegate.load.selfcheck import judge, measure_ceiling, peak_in_flight
from servegate.load.server_metrics import Scraper
from servegate.metrics import RunSummary, summarize

try:  # uvloop is a dependency on Linux; the fallback keeps the library importable elsewhere
    import uvloop

    def run_async(coro: Any) -> Any:
        return uvloop.run(coro)
except ImportError:  # pragma: no cover
    run_async = asyncio.run

Progress = Callable[[str], None]


@dataclass
class LevelResult:
    """One load level of one server start."""

    label: str
    concurrency: int | None
    rate: float | None
    summary: RunSummary
    run: RunResult | None = field(default=None, repr=False)  # raw records; not serialized
    saturated: bool = False  # saturation search: this level gained < 5% over the previous one

    @property
    def client_bound(self) -> bool:
        return self.summary.client_bound

    @property
    def server_metrics(self) -> dict[str, float]:
        return self.summary.server_metrics


@dataclass
class Measurement:
    levels: list[LevelResult]
    warmup_s: float
    server_lost: str | None = None  # the level during which the server died; later levels were not run
    derived: dict[str, float] = field(default_factory=dict)  # per-start values over levels (capacity, Pareto)
    findings: dict[str, Any] = field(default_factory=dict)  # what the report shows about them (boundary, front)

    @property
    def summary(self) -> RunSummary:
        """The headline level: the only one, or the last (highest) of a sweep."""
        return self.levels[-1].summary


class _Runner:
    """Runs levels on one server with everything a level needs: prompts, pacing, workers, scraping, self-check."""

    def __init__(
        self, server: ServerHandle, load: LoadConfig, progress: Progress | None, collect_text: bool, salt: int
    ) -> None:
        self.server = server
        self.load = load
        self.say = progress or (lambda _m: None)
        self.collect_text = collect_text
        self.salt = salt
        with self.needs_server("prompt preparation"):
            self.tok: Tokenizer = tokenizer_for(
                server.base_url, server.config.tokenizer or server.config.model, server.config.model_name, self.say
            )
        self.scraper = Scraper(server.base_url, load.scrape_interval_s) if load.scrape_metrics else None
        self.pool: Any = None
        if load.workers > 1:
            from servegate.load.multiproc import WorkerPool

            self.pool = WorkerPool(load.workers)
        self.levels: list[LevelResult] = []
        self.model = server.config.model_name

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    @contextlib.contextmanager
    def needs_server(self, phase: str) -> Iterator[None]:
        """Turn a connection failure of ``phase`` into ServerLostError when the server is gone; a live server's
        failure (a refused request, a proxy in the way) propagates as it is."""
        try:
            yield
        except OSError as exc:
            if self.server.is_alive():
                raise
            raise self.server.lost(phase, exc) from exc

    def build(self, load: LoadConfig, count: int, salt: int) -> list[Prompt]:
        with self.needs_server("prompt preparation"):
            return build_requests(self.tok, load, count, salt=salt)

    def send(
        self,
        prompts: Sequence[Prompt],
        load: LoadConfig,
        schedule: Sequence[float] | None,
        concurrency: int | None,
        tick: Callable[[int, int], None] | None = None,
    ) -> RunResult:
        model = self.server.config.model_name
        if self.pool is not None:
            return self.pool.run(self.server.base_url, model, prompts, load, schedule, concurrency, self.collect_text)
        return run_async(
            run_requests(
                self.server.base_url, model, prompts, load, schedule, concurrency, self.collect_text, on_progress=tick
            )
        )

    def warmup(self) -> float:
        load = self.load
        if load.warmup_requests <= 0 and load.warmup_seconds <= 0:
            return 0.0
        t = time.monotonic()
        conc = 1 if load.profile == "synchronous" else load.concurrency
        count = max(load.warmup_requests, 1)
        warm = self.build(replace(load, shared_prefix_tokens=0), count, self.salt + 10_000)
        timed = f", then {load.warmup_seconds:g} s" if load.warmup_seconds > 0 else ""
        self.say(f"  warmup: {load.warmup_requests} requests{timed}")
        runs = []
        if load.warmup_requests > 0:
            runs.append(self.send(warm, load, None, conc))
        if load.warmup_seconds > 0:  # cycle the warmup prompts until the time is up
            many = [warm[i % len(warm)] for i in range(max(conc * 200, 1000))]
            runs.append(self.send(many, replace(load, max_seconds=load.warmup_seconds), None, conc))
        failed = [r for run in runs for r in run.records if r.outcome != "ok"]
        if failed and not self.server.is_alive():
            raise self.server.lost("warmup", ConnectionError(failed[0].error or failed[0].outcome))
        return time.monotonic() - t

    def level(self, label: str, concurrency: int | None, rate: float | None, kind: str) -> LevelResult:
        load = self.load
        index = len(self.levels)
        conversations: list[multiturn.Conversation] = []
        schedule: list[float] | None
        with self.needs_server("prompt preparation"):
            if kind == "trace":
                prompts, schedule = trace.replay(self.tok, load, salt=self.salt * 100 + index)
            elif kind == "multiturn":
                conversations = multiturn.conversations(self.tok, load, load.num_requests, salt=self.salt * 100 + index)
                prompts = [turn for conv in conversations for turn in conv.turns]
                schedule = None
            else:
                prompts = build_requests(self.tok, load, load.num_requests, salt=self.salt * 100 + index)
                schedule = profiles.arrival_offsets(
                    kind, rate, len(prompts), load.burstiness, load.seed + index, load.request_style == "vllm-bench"
                )
        if index > 0 and load.cooldown_s > 0:
            time.sleep(load.cooldown_s)
        self.say(f"  level {label}: {len(prompts)} requests")
        last = [time.monotonic()]
        done_so_far = [0]

        def tick(done: int, total: int) -> None:
            done_so_far[0] = done
            now = time.monotonic()
            if now - last[0] > 5.0 or done == total:
                last[0] = now
                self.say(f"  {label}: requests {done}/{total}")

        def execute() -> RunResult:
            if conversations:
                return run_async(multiturn.run_conversations(self.server.base_url, self.model, conversations, load))
            return self.send(prompts, load, schedule, concurrency, tick)

        with heartbeat(self.say, label, done_so_far, len(prompts)), energy.meter() as power:
            if self.scraper is not None:
                with self.scraper.window() as server_metrics:
                    run = execute()
            else:
                server_metrics = {}
                run = execute()
        window = steady_state.detect(run)
        if load.steady_state:
            summary = steady_state.summarize_window(run, window, load.percentiles, load.slo)
        else:
            summary = summarize(run, load.percentiles, load.slo)
        summary.steady = window.to_dict(applied=load.steady_state)
        summary.oversaturation = steady_state.oversaturation(run)
        summary.server_metrics = dict(server_metrics)
        summary.energy = power.result(summary.total_output_tokens)
        ceiling = None
        if load.client_check and run.records:
            try:
                ceiling = measure_ceiling(prompts, load, concurrency or peak_in_flight(run), load.workers)
            except (OSError, RuntimeError) as exc:
                self.say(f"  client self-check failed: {exc}")
        summary.client_ceiling_rps = ceiling.request_rate if ceiling else None
        summary.client_bound, summary.client_bound_reason = judge(
            summary.request_throughput, ceiling, summary.send_lag_p99_ms, summary.loop_lag_p99_ms
        )
        if summary.client_bound:
            self.say(f"  {label}: CLIENT-BOUND: {summary.client_bound_reason}")
        result = LevelResult(label, concurrency, rate, summary, run)
        self.levels.append(result)
        if summary.success_rate < 1.0 and not self.server.is_alive():
            self.say(f"  {label}: the server died during this level; its failed requests count as errors")
            raise _ServerDiedInLevel(label)
        return result


HEARTBEAT_S = 15.0  # as the health wait: a level that hangs must still show that it is alive


@contextlib.contextmanager
def heartbeat(say: Progress, label: str, done: list[int], total: int) -> Iterator[None]:
    """Every ``HEARTBEAT_S`` while a level runs, one line with its elapsed time and requests done: completions
    alone say nothing when the server stops answering (or when worker processes send the load)."""
    stop = threading.Event()
    t0 = time.monotonic()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            say(f"  {label}: still running after {time.monotonic() - t0:.0f} s, {done[0]}/{total} requests done")

    thread = threading.Thread(target=beat, name="servegate-level-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def measure(
    server: ServerHandle,
    load: LoadConfig,
    progress: Progress | None = None,
    collect_text: bool = False,
    salt: int = 0,
) -> Measurement:
    """Warm up, then run the measured levels. ``salt`` makes prompts unique across server starts too."""
    runner = _Runner(server, load, progress, collect_text, salt)
    lost: str | None = None
    derived: dict[str, float] = {}
    findings: dict[str, Any] = {}
    try:
        warmup_s = runner.warmup()
        kind = load.profile
        if kind == "synchronous":
            runner.level("sync", 1, None, kind)
        elif kind == "capacity":
            limits = capacity.parse_limits(load.slo_limits, load.percentiles)
            found = capacity.search(
                load.concurrency_levels,
                limits,
                lambda c: runner.level(f"c{c}", c, None, "concurrent").summary.flat(),
                load.cliff_factor,
            )
            runner.levels.sort(key=lambda lv: lv.concurrency or 0)
            derived.update(found.derived())
            findings["capacity"] = {"text": found.describe(), "boundary": found.boundary,
                                    "first_failing": found.first_failing, "capacity": found.capacity,
                                    "cliff": found.cliff, "cliff_factor": found.cliff_factor,
                                    "censored": found.censored, "limits": [str(lim) for lim in limits],
                                    "probes": [{"level": p.level, "violated": list(p.violated)} for p in found.probes]}
            runner.say(f"  {found.describe()}")
        elif kind in ("trace", "multiturn"):
            runner.level(kind if kind == "trace" else f"u{load.concurrency}", None, None, kind)
        elif kind == "concurrent":
            for c in load.concurrency_levels or (load.concurrency,):
                runner.level(f"c{c}", c, None, kind)
        elif kind in ("constant", "poisson", "gamma"):
            runner.level(f"{'r' if kind == 'constant' else kind}{load.rate:g}", None, load.rate, kind)
        elif kind == "sweep":
            _sweep(runner, load)
        elif kind == "saturation":
            previous: float | None = None
            for c in profiles.saturation_levels(load):
                level = runner.level(f"c{c}", c, None, "concurrent")
                throughput = level.summary.total_token_throughput
                if profiles.saturated(throughput, previous) or level.summary.success_rate == 0:
                    level.saturated = True
                    break
                if load.oversaturation_stop and level.summary.oversaturation:
                    runner.say(f"  {level.label}: over-saturated, stopping: {level.summary.oversaturation}")
                    break
                previous = throughput
        else:  # pragma: no cover - LoadConfig's Literal and the suite parser reject this earlier
            raise ValueError(f"unknown profile {kind!r}")
        if len(runner.levels) > 1 and kind != "capacity":
            front = pareto.Front.of(runner.levels, server.config.tensor_parallel_size)
            findings["pareto"] = front.to_dict()
            if load.pareto_interactivity is not None:
                derived["throughput_per_gpu_at_interactivity"] = front.throughput_at(load.pareto_interactivity)
    except _ServerDiedInLevel as died:
        lost = str(died)
    finally:
        runner.close()
    return Measurement(runner.levels, warmup_s, server_lost=lost, derived=derived, findings=findings)


class _ServerDiedInLevel(Exception):
    """Ends a measurement early: the level it names holds the counted errors, later levels cannot run."""


def _sweep(runner: _Runner, load: LoadConfig) -> None:
    """GuideLLM's sweep: synchronous and max-throughput levels bound the rates in between; reported by rate."""
    sync = runner.level("sync", 1, None, "synchronous")
    top_c = max(load.concurrency_levels or (load.concurrency,))
    top = runner.level("throughput", top_c, None, "concurrent")
    rates = profiles.sweep_rates(sync.summary.request_throughput, top.summary.request_throughput, load.sweep_rates)
    # Labels are positions, not rates: the rates differ from start to start, and statistics key levels by label.
    middle = []
    for k, rate in enumerate(rates):
        level = runner.level(f"sweep{k + 1}", None, rate, "constant")
        middle.append(level)
        if load.oversaturation_stop and level.summary.oversaturation:
            runner.say(f"  {level.label}: over-saturated, higher rates skipped: {level.summary.oversaturation}")
            break
    runner.levels[:] = [sync, *middle, top]
