"""seed 003 §5.1's progressive benchmark: WARMUP, BASELINE, SCALING, STRESS, SATURATION on one server per start.

Phases are named in the suite file (``SCALING-c16``: phase, then a free label). Each level is labelled with seed 003
Table 7's status: FAILING (success < 95%, any phase), DEGRADED (SCALING only: p99 > 2x the BASELINE p99),
SATURATED (SATURATION only: throughput < 1.05x the previous level), else OK. A FAILING level fails the test; the
others are findings, reported with the ratio that decided them.
"""

from __future__ import annotations

import statistics

from servegate.status import Phase, Status, classify

SUITE = "progressive"


def _mean(values: dict[str, list[float]], key: str) -> float | None:
    series = values.get(key)
    return statistics.fmean(series) if series else None


def test_progressive(case, bench) -> None:
    names = [name for name, _ in case.steps]
    phases = {name: Phase(name.split("-", 1)[0]) for name in names}  # a typo in the suite file fails here, loudly
    result = bench.run(case)
    values = result.values()
    baseline_p99 = next((_mean(values, f"{n}/e2el_p99_ms") for n in names if phases[n] is Phase.BASELINE), None)
    labels: dict[str, str] = {}
    previous: float | None = None
    for name in names:
        throughput = _mean(values, f"{name}/total_token_throughput")
        status = classify(
            phases[name],
            _mean(values, f"{name}/success_rate") or 0.0,
            _mean(values, f"{name}/e2el_p99_ms"),
            baseline_p99,
            throughput,
            previous,
        )
        labels[name] = status.value
        if phases[name] in (Phase.SCALING, Phase.SATURATION):  # STRESS is another workload: not a "previous level"
            previous = throughput
    bench.annotate(status=labels, phases={n: p.value for n, p in phases.items()})
    bench.progress(f"[{case.id}] status: " + ", ".join(f"{n} {s}" for n, s in labels.items()))
    failing = [n for n, s in labels.items() if s == Status.FAILING.value]
    assert not failing, f"FAILING (success < 95%) in {failing}; see the per-level table and the server logs"
