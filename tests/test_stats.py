"""Statistics of the gate: the Welch log-ratio test, paired rounds, the sequential boundaries, and the error rates
of whole simulated sessions (4 configs × 6 levels × 5 metrics = 120 gated rows, budget 3..20 starts per arm).

The simulations run the shipped code (``levels_at``, ``decide``, the look loop of ``simulate_sessions``), which the
scalar gate path (``servegate.gate.evaluate``) is checked against in tests/test_gate.py, so these are the rates of
the gate itself. 2,000 seeded sessions per property.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from servegate.sequential import (
    IMPROVED_CODE,
    INCONCLUSIVE_CODE,
    OK_CODE,
    REGRESSED_CODE,
    Budget,
    BudgetError,
    LookLevels,
    SimulatedSessions,
    critical_t,
    decide,
    interval,
    levels_at,
    nominal_levels,
    simulate_sessions,
)
from servegate.stats import compare, estimate

SESSIONS = 2000
CONFIGS, ROWS = 4, 30  # 6-level sweeps × 5 metrics per config
BUDGET = Budget(3, 20)


def test_estimate_keeps_its_contract() -> None:
    e = estimate([10.0, 12.0, 11.0])
    assert e.n == 3 and e.mean == pytest.approx(11.0)
    assert e.ci_low < 11.0 < e.ci_high
    assert estimate([5.0]).ci_high == math.inf


def test_ratio_is_oriented_so_that_above_one_is_worse() -> None:
    slower = compare([100, 101, 99], [110, 111, 109], "lower")  # latency went up
    less = compare([100, 101, 99], [90, 91, 89], "higher")  # throughput went down
    faster = compare([100, 101, 99], [90, 91, 89], "lower")  # latency went down
    assert slower.ratio > 1.05 and less.ratio > 1.05 and faster.ratio < 0.95
    assert less.ratio == pytest.approx(np.exp(np.log([100, 101, 99]).mean() - np.log([90, 91, 89]).mean()))


def test_welch_matches_scipy_on_logs() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(3, 0.05, 5), rng.lognormal(3.02, 0.2, 4)
    t = compare(a, b, "lower")
    ref = sps.ttest_ind(np.log(b), np.log(a), equal_var=False)
    assert t.log_ratio / t.se == pytest.approx(ref.statistic, rel=1e-9)
    assert t.df == pytest.approx(ref.df, rel=1e-9)
    assert t.pairing == "unpaired"


def test_paired_rounds_remove_drift_shared_by_the_arms_of_a_round() -> None:
    rng = np.random.default_rng(8)
    drift = np.log(np.linspace(1.0, 1.4, 8))  # the machine slows down over the session, both arms alike
    a = np.exp(drift + rng.normal(0, 0.005, 8))
    b = np.exp(drift + 0.04 + rng.normal(0, 0.005, 8))
    paired = compare(a, b, "lower", paired=True)
    assert paired.pairing == "paired" and paired.df == 7
    assert paired.se < compare(a, b, "lower").se / 5
    assert paired.ratio == pytest.approx(math.exp(np.mean(np.log(b) - np.log(a))))
    with pytest.raises(ValueError, match="as many starts"):
        compare(a, b[:5], "lower", paired=True)


@pytest.mark.parametrize(
    ("base", "cur", "why"),
    [([1.0], [1.0, 2.0], "at least 2"), ([1.0, 0.0], [1.0, 2.0], "positive"), ([1.0, math.nan], [1, 2], "finite")],
)
def test_compare_refuses_what_it_cannot_test(base: list[float], cur: list[float], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        compare(base, cur, "lower")


def test_budget_parses_cli_and_suite_forms_and_refuses_the_rest() -> None:
    assert Budget.parse("auto") == Budget(3, 12)
    assert Budget.parse("5") == Budget(5, 5) and not Budget(5, 5).sequential
    assert Budget.parse("3:20").looks == tuple(range(3, 21))
    assert Budget.from_suite({"min": 3, "max": 12}, "f: suites.x") == Budget(3, 12)
    assert Budget.from_suite(2, "w") == Budget(2, 2)
    for bad in ("0", "5:3", "three", "3-5"):
        with pytest.raises(BudgetError, match="restarts"):
            Budget.parse(bad)
    with pytest.raises(BudgetError, match=r"f: suites\.x\.restarts"):
        Budget.from_suite({"min": 4, "max": 2}, "f: suites.x")
    with pytest.raises(BudgetError, match="min: 3"):
        Budget.from_suite({"most": 4}, "w")


def test_boundaries_spend_exactly_the_error_budget_over_the_looks() -> None:
    """Brownian paths monitored at every look cross some boundary with probability ~total (not a union bound:
    the looks are correlated), and a fixed design is the plain one-sided level."""
    looks = tuple(range(3, 13))
    levels = np.array(nominal_levels(looks, 12, 0.05))
    rng = np.random.default_rng(1)
    paths = rng.standard_normal((200_000, 12)).cumsum(axis=1)[:, 2:] / np.sqrt(np.arange(3, 13))
    crossed = float((paths > sps.norm.isf(levels)).any(axis=1).mean())
    assert crossed == pytest.approx(0.05, abs=0.003)
    assert levels.sum() > 0.05  # each look's nominal level exceeds a union bound's share
    assert nominal_levels((5,), 5, 0.01) == pytest.approx((0.01,))
    assert levels_at(5, Budget(5, 5), family_size=10, alpha=0.05).significance == pytest.approx(0.005)
    assert levels_at(5, Budget(5, 5), 10, 0.05, two_sided=True).significance == pytest.approx(0.0025)


def test_interpolated_critical_values_are_exact_enough() -> None:
    df = np.geomspace(1, 3000, 5000)
    for level in (1e-7, 1e-4, 0.05):
        assert np.max(np.abs(critical_t(level, df) / sps.t.isf(level, df) - 1)) < 1e-4


def test_interval_agrees_with_the_decision() -> None:
    rng = np.random.default_rng(5)
    look = LookLevels(5, 0.001, 0.02)
    bound = math.log1p(0.03)
    for _ in range(300):
        d, se, df = rng.normal(0.03, 0.03), abs(rng.normal(0.012, 0.005)) + 1e-4, rng.uniform(2, 8)
        code = int(decide(d, se, df, look, 0.03))
        lo, hi = interval(d, se, df, look)
        assert (code == REGRESSED_CODE) == (lo > 0 and d > bound)
        if code != REGRESSED_CODE:
            assert (code == OK_CODE) == (hi <= bound + 1e-12)


def _sessions(seed: int, cov: float, slowdowns: tuple[float, ...] = (), **kw: object):
    return simulate_sessions(
        np.random.default_rng(seed), SESSIONS, CONFIGS, ROWS, cov, slowdowns, BUDGET, **kw  # type: ignore[arg-type]
    )


# ---- required error rates, by simulation of whole sessions ------------------------------------------------------


@pytest.mark.parametrize("cov", [0.01, 0.05, 0.10])
def test_a_a_sessions_are_falsely_regressed_at_most_alpha(cov: float) -> None:
    sim = _sessions(2024, cov)
    false_alarm = float((sim.codes == REGRESSED_CODE).any(axis=(1, 2)).mean())
    assert false_alarm <= 0.05, f"A/A sessions with a false REGRESSED: {false_alarm:.3f}"
    if cov == 0.01:  # a quiet machine settles OK early instead of spending the budget
        assert (sim.codes == OK_CODE).mean() > 0.99 and sim.starts.mean() < 10


def test_without_the_family_correction_the_same_sessions_would_false_alarm() -> None:
    """The family-wise control is the Bonferroni split's doing: each row alone at alpha would false-alarm."""
    sim = simulate_sessions(np.random.default_rng(2024), SESSIONS, 1, 1, 0.10, (), BUDGET)
    per_row = float((sim.codes == REGRESSED_CODE).mean())
    assert 1 - (1 - per_row) ** (CONFIGS * ROWS) > 0.5


def test_5_percent_slowdown_at_cov_4_percent_is_regressed_within_twelve_starts_on_average() -> None:
    sim = _sessions(7, 0.04, (0.05,))
    caught = (sim.codes[:, 0] == REGRESSED_CODE).any(axis=1)
    assert caught.mean() >= 0.80, f"slowed config REGRESSED in {caught.mean():.3f} of sessions"
    assert sim.starts[:, 0].mean() <= 12
    assert (sim.codes[:, 1:] == REGRESSED_CODE).any(axis=(1, 2)).mean() <= 0.05  # the unchanged configs stay quiet


def test_20_percent_slowdown_at_cov_10_percent_is_regressed() -> None:
    sim = _sessions(9, 0.10, (0.20,), correlation=0.5)  # a slow start is slow on every row of it
    assert (sim.codes[:, 0] == REGRESSED_CODE).any(axis=1).mean() >= 0.90


def test_2x_slowdown_at_cov_5_percent_is_regressed_at_the_first_look() -> None:
    sim = _sessions(11, 0.05, (1.0,))
    first = ((sim.codes[:, 0] == REGRESSED_CODE) & (sim.decided_at[:, 0] == BUDGET.min_starts)).any(axis=1)
    assert first.mean() >= 0.95
    assert sim.starts[:, 0].mean() < BUDGET.min_starts + 0.2


def test_paired_ablations_keep_the_error_rate_and_decide_more_under_drift() -> None:
    """A/B ablations run Welch and paired rounds at half the level each. Picking whichever interval is narrower
    after seeing the data would be a union of two tests at the full level: twice the false findings."""

    def findings(sim: SimulatedSessions) -> np.ndarray:
        return (sim.codes == REGRESSED_CODE) | (sim.codes == IMPROVED_CODE)

    aa = _sessions(17, 0.05, (), paired=True, two_sided=True, stop_on_regressed=False)
    # <= alpha up to the t-approximation of the boundaries at 2 df and the sampling error (sd 0.005)
    assert findings(aa).any(axis=(1, 2)).mean() <= 0.055
    drift = {"two_sided": True, "stop_on_regressed": False, "drift": 0.10}
    with_pairs = _sessions(19, 0.03, (0.10,), paired=True, **drift)
    without = _sessions(19, 0.03, (0.10,), paired=False, **drift)
    assert findings(with_pairs)[:, 0].mean() > 2 * findings(without)[:, 0].mean()


def test_ok_is_rarely_issued_for_a_slowdown_at_the_tolerance() -> None:
    sim = _sessions(13, 0.04, (0.03,) * CONFIGS, stop_on_regressed=False)
    assert (sim.codes == OK_CODE).mean() <= 0.05
    noisy = _sessions(15, 0.10, (0.05,), stop_on_regressed=False)  # underpowered: open, not OK
    assert (noisy.codes[:, 0] == OK_CODE).mean() < 0.05
    assert (noisy.codes[:, 0] == INCONCLUSIVE_CODE).mean() > 0.5
