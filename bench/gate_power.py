"""Error rates and cost of the sequential gate by simulation of whole sessions.

A session: 4 configs × 6-level sweeps × 5 metrics = 120 gated rows; each config runs its own interleaved rounds
(two arms, log-normal per-start noise with the given CoV) and looks after every round from 3 starts per arm on,
up to 20, with the shipped rule (servegate.sequential: levels_at, decide, simulate_sessions). A "slower server"
is one config whose every row is that much worse; REGRESSED means the gate fails that config (>= 1 row
REGRESSED). The last lines are two-sided A/B ablations (a finding = REGRESSED or IMPROVED), Welch alone or Welch
and paired rounds at half the level each, with drift shared by the arms of a round. Seed 003 Table 24 gives the
CoV range that matters: ~0.3% (Qwen3-VL, Kimi), ~4% (Llama-405B), up to 11.7% (DeepSeek V3.2 with AITER).

    python bench/gate_power.py [--sessions 4000] [--correlation 0.0] [--max 20] [--gamma 1]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from servegate import sequential
from servegate.sequential import IMPROVED_CODE, OK_CODE, REGRESSED_CODE, Budget, simulate_sessions

CONFIGS, ROWS = 4, 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=4000)
    parser.add_argument("--tolerance", type=float, default=0.03)
    parser.add_argument("--correlation", type=float, default=0.0, help="share of a start's noise common to its rows")
    parser.add_argument("--min", type=int, default=3)
    parser.add_argument("--max", type=int, default=20)
    parser.add_argument("--gamma", type=float, default=sequential.SPENDING_GAMMA, help="-4 ~ OBF")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    sequential.SPENDING_GAMMA = args.gamma
    budget = Budget(args.min, args.max)
    rng = np.random.default_rng(args.seed)
    common = {"budget": budget, "tolerance": args.tolerance, "correlation": args.correlation}
    t0 = time.monotonic()
    print(
        f"{CONFIGS} configs x {ROWS} gated rows = {CONFIGS * ROWS} per session, {args.sessions} sessions per line, "
        f"restarts {budget.min_starts}..{budget.max_starts}, tolerance {args.tolerance:.0%}, alpha 0.05, "
        f"spending gamma {args.gamma:g}, correlation {args.correlation}"
    )
    header = (
        f"{'truth':<26} {'CoV':>5} | {'sessions REGRESSED':>18} {'at 1st look':>11} | {'rows REGRESSED':>14} "
        f"{'rows OK':>8} | {'mean starts/arm':>15}  target"
    )
    print(header)
    print("-" * len(header))

    def line(truth: str, cov: float, slowdowns: tuple[float, ...], target: str, stop: bool = True, **ab: Any) -> None:
        sim = simulate_sessions(
            rng, args.sessions, CONFIGS, ROWS, cov, slowdowns, stop_on_regressed=stop, **common, **ab
        )
        hit = slice(0, max(len(slowdowns), 1)) if slowdowns else slice(0, CONFIGS)
        reg = sim.codes[:, hit] == REGRESSED_CODE
        if ab.get("two_sided"):  # an ablation's finding is either direction
            reg |= sim.codes[:, hit] == IMPROVED_CODE
        sessions = reg.any(axis=(1, 2)).mean()
        first = (reg & (sim.decided_at[:, hit] == budget.min_starts)).any(axis=(1, 2)).mean()
        print(
            f"{truth:<26} {cov:>5.0%} | {sessions:>18.3f} {first:>11.3f} | {reg.mean():>14.3f} "
            f"{(sim.codes[:, hit] == OK_CODE).mean():>8.3f} | {sim.starts[:, hit].mean():>15.1f}  {target}"
        )

    for cov in (0.01, 0.05, 0.10):
        line("A/A (no change anywhere)", cov, (), "sessions REGRESSED <= 0.05")
    line("one server 5% slower", 0.04, (0.05,), ">= 0.80, mean starts <= 12")
    line("one server 20% slower", 0.10, (0.20,), ">= 0.90")
    line("one server 2x slower", 0.05, (1.0,), "at 1st look >= 0.95")
    line("all 4% slower, to the end", 0.04, (0.04,) * CONFIGS, "rows OK <= 0.05 (tolerance 3%)", stop=False)
    line("all 3% slower, to the end", 0.04, (0.03,) * CONFIGS, "rows OK <= 0.05 (at the tolerance)", stop=False)
    line("one server 5% slower, all", 0.04, (0.05,), "per-row power when every row runs on", stop=False)
    ablation = {"two_sided": True, "stop": False}
    line("A/B A/A, paired + Welch", 0.05, (), "any finding <= 0.05 (two-sided)", paired=True, **ablation)
    line("A/B 10%, drift 10%, Welch", 0.03, (0.10,), "rows with a finding", drift=0.10, **ablation)
    line("A/B 10%, drift 10%, paired", 0.03, (0.10,), "rows with a finding", drift=0.10, paired=True, **ablation)
    print(f"({time.monotonic() - t0:.1f} s)")


if __name__ == "__main__":
    main()
