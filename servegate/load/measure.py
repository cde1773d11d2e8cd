"""Measure a load on a running server: token-exact prompts, warmup, then one run per load level.

Single-level profiles (synchronous, concurrent, constant, poisson, gamma) give one level; sweep and saturation give
one level per concurrency or rate step. The caller owns the server's lifecycle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from servegate.config import LoadConfig
from servegate.launch.base import ServerHandle
from servegate.load.client import RunResult, run_requests
from servegate.load.prompts import TokenizerClient, synthetic_prompts
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


@dataclass
class Measurement:
    levels: list[LevelResult]
    warmup_s: float

    @property
    def summary(self) -> RunSummary:
        """The headline level: the only one, or the last (highest) of a sweep."""
        return self.levels[-1].summary


def measure(
    server: ServerHandle,
    load: LoadConfig,
    progress: Progress | None = None,
    collect_text: bool = False,
    salt: int = 0,
) -> Measurement:
    """Warm up, then run the measured load. ``salt`` makes prompts unique across server starts too."""
    tok = TokenizerClient(server.base_url, server.config.model_name)
    prompts = synthetic_prompts(tok, load.num_requests, load.prompt_tokens, load.shared_prefix_tokens, salt=salt)
    warmup_s = 0.0
    if load.warmup_requests > 0:
        warm = synthetic_prompts(tok, load.warmup_requests, load.prompt_tokens, salt=salt + 10_000)
        t = time.monotonic()
        run_async(run_requests(server.base_url, server.config.model_name, warm, load, None, load.concurrency))
        warmup_s = time.monotonic() - t

    last = [0.0]

    def tick(done: int, total: int) -> None:
        now = time.monotonic()
        if progress is not None and (now - last[0] > 5.0 or done == total):
            last[0] = now
            progress(f"  requests {done}/{total}")

    concurrency = 1 if load.profile == "synchronous" else load.concurrency
    run = run_async(
        run_requests(
            server.base_url, server.config.model_name, prompts, load, None, concurrency, collect_text, on_progress=tick
        )
    )
    summary = summarize(run, load.percentiles, load.slo)
    return Measurement([LevelResult(f"c{concurrency}", concurrency, None, summary, run)], warmup_s)
