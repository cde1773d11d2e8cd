"""Is the client the bottleneck? Its ceiling against an instant server, and the lags it saw during the run.

The ceiling is measured by sending the run's own request bodies (same sizes, same token counts asked), closed-loop
at the run's concurrency, to the instant-token stub (``servegate.testing.stub_server``) in a child process: the
requests/s reached there is the most this client can do at that concurrency on this machine. A run is CLIENT-BOUND
when its request rate is within 20% of that ceiling, or when its sends or the event loop lagged by more than a few
milliseconds (then timestamps are late by as much). The flag is a warning in the results, not a failure.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from servegate.config import LoadConfig
from servegate.load.client import Prompt, RunResult, run_requests

CEILING_MARGIN = 0.8  # a rate >= 80% of the ceiling is within 20% of it
LAG_LIMIT_MS = 5.0  # p99 send lag or event-loop lag above this makes every timestamp suspect
CHECK_SECONDS = 1.5

_cache: dict[tuple, Ceiling] = {}


@dataclass(frozen=True)
class Ceiling:
    concurrency: int
    request_rate: float  # req/s against the instant stub
    output_rate: float  # tokens/s against the instant stub
    loop_lag_p99_ms: float
    requests: int


class StubProcess:
    """The stub in its own process (so it does not share our GIL); stopped by closing its stdin."""

    def __init__(self, *args: str, cpu: int | None = None) -> None:
        cmd = [sys.executable, "-m", "servegate.testing.stub_server", *args]
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            self.proc.kill()
            raise RuntimeError(f"stub server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.stats = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.stats = self.proc.stdout.read().strip()
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> StubProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def peak_in_flight(run: RunResult) -> int:
    """The most requests that were open at once: the concurrency a rate-paced run actually reached."""
    events = [(r.sent_at, 1) for r in run.records] + [(r.done_at, -1) for r in run.records]
    events.sort()
    cur = peak = 0
    for _, step in events:
        cur += step
        peak = max(peak, cur)
    return peak


def measure_ceiling(
    prompts: Sequence[Prompt], load: LoadConfig, concurrency: int, workers: int = 1, seconds: float = CHECK_SECONDS
) -> Ceiling:
    """Closed-loop at ``concurrency`` against the instant stub for about ``seconds`` (cached per shape)."""
    from servegate.load.measure import run_async  # late: measure imports this module

    concurrency = max(1, concurrency)
    key = (concurrency, load.endpoint, load.output_tokens, load.dataset, workers)
    if key in _cache:
        return _cache[key]
    n = max(4 * concurrency, 2000)
    cycled = [prompts[i % len(prompts)] for i in range(n)]
    check_load = LoadConfig(
        num_requests=n,
        concurrency=concurrency,
        prompt_tokens=load.prompt_tokens,
        output_tokens=load.output_tokens,
        endpoint=load.endpoint,
        ignore_eos=load.ignore_eos,
        max_seconds=seconds,
        request_timeout_s=30.0,
    )
    with StubProcess() as stub:
        if workers > 1:
            from servegate.load.multiproc import WorkerPool

            with WorkerPool(workers) as pool:
                run = pool.run(stub.base_url, "stub", cycled, check_load, None, concurrency)
        else:
            run = run_async(run_requests(stub.base_url, "stub", cycled, check_load, None, concurrency))
    ok = [r for r in run.records if r.success]
    duration = max(run.duration_s, 1e-9)
    ceiling = Ceiling(
        concurrency,
        len(ok) / duration,
        sum(r.output_tokens or 0 for r in ok) / duration,
        run.loop_lag_p99_s * 1000.0,
        len(run.records),
    )
    _cache[key] = ceiling
    return ceiling


def judge(
    request_rate: float, ceiling: Ceiling | None, send_lag_p99_ms: float, loop_lag_p99_ms: float
) -> tuple[bool, str]:
    """(client_bound, reason): every reason that applies, joined; empty when the client kept up."""
    reasons = []
    if ceiling is not None and ceiling.request_rate > 0 and request_rate >= CEILING_MARGIN * ceiling.request_rate:
        reasons.append(
            f"rate {request_rate:.0f} req/s is within 20% of the client's ceiling {ceiling.request_rate:.0f} req/s "
            f"at concurrency {ceiling.concurrency}"
        )
    if send_lag_p99_ms > LAG_LIMIT_MS:
        reasons.append(f"sends lagged their schedule: p99 {send_lag_p99_ms:.1f} ms > {LAG_LIMIT_MS:g} ms")
    if loop_lag_p99_ms > LAG_LIMIT_MS:
        reasons.append(f"event loop lagged: p99 {loop_lag_p99_ms:.1f} ms > {LAG_LIMIT_MS:g} ms")
    return bool(reasons), "; ".join(reasons)
