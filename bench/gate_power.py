"""Error rates of the regression gate by simulation: false alarms, power and inconclusive share over CoV × n.

Each simulated session gates 20 metrics (n server starts per arm, log-normal per-start noise with the given CoV),
Holm over the whole session, with the shipped decision rule (servegate.stats: welch_log, holm_adjust_array,
verdict_codes). Seed 003 Table 24 gives the CoV range that matters: ~0.3% (Qwen3-VL, Kimi), ~4% (Llama-405B),
up to 11.7% (DeepSeek V3.2 with AITER).

Columns:
  false REGRESSED  share of A/A sessions (no change anywhere) with any REGRESSED verdict (family-wise; want <= alpha)
  power            share of sessions where one metric made 5% worse is REGRESSED
  inconclusive     share of those sessions where that metric is INCONCLUSIVE
  OK (missed)      share where it is called OK although 5% worse (want ~0: a 5% slowdown is beyond 3% tolerance)

    python bench/gate_power.py [--trials 4000] [--tolerance 0.03] [--slowdown 0.05]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from servegate.stats import (
    DEFAULT_ALPHA,
    DEFAULT_TOLERANCE,
    INCONCLUSIVE_CODE,
    OK_CODE,
    REGRESSED_CODE,
    simulate_verdicts,
)

COVS = (0.003, 0.01, 0.04, 0.10)
NS = (2, 3, 5, 10)
METRICS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4000)
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--slowdown", type=float, default=0.05)
    parser.add_argument("--correlation", type=float, default=0.0, help="share of per-start noise common to metrics")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.monotonic()
    print(
        f"{METRICS} gated metrics per session, {args.trials} sessions per cell, tolerance {args.tolerance:.0%}, "
        f"alpha {args.alpha}, planted slowdown {args.slowdown:.0%} on one metric, correlation {args.correlation}"
    )
    header = f"{'CoV':>6} {'n':>3} | {'false REGRESSED':>15} | {'power':>6} {'inconclusive':>12} {'OK (missed)':>11}"
    print(header)
    print("-" * len(header))
    common = {"tolerance": args.tolerance, "alpha": args.alpha, "correlation": args.correlation}
    for cov in COVS:
        for n in NS:
            aa = simulate_verdicts(rng, args.trials, METRICS, n, cov, **common)
            false_alarm = float((aa == REGRESSED_CODE).any(axis=1).mean())
            hit = simulate_verdicts(rng, args.trials, METRICS, n, cov, args.slowdown, planted=1, **common)[:, 0]
            print(
                f"{cov:>6.1%} {n:>3} | {false_alarm:>15.3f} | {(hit == REGRESSED_CODE).mean():>6.3f} "
                f"{(hit == INCONCLUSIVE_CODE).mean():>12.3f} {(hit == OK_CODE).mean():>11.3f}"
            )
    print(f"({time.monotonic() - t0:.1f} s)")


if __name__ == "__main__":
    main()
