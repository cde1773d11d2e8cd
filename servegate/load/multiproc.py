"""Multi-process mode: one event loop per worker process, for hosts where one core cannot keep up with the server.

Request i goes to worker i mod W, with its place in the global schedule unchanged, and all workers start at one
shared ``perf_counter`` instant (CLOCK_MONOTONIC is system-wide on Linux, so timestamps from different processes
are comparable). Closed-loop concurrency is split as evenly as possible. Records come back pickled and are merged
into one RunResult, so metrics cannot tell a multi-process run from a single-process one.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from servegate.config import LoadConfig
from servegate.load.client import Prompt, RunResult, run_requests

_START_MARGIN_S = 0.3  # time for every worker to receive its share and reach the start line


def _worker(args: tuple) -> RunResult:
    base_url, model, prompts, load, schedule, concurrency, collect_text, start_at, indices = args
    try:
        import uvloop

        return uvloop.run(
            run_requests(
                base_url, model, prompts, load, schedule, concurrency, collect_text, start_at=start_at, indices=indices
            )
        )
    except ImportError:  # pragma: no cover
        import asyncio

        return asyncio.run(
            run_requests(
                base_url, model, prompts, load, schedule, concurrency, collect_text, start_at=start_at, indices=indices
            )
        )


def _ready() -> bool:
    return True


class WorkerPool:
    """W spawned processes kept alive across the levels of a measurement (spawning costs ~0.5 s per process)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        for f in [self._pool.submit(_ready) for _ in range(workers)]:
            f.result()

    def run(
        self,
        base_url: str,
        model: str,
        prompts: Sequence[Prompt],
        load: LoadConfig,
        schedule: Sequence[float] | None,
        concurrency: int | None,
        collect_text: bool = False,
    ) -> RunResult:
        w = self.workers
        start_at = time.perf_counter() + _START_MARGIN_S
        jobs = []
        for k in range(w):
            idx = list(range(k, len(prompts), w))
            if not idx:
                continue
            share = None if concurrency is None else max(1, concurrency // w + (1 if k < concurrency % w else 0))
            sched = None if schedule is None else [schedule[i] for i in idx]
            args = (base_url, model, [prompts[i] for i in idx], load, sched, share, collect_text, start_at, idx)
            jobs.append(self._pool.submit(_worker, args))
        return merge([j.result() for j in jobs])

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge(parts: list[RunResult]) -> RunResult:
    """One RunResult from the workers': records in global order, the earliest start, the latest end, worst lags."""
    if not parts:
        now = time.perf_counter()
        return RunResult([], now, now, time.time())
    records = sorted((r for p in parts for r in p.records), key=lambda r: r.index)
    stops = [p.stopped_early for p in parts if p.stopped_early]
    return RunResult(
        records,
        min(p.started_at for p in parts),
        max(p.finished_at for p in parts),
        min(p.wall_start for p in parts),
        max_loop_lag_s=max(p.max_loop_lag_s for p in parts),
        stopped_early="; ".join(stops) or None,
        loop_lag_p99_s=max(p.loop_lag_p99_s for p in parts),
    )
