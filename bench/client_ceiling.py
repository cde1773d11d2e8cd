"""Client ceiling: requests/s and output tokens/s of servegate's client against the instant-token stub.

The stub runs in its own process pinned to one core (``taskset``) and the client is pinned to another, so the table
says what one core of client does, as issue 3's targets ask (>= 2,000 req/s at 256 and 1,024 streams, 16 tokens per
request). The multi-process rows run W client processes (one event loop each) on the cores the stub does not use.

    python bench/client_ceiling.py [--seconds 4] [--streams 1 64 256 1024] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from servegate.config import LoadConfig
from servegate.load.client import run_requests
from servegate.load.measure import run_async
from servegate.load.multiproc import WorkerPool
from servegate.load.selfcheck import StubProcess
from servegate.metrics import summarize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="time bound per row")
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 64, 256, 1024])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tokens", type=int, default=16)
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    stub_cpu, client_cpus = cpus[0], set(cpus[1:]) or {cpus[0]}
    print(f"cores: {len(cpus)}; stub on core {stub_cpu}, client on {sorted(client_cpus)}; {args.tokens} tokens/request")
    print(
        f"{'workers':>7} {'streams':>7} {'requests':>9} {'req/s':>9} {'out tok/s':>10} {'loop lag p99 ms':>16} "
        f"{'errors':>6}"
    )
    for workers in args.workers:
        for streams in args.streams:
            n = max(20 * streams, 20_000)
            load = LoadConfig(
                num_requests=n,
                concurrency=streams,
                prompt_tokens=8,
                output_tokens=args.tokens,
                max_seconds=args.seconds,
                request_timeout_s=60,
            )
            prompts = ["hello"] * n
            with StubProcess(cpu=stub_cpu) as stub:
                if workers == 1:
                    os.sched_setaffinity(0, {min(client_cpus)})
                    run = run_async(run_requests(stub.base_url, "stub", prompts, load, None, streams))
                else:
                    os.sched_setaffinity(0, client_cpus | ({stub_cpu} if len(client_cpus) < workers else set()))
                    with WorkerPool(workers) as pool:
                        run = pool.run(stub.base_url, "stub", prompts, load, None, streams)
                os.sched_setaffinity(0, set(cpus))
            s = summarize(run)
            errors = s.num_requests - s.completed
            print(
                f"{workers:>7} {streams:>7} {s.num_requests:>9} {s.request_throughput:>9.0f} "
                f"{s.output_throughput:>10.0f} {s.loop_lag_p99_ms:>16.1f} {errors:>6}",
                flush=True,
            )


if __name__ == "__main__":
    main()
