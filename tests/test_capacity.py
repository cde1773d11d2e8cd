"""Capacity search logic on a latency model with a known capacity; the real-vLLM check is suites/test_capacity.py."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from servegate.capacity import Limit, brute_force, parse_limits, search
from servegate.config import LoadConfig, ServerConfig
from servegate.gate import Monitor
from servegate.launch.base import StartupFacts
from servegate.regression import RegressionGate
from servegate.runner import CaseResult, StartResult
from servegate.sequential import Budget
from servegate.stats import Verdict
from servegate.suite import SuiteError, load_suite_file

LEVELS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


class Server:
    """p99 TTFT grows slowly until ``seqs`` requests fill the batch, then by a queue's worth per extra request."""

    def __init__(self, seqs: int, queue_ms: float = 400.0) -> None:
        self.seqs = seqs
        self.queue_ms = queue_ms
        self.measured: list[int] = []

    def __call__(self, c: int) -> dict[str, float]:
        self.measured.append(c)
        ttft = 50.0 + 2.0 * c + (self.queue_ms * (c - self.seqs) / self.seqs if c > self.seqs else 0.0)
        return {"ttft_p99_ms": ttft, "tpot_p99_ms": 10.0 + 0.5 * c, "success_rate": 1.0}


@pytest.mark.parametrize("seqs", [1, 2, 3, 5, 8, 11, 16, 20, 40, 64])
def test_search_finds_the_boundary_brute_force_finds_with_fewer_levels(seqs: int) -> None:
    limits = parse_limits([("ttft_p99_ms", 200.0), ("tpot_p99_ms", 40.0)], (50, 90, 99))
    server = Server(seqs)
    found = search(LEVELS, limits, server)
    reference = brute_force(LEVELS, limits, Server(seqs))
    assert (found.boundary, found.first_failing) == (reference.boundary, reference.first_failing)
    assert found.capacity == pytest.approx(reference.capacity)
    assert len(server.measured) <= 2 * math.ceil(math.log2(len(LEVELS))) < len(LEVELS)


def test_the_interpolated_capacity_falls_between_the_bracketing_levels_and_drops_with_a_smaller_batch() -> None:
    limits = (Limit("ttft_p99_ms", 200.0),)
    wide, narrow = search(LEVELS, limits, Server(16)), search(LEVELS, limits, Server(12))
    assert wide.boundary <= wide.capacity <= wide.first_failing
    # ttft(c) = 50 + 2c + 25(c - 16) crosses 200 at c = 20.4; at seqs 12: 50 + 2c + 33.3(c - 12) = 200 at c = 15.6
    assert wide.capacity == pytest.approx(20.37, abs=0.01)
    assert narrow.capacity == pytest.approx(15.57, abs=0.01)
    assert wide.derived()["capacity_at_slo"] > narrow.derived()["capacity_at_slo"]


def test_a_cliff_is_flagged_and_a_gentle_slope_is_not() -> None:
    limits = (Limit("ttft_p99_ms", 200.0),)
    cliff = search(LEVELS, limits, Server(16, queue_ms=4000.0))
    slope = search(LEVELS, limits, Server(16, queue_ms=100.0))
    assert cliff.cliff and cliff.cliff_factor >= 3
    assert not slope.cliff
    assert "CLIFF" in cliff.describe()


def test_censored_ends_and_failures() -> None:
    limits = (Limit("ttft_p99_ms", 200.0),)
    everything = search(LEVELS, limits, Server(10_000))
    assert everything.censored == "above" and everything.capacity == 64 and everything.first_failing is None
    nothing = search(LEVELS, (Limit("ttft_p99_ms", 10.0),), Server(16))
    assert nothing.censored == "below" and nothing.capacity == 0.0 and nothing.boundary == 0

    def failing_above_8(c: int) -> dict[str, float]:
        return {"ttft_p99_ms": 1.0, "success_rate": 1.0 if c <= 8 else 0.5}

    broken = search(LEVELS, limits, failing_above_8)
    assert (broken.boundary, broken.first_failing, broken.capacity) == (8, 12, 8.0)  # no latency crossed: no slope


def test_limits_follow_the_metrics_direction_and_reject_unknown_names() -> None:
    assert Limit("ttft_p99_ms", 100).holds(99) and not Limit("ttft_p99_ms", 100).holds(101)
    assert Limit("output_throughput", 100).holds(101) and not Limit("output_throughput", 100).holds(99)
    assert not Limit("ttft_p99_ms", 100).holds(math.nan)
    with pytest.raises(ValueError, match="ttft_p95_ms"):
        parse_limits([("ttft_p95_ms", 1.0)], (50, 99))
    with pytest.raises(ValueError, match="> 0"):
        parse_limits([("ttft_p99_ms", -1)], (50, 99))


def test_capacity_profile_needs_limits_and_levels() -> None:
    with pytest.raises(ValueError, match="slo_limits"):
        LoadConfig(profile="capacity", concurrency_levels=(1, 2))
    assert LoadConfig(profile="capacity", concurrency_levels=(1, 2), slo_limits=(("ttft_p99_ms", 1.0),)).id.startswith(
        "capacity"
    )


def test_suite_file_limits_are_parsed_and_checked(tmp_path) -> None:
    body = """
hardware: cpu
suites:
  capacity:
    servers: [{model: m}]
    loads: [{profile: capacity, concurrency_levels: [1, 2, 4], slo_limits: {ttft_p99_ms: 500, tpot_p99_ms: 50}}]
"""
    path = tmp_path / "s.yaml"
    path.write_text(body)
    (case,) = load_suite_file(path)
    assert case.load.slo_limits == (("tpot_p99_ms", 50.0), ("ttft_p99_ms", 500.0))
    path.write_text(body.replace("ttft_p99_ms", "ttft_p97_ms"))
    with pytest.raises(SuiteError, match=r"suites\.capacity\.loads\[0\]\.slo_limits: 'ttft_p97_ms'"):
        load_suite_file(path)


CPU_YAML = Path(__file__).resolve().parents[1] / "suites" / "cpu.yaml"


def _cpu_case():
    return next(c for c in load_suite_file(CPU_YAML) if c.suite == "capacity")


class BusyServer:
    """Medians of closed-loop users on ``seqs`` batch slots, one start on a busy 2-core machine: the start's speed
    and every level's speed vary (log-normal); a free slot still costs ~10 steps of TTFT (processes on a shared
    CPU wait for each other); a user above the slot count waits for a running request to end,
    (c - seqs) / seqs of a whole request (which TTFT shows and TPOT does not)."""

    def __init__(self, seqs: int, tokens: int, rng: np.random.Generator, start_sd=0.4, level_sd=0.3) -> None:
        self.seqs, self.tokens, self.rng, self.level_sd = seqs, tokens, rng, level_sd
        self.speed = rng.lognormal(0.0, start_sd)

    def __call__(self, c: int) -> dict[str, float]:
        step = self.speed * self.rng.lognormal(0.0, self.level_sd) * (12.0 + 3.0 * min(c, self.seqs))
        wait = self.tokens * step * (c - self.seqs) / self.seqs if c > self.seqs else 0.0
        return {"ttft_median_ms": 10 * step + wait, "tpot_median_ms": step, "success_rate": 1.0}


def _arm(seqs: int, rng: np.random.Generator, starts: int, case, noise: tuple[float, float]) -> CaseResult:
    """An arm's starts, each one capacity search of the CPU suite's case (its levels and limits)."""
    (name, load) = next((n, lv) for n, lv in case.steps if lv.profile == "capacity")
    limits = parse_limits(load.slo_limits, load.percentiles)
    results = []
    for i in range(starts):
        server = BusyServer(seqs, load.output_tokens, rng, *noise)
        found = search(load.concurrency_levels, limits, server, load.cliff_factor)
        derived = {f"{name}/{k}": v for k, v in found.derived().items()}
        results.append(StartResult(i, StartupFacts(vllm_version="test"), [], None, 0.0, derived=derived))
    return CaseResult(case.id, ServerConfig(model="m"), load, results)


def _ab_sessions(seqs_b: int, sessions: int, seed: int, noise: tuple[float, float]) -> tuple[Counter, Counter]:
    """Verdicts of capacity_at_slo for the CPU case's arms (8 slots vs ``seqs_b``), looking after every round as
    an A/B run does, until decided or the case's budget is spent; and how many starts per arm each session took."""
    case = _cpu_case()
    gate = RegressionGate(Path("unused"), "cpu", gated_metrics=case.gate_metrics)
    rng = np.random.default_rng(seed)
    verdicts, spent = Counter(), Counter()
    for _ in range(sessions):
        budget: Budget = case.restarts
        a, b = _arm(8, rng, budget.max_starts, case, noise), _arm(seqs_b, rng, budget.max_starts, case, noise)
        monitor = Monitor(budget, stop_on_regressed=False)
        for n in budget.looks:
            first = [CaseResult(r.case_id, r.server, r.load, r.starts[:n]) for r in (a, b)]
            monitor.look(n, gate.compare_arms("seqs2 vs seqs8", *first, case.suite, budget, 1))
            if monitor.done:
                break
        (row,) = monitor.final()
        assert row.metric.endswith("/capacity_at_slo")
        verdicts[row.verdict] += 1
        spent[n] += 1
    return verdicts, spent


@pytest.mark.parametrize(("noise", "found", "at_first_look"), [((0.2, 0.15), 0.97, 0.8), ((0.4, 0.3), 0.75, 0.45)])
def test_the_cpu_suites_planted_change_is_regressed_on_a_busy_machine(noise, found, at_first_look) -> None:
    """Two slots instead of eight cut capacity at the suite's SLO about threefold: with start-to-start and
    level-to-level log-sds of 0.2 and 0.15 it reads REGRESSED nearly always, mostly after the first round of two
    starts per arm; twice that noise (a machine shared with other jobs) still mostly, the third round paying."""
    verdicts, spent = _ab_sessions(seqs_b=2, sessions=200, seed=15, noise=noise)
    assert verdicts[Verdict.REGRESSED] >= found * 200, verdicts
    assert spent[2] >= at_first_look * 200, spent


@pytest.mark.parametrize("noise", [(0.2, 0.15), (0.4, 0.3)])
def test_the_cpu_suites_capacity_gate_finds_nothing_in_an_a_a_run(noise) -> None:
    """The same server on both arms: a finding either way is a false one, at most the 5% two-sided alpha."""
    verdicts, _ = _ab_sessions(seqs_b=8, sessions=200, seed=16, noise=noise)
    assert verdicts[Verdict.REGRESSED] + verdicts[Verdict.IMPROVED] <= 0.05 * 200, verdicts
