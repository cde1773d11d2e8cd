"""Change-point detection over history by simulation: false alarms on A/A series, detection of a planted step.

Each series is one value per session (the mean over 2 starts, normal per-start noise with the given CoV), fed to
servegate.history.changepoints.detect (Apache Otava's E-Divisive, Hunter variant) at the shipped setting.

Columns:
  false alarm     share of A/A series (no change) with any change point (per series; a history with k series
                  examined sees about k times this)
  found at step   share of series with a planted step (at 60% of the length) whose change point is reported
                  within one session of the step
  other points    share of stepped series that also report a change point elsewhere

    python bench/changepoint_false_alarms.py [--trials 300] [--step 0.05]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from servegate.history.changepoints import DEFAULT_MAX_PVALUE, detect


def series(rng: np.random.Generator, sessions: int, cov: float, step: float) -> list[float]:
    at = int(sessions * 0.6)
    level = np.where(np.arange(sessions) >= at, 1 + step, 1.0)
    return list(level * (1 + cov * rng.standard_normal((2, sessions))).mean(axis=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--step", type=float, default=0.05)
    parser.add_argument("--max-pvalue", type=float, default=DEFAULT_MAX_PVALUE)
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    print(f"max p-value {args.max_pvalue:g} per series, step {args.step:+.0%}, {args.trials} series per row")
    print(f"{'sessions':>8} {'CoV':>6} {'false alarm':>12} {'found at step':>14} {'other points':>13}")
    started = time.perf_counter()
    for sessions in (30, 60, 120):
        for cov in (0.01, 0.02, 0.05):
            at = int(sessions * 0.6)
            false = found = other = 0
            for _ in range(args.trials):
                false += bool(detect(series(rng, sessions, cov, 0.0), args.max_pvalue))
                points = [p[0] for p in detect(series(rng, sessions, cov, args.step), args.max_pvalue)]
                found += any(abs(i - at) <= 1 for i in points)
                other += any(abs(i - at) > 1 for i in points)
            n = args.trials
            print(f"{sessions:>8} {cov:>6.0%} {false / n:>12.3f} {found / n:>14.3f} {other / n:>13.3f}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
