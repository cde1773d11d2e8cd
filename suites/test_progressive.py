"""seed 003 §5.1's progressive benchmark: WARMUP, BASELINE, SCALING, STRESS, SATURATION on one server per start.

Phases are named in the suite file (``SCALING-c16``: phase, then a free label). Each level is labelled with seed 003
Table 7's status: FAILING (success < 95%, any phase), DEGRADED (SCALING only: p99 > 2x the BASELINE p99),
SATURATED (SATURATION only: throughput < 1.05x the previous level), else OK. The labels are the results
record's (servegate.status via servegate.results), the ones the terminal table and the HTML report show. A
FAILING level fails the test; the others are findings, reported with the ratio that decided them.
"""

from __future__ import annotations

from servegate.status import Phase, Status

SUITE = "progressive"


def test_progressive(case, bench) -> None:
    for name, _ in case.steps:
        Phase(name.split("-", 1)[0])  # a typo in the suite file fails here, loudly
    bench.run(case)
    status = bench.last_record.status
    bench.progress(f"[{case.id}] status: " + ", ".join(f"{n} {s.status}" for n, s in status.items()))
    failing = [n for n, s in status.items() if s.status == Status.FAILING.value]
    assert not failing, f"FAILING (success < 95%) in {failing}; see the per-level table and the server logs"
