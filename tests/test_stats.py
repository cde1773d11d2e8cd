"""Statistics of the gate: the Welch log-ratio test, Holm, the three-way rule, and its error rates by simulation.

The simulations use the shipped vectorized core (``welch_log``, ``holm_adjust_array``, ``verdict_codes``), which the
scalar ``compare``/``verdict`` path is checked against, so the rates below are the rates of the gate itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from servegate.stats import (
    DEFAULT_TOLERANCE,
    INCONCLUSIVE_CODE,
    OK_CODE,
    REGRESSED_CODE,
    Verdict,
    compare,
    estimate,
    holm_adjust,
    simulate_verdicts,
    starts_to_settle,
    verdict,
)

TRIALS = 2000  # each simulated session: 20 gated metrics; 2,000 sessions run in well under a second


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
    assert slower.ci_low < slower.ratio < slower.ci_high
    assert slower.p_worse < 0.01 < 0.99 < faster.p_worse


def test_welch_matches_scipy_on_logs() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(3, 0.05, 5), rng.lognormal(3.02, 0.2, 4)
    t = compare(a, b, "lower", alpha=0.1)
    ref = sps.ttest_ind(np.log(b), np.log(a), equal_var=False, alternative="greater")
    assert t.p_worse == pytest.approx(ref.pvalue, rel=1e-9)
    ci = sps.ttest_ind(np.log(b), np.log(a), equal_var=False).confidence_interval(0.9)
    assert (math.log(t.ci_low), math.log(t.ci_high)) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_constant_values_are_exact_not_nan() -> None:
    same = compare([5.0, 5.0], [5.0, 5.0], "lower")
    worse = compare([5.0, 5.0], [6.0, 6.0], "lower")
    assert same.p_worse == 1.0 and same.ci_high == pytest.approx(1.0)
    assert worse.p_worse == 0.0 and worse.ci_low == pytest.approx(1.2)


@pytest.mark.parametrize(
    ("base", "cur", "why"),
    [([1.0], [1.0, 2.0], "at least 2"), ([1.0, 0.0], [1.0, 2.0], "positive"), ([1.0, math.nan], [1, 2], "finite")],
)
def test_compare_refuses_what_it_cannot_test(base: list[float], cur: list[float], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        compare(base, cur, "lower")


def test_holm_matches_the_textbook_example() -> None:
    # Holm (1979)-style step-down: sorted p * (m - i), running max, cap 1; original order kept.
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm_adjust([]) == []


def test_rule_three_outcomes_and_their_boundaries() -> None:
    tight = [100.0, 100.5, 99.5, 100.2, 99.8]
    regressed = compare(tight, [x * 1.10 for x in tight], "lower")
    small = compare(tight, [x * 1.01 for x in tight], "lower")
    wide = compare([100, 80, 120], [105, 85, 125], "lower")
    assert verdict(regressed, regressed.p_worse) is Verdict.REGRESSED
    assert verdict(regressed, 0.2) is not Verdict.REGRESSED  # significant raw, not after Holm
    assert verdict(small, small.p_worse) is Verdict.OK  # real but within tolerance: non-inferiority shown
    assert verdict(small, small.p_worse, tolerance=0.001) is not Verdict.OK
    assert verdict(wide, wide.p_worse) is Verdict.INCONCLUSIVE


def test_starts_to_settle_is_consistent_with_the_rule() -> None:
    rng = np.random.default_rng(11)
    base = rng.lognormal(0, 0.03, 3)
    cur = rng.lognormal(math.log(1.02), 0.03, 3)
    t = compare(base, cur, "lower")
    assert verdict(t, t.p_worse) is Verdict.INCONCLUSIVE
    n = starts_to_settle(t)
    assert n is not None and n > 3
    # With n starts per arm at the same log mean difference and spread, the verdict is no longer INCONCLUSIVE.
    z = rng.standard_normal((2, n))
    z = (z - z.mean(axis=1, keepdims=True)) / z.std(axis=1, ddof=1, keepdims=True) * t.pooled_sd
    t_n = compare(np.exp(z[0]), np.exp(z[1] + t.log_ratio), "lower")
    assert verdict(t_n, t_n.p_worse) is not Verdict.INCONCLUSIVE
    edge = (1 + DEFAULT_TOLERANCE) * (1 - 1e-9)  # a hair inside the tolerance: only OK is reachable, never soon
    on_boundary = compare([1.0, 1.1], [1.0 * edge, 1.1 * edge], "lower")
    assert starts_to_settle(on_boundary) is None


def test_vectorized_rule_agrees_with_the_scalar_path() -> None:
    from servegate.stats import holm_adjust_array, verdict_codes, welch_log

    rng = np.random.default_rng(5)
    logs_b, logs_c = rng.normal(0, 0.03, (40, 5)), rng.normal(0.03, 0.03, (40, 5))
    d, _se, _df, p, _lo, hi = welch_log(logs_b, logs_c)
    codes = verdict_codes(d, hi, holm_adjust_array(p))
    tests = [compare(np.exp(b), np.exp(c), "lower") for b, c in zip(logs_b, logs_c, strict=True)]
    adjusted = holm_adjust([t.p_worse for t in tests])
    scalar = [verdict(t, pa) for t, pa in zip(tests, adjusted, strict=True)]
    names = {REGRESSED_CODE: Verdict.REGRESSED, OK_CODE: Verdict.OK, INCONCLUSIVE_CODE: Verdict.INCONCLUSIVE}
    assert [names[int(c)] for c in codes] == scalar
    assert len(set(scalar)) >= 2  # the sample exercises more than one branch


# ---- required error rates (issue 4), by simulation --------------------------------------------------------------


@pytest.mark.parametrize(("cov", "correlation"), [(0.01, 0.0), (0.05, 0.0), (0.10, 0.0), (0.10, 0.5), (0.30, 0.0)])
def test_family_wise_false_regressed_rate_at_most_alpha(cov: float, correlation: float) -> None:
    rng = np.random.default_rng(2024)
    codes = simulate_verdicts(rng, TRIALS, metrics=20, n=5, cov=cov, correlation=correlation)
    false_alarm = float((codes == REGRESSED_CODE).any(axis=1).mean())
    # Binomial sd at p = 0.05, 2000 trials is 0.005; 0.05 is the guarantee, allow no slack beyond it.
    assert false_alarm <= 0.05, f"A/A sessions with a false REGRESSED: {false_alarm:.3f}"


def test_without_holm_the_same_sessions_would_false_alarm() -> None:
    """The family-wise control is Holm's doing: 20 unadjusted tests at CoV 10% false-alarm far more often."""
    rng = np.random.default_rng(2024)
    codes = simulate_verdicts(rng, TRIALS, metrics=1, n=5, cov=0.10)
    per_metric = float((codes == REGRESSED_CODE).mean())
    assert 1 - (1 - per_metric) ** 20 > 0.2


def test_power_for_a_5_percent_slowdown_at_cov_1_percent_n5() -> None:
    rng = np.random.default_rng(7)
    codes = simulate_verdicts(rng, TRIALS, metrics=20, n=5, cov=0.01, slowdown=0.05, planted=1)
    power = float((codes[:, 0] == REGRESSED_CODE).mean())
    assert power >= 0.90, f"REGRESSED in {power:.3f} of sessions"
    assert float((codes[:, 1:] == REGRESSED_CODE).any(axis=1).mean()) <= 0.05  # the other 19 stay quiet


def test_noisy_underpowered_slowdown_is_inconclusive_not_ok() -> None:
    rng = np.random.default_rng(9)
    codes = simulate_verdicts(rng, TRIALS, metrics=20, n=3, cov=0.10, slowdown=0.05, planted=1)[:, 0]
    assert float((codes == INCONCLUSIVE_CODE).mean()) > 0.8
    assert float((codes == OK_CODE).mean()) < 0.05
