"""RegressionGate: record a baseline, then gate an A/A rerun, a planted slowdown, a corrupted file, other hardware.

Per-start values are simulated (the statistics are the subject here; tests/test_gate_vllm.py does it with vLLM).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from servegate.baseline import BaselineError
from servegate.config import LoadConfig, ServerConfig
from servegate.hardware import detected
from servegate.regression import RegressionGate, planned_rows
from servegate.runner import CaseResult
from servegate.sequential import Budget
from servegate.stats import Verdict
from servegate.testing.fakes import fake_start

CASE_ID = "cpu/tiny-llama/c4-in8-out4"
HW = detected().hardware_id


def case(slowdowns: list[float]) -> CaseResult:
    return CaseResult(
        CASE_ID,
        ServerConfig(model="tiny-llama"),
        LoadConfig(concurrency=4, num_requests=4, prompt_tokens=8, output_tokens=4),
        [fake_start(i, s) for i, s in enumerate(slowdowns)],
    )


def noisy(rng: np.random.Generator, level: float, cov: float = 0.005, n: int = 5) -> list[float]:
    return list(level * (1 + cov * rng.standard_normal(n)))


def test_a_a_rerun_is_not_regressed_and_a_planted_slowdown_is(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    gate = RegressionGate(tmp_path, HW, family_size=5)
    path = gate.record("serving", CASE_ID, case(noisy(rng, 1.0)))
    assert path.is_file() and path.is_relative_to(tmp_path / HW / "serving")

    same = gate.check("serving", CASE_ID, case(noisy(rng, 1.0)))
    assert {r.verdict for r in same} <= {Verdict.OK, Verdict.INCONCLUSIVE}, [r.reason for r in same]
    assert any(r.verdict is Verdict.OK for r in same)

    slower = gate.check("serving", CASE_ID, case(noisy(rng, 1.2)))
    regressed = {r.metric for r in slower if r.verdict is Verdict.REGRESSED}
    assert {"ttft_median_ms", "output_throughput", "request_throughput"} <= regressed, [r.reason for r in slower]


def test_sequential_looks_stop_early_on_a_clear_regression_and_spend_the_budget_on_noise(tmp_path: Path) -> None:
    """The plugin's loop in miniature: one look per round from the budget's minimum on."""
    rng = np.random.default_rng(2)
    gate = RegressionGate(tmp_path, HW, family_size=20)
    budget = Budget(3, 8)
    gate.record("serving", CASE_ID, case(noisy(rng, 1.0, n=8)))
    baseline = gate.baseline("serving", CASE_ID)
    assert baseline is not None

    def run(level: float, cov: float) -> tuple[int, list]:
        monitor = gate.monitor(budget)
        starts = noisy(rng, level, cov, budget.max_starts)
        for n in budget.looks:
            monitor.look(n, gate.look(baseline, CASE_ID, case(starts[:n]), budget))
            if monitor.done:
                return n, monitor.final()
        raise AssertionError("the budget's last look must end the case")

    n_slow, slow = run(2.0, 0.005)
    assert n_slow == 3 and any(r.verdict is Verdict.REGRESSED for r in slow)
    n_same, same = run(1.0, 0.005)
    assert n_same < budget.max_starts and all(r.verdict is Verdict.OK for r in same), [r.reason for r in same]
    n_noisy, noise = run(1.0, 0.2)
    assert n_noisy == 8 and not any(r.verdict is Verdict.REGRESSED for r in noise)


def test_the_planned_family_counts_every_level_of_sweeps_and_saturation() -> None:
    five = ("a", "b", "c", "d", "e")
    phases = [("c1", LoadConfig(profile="synchronous")), ("c4", LoadConfig(concurrency=4))]
    assert planned_rows(phases, five) == 10
    assert planned_rows([("", LoadConfig(profile="saturation", concurrency_levels=(1, 2, 4, 8)))], five) == 20
    assert planned_rows([("", LoadConfig(profile="sweep", sweep_rates=4))], ["a"]) == 6


def test_missing_corrupted_and_foreign_baselines_say_what_to_do(tmp_path: Path) -> None:
    gate = RegressionGate(tmp_path, HW)
    (row,) = gate.check("serving", CASE_ID, case([1.0, 1.0]))
    assert row.verdict is Verdict.NOT_COMPARED and "--update-baselines" in row.reason

    path = gate.record("serving", CASE_ID, case([1.0, 1.01, 0.99]))
    path.write_text(path.read_text()[:-40])  # a truncated file, as a crash mid-write by another tool leaves it
    with pytest.raises(BaselineError, match=str(path)):
        gate.check("serving", CASE_ID, case([1.0, 1.0]))

    gate.record("serving", CASE_ID, case([1.0, 1.01, 0.99]))
    doc = json.loads(path.read_text())
    doc["fingerprint"]["hardware_name"] = "AMD Instinct MI300X"
    path.write_text(json.dumps(doc))
    rows = gate.check("serving", CASE_ID, case([1.0, 1.01]))
    assert [r.verdict for r in rows] == [Verdict.NOT_COMPARED]
    assert "MI300X" in rows[0].reason
