"""When requests may leave: arrival schedules for rate profiles and the level plans of sweep and saturation.

Rates follow ``vllm bench serve``: constant spacing 1/rate; Poisson = gamma intervals with shape 1; gamma intervals
with shape ``burstiness`` and scale 1/(rate × burstiness), so the mean rate stays ``rate`` whatever the burstiness
(< 1 burstier, > 1 more regular). A seeded generator makes a schedule reproducible across runs and servers.
"""

from __future__ import annotations

import numpy as np

from servegate.config import LoadConfig

SATURATION_GAIN = 1.05  # seed 003 phase 5: a level is SATURATED when throughput < 1.05x the previous level


def arrival_offsets(
    kind: str, rate: float | None, n: int, burstiness: float = 1.0, seed: int = 0, vllm_bench: bool = False
) -> list[float] | None:
    """Seconds after the start at which request i is due; None for closed-loop profiles (send when a slot frees).

    ``vllm_bench``: as ``vllm bench serve`` (``get_request``) spaces them: the first request waits one interval too,
    and the intervals are rescaled so that the last request is due at exactly n / rate."""
    if kind in ("synchronous", "concurrent", "saturation"):
        return None
    if not rate or rate <= 0:
        raise ValueError(f"profile {kind!r} needs a rate > 0, got {rate!r}")
    if n <= 0:
        return []
    if kind == "constant":
        return [(i + vllm_bench) / rate for i in range(n)]
    if kind not in ("poisson", "gamma"):
        raise ValueError(f"no arrival schedule for profile {kind!r}")
    shape = 1.0 if kind == "poisson" else burstiness
    if shape <= 0:
        raise ValueError(f"burstiness must be > 0, got {shape}")
    gaps = np.random.default_rng(seed).gamma(shape, 1.0 / (rate * shape), size=n if vllm_bench else n - 1)
    if vllm_bench:
        due = np.cumsum(gaps)
        return (due * (n / rate / due[-1])).tolist()
    return [0.0, *np.cumsum(gaps).tolist()]


def sweep_rates(sync_rate: float, max_rate: float, steps: int) -> list[float]:
    """GuideLLM's sweep: ``steps`` constant rates evenly spaced strictly between the synchronous and max rates.

    Every start of a sweep gets the same number of levels, because statistics pair levels across starts by label:
    a start whose concurrent level was no faster than one stream (a busy CPU server) still spans the interval
    between its two bounds, in ascending order.
    """
    if steps <= 0 or min(sync_rate, max_rate) <= 0:
        return []
    low, high = sorted((sync_rate, max_rate))
    return np.linspace(low, high, steps + 2)[1:-1].tolist()


def saturation_levels(load: LoadConfig) -> list[int]:
    """Concurrency levels to climb: the configured ones, or doublings of ``concurrency`` (5 levels)."""
    if load.concurrency_levels:
        return sorted(set(load.concurrency_levels))
    return [load.concurrency * 2**i for i in range(5)]


def saturated(throughput: float, previous: float | None) -> bool:
    """The stop rule of the saturation search: this level gained less than 5% over the previous one."""
    return previous is not None and throughput < SATURATION_GAIN * previous
