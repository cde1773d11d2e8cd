"""Statistics over independent server starts: the estimate of one condition and the comparison of two.

A server start is the unit of replication (seed 003: restart-to-restart CoV dominates request-to-request noise),
so every interval here is a t-interval over per-start values with df = n - 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class Estimate:
    n: int
    mean: float
    sd: float
    cov: float
    ci_low: float
    ci_high: float


def estimate(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Mean with a two-sided t confidence interval; with one value the interval is unbounded, not zero-width."""
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    if n == 0:
        raise ValueError("estimate() needs at least one value")
    mean = float(x.mean())
    if n == 1:
        return Estimate(1, mean, math.nan, math.nan, -math.inf, math.inf)
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    cov = sd / abs(mean) if mean else math.nan
    return Estimate(n, mean, sd, cov, mean - half, mean + half)


# --------------------------------------------------------------------------------------------------------------
# Comparison of two conditions (issue 4): ratio "> 1 means worse", Welch t on logs, Holm, three-way verdict.
# --------------------------------------------------------------------------------------------------------------

DEFAULT_ALPHA = 0.05
# 3%, not 5%: at the tolerance itself the point estimate exceeds 1 + delta only half the time, so a gate meant to
# catch a 5% slowdown at CoV 1% and n = 5 with >= 90% power needs delta below 5% (bench/gate_power.py: 3% gives
# ~100% power there, 4% ~93%, 5% ~50%).
DEFAULT_TOLERANCE = 0.03
MAX_SUGGESTED_STARTS = 200


class Verdict(StrEnum):
    """Outcome of one gated comparison. Only REGRESSED fails the build by default."""

    REGRESSED = "REGRESSED"
    OK = "OK"
    INCONCLUSIVE = "INCONCLUSIVE"
    NOT_COMPARED = "NOT COMPARED"  # other hardware, missing metric, fewer than two starts, non-positive values


@dataclass(frozen=True)
class RatioTest:
    """Current vs baseline for one metric, oriented so that ``ratio > 1`` means *worse*.

    ``log_ratio`` and ``se`` are on the natural-log scale (Welch: se = sqrt(s_b²/n_b + s_c²/n_c) of log values),
    ``df`` is the Welch-Satterthwaite df, ``p_worse`` the one-sided p-value of H0: ratio <= 1 (unadjusted),
    ``ci_low``/``ci_high`` the two-sided (1 - alpha) interval of the ratio, ``pooled_sd`` the pooled log sd
    used for the sample-size suggestion.
    """

    direction: str
    n_baseline: int
    n_current: int
    baseline_mean: float
    current_mean: float
    log_ratio: float
    se: float
    df: float
    p_worse: float
    ci_low: float
    ci_high: float
    pooled_sd: float
    alpha: float

    @property
    def ratio(self) -> float:
        return math.exp(self.log_ratio)


def _log_values(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.size and (not np.all(np.isfinite(x)) or np.any(x <= 0)):
        raise ValueError("ratio comparison needs finite positive values (logs of them)")
    return np.log(x)


def welch_log(
    log_baseline: np.ndarray, log_current: np.ndarray, alpha: float = DEFAULT_ALPHA
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Welch's t on log values, vectorized over leading axes (samples on the last axis), oriented "> 0 is worse"
    already by the caller. Returns (log_ratio, se, df, p_worse, log_ci_low, log_ci_high).

    One implementation for the gate and for the simulations in tests and ``bench/gate_power.py``, so what is
    simulated is what ships. Where se = 0 (both sides constant) the difference is exact: p is 0 or 1, the CI a
    point.
    """
    nb, nc = log_baseline.shape[-1], log_current.shape[-1]
    d = log_current.mean(axis=-1) - log_baseline.mean(axis=-1)
    vb_n = log_baseline.var(axis=-1, ddof=1) / nb
    vc_n = log_current.var(axis=-1, ddof=1) / nc
    se2 = vb_n + vc_n
    se = np.sqrt(se2)
    exact = se2 <= 0
    denom = np.where(exact, 1.0, vb_n**2 / (nb - 1) + vc_n**2 / (nc - 1))
    df = np.where(exact, float(nb + nc - 2), np.where(denom > 0, se2**2 / np.where(denom > 0, denom, 1.0), nb + nc - 2))
    safe_se = np.where(exact, 1.0, se)
    p = np.where(exact, np.where(d > 0, 0.0, 1.0), sps.t.sf(d / safe_se, df))
    half = np.where(exact, 0.0, sps.t.ppf(1 - alpha / 2, df) * safe_se)
    return d, se, df, p, d - half, d + half


def compare(
    baseline: Sequence[float], current: Sequence[float], direction: str, alpha: float = DEFAULT_ALPHA
) -> RatioTest:
    """Welch's t on log values: multiplicative noise (CoV) becomes additive, and the ratio's CI is exp of a t-CI.

    ``direction`` is ``"lower"`` (latency: lower is better) or ``"higher"`` (throughput); for ``"higher"`` the
    ratio is baseline/current so that it, too, reads "> 1 means worse". Needs >= 2 values per side.
    """
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction must be 'lower' or 'higher', got {direction!r}")
    lb, lc = _log_values(baseline), _log_values(current)
    nb, nc = int(lb.size), int(lc.size)
    if nb < 2 or nc < 2:
        raise ValueError(f"need at least 2 starts per side for a t-interval, got baseline {nb}, current {nc}")
    if direction == "higher":  # worse = smaller: compare the negated logs, so "> 0" still means worse
        lb, lc = -lb, -lc
    d, se, df, p, lo, hi = (float(v) for v in welch_log(lb, lc, alpha))
    vb, vc = float(lb.var(ddof=1)), float(lc.var(ddof=1))
    pooled_sd = math.sqrt(((nb - 1) * vb + (nc - 1) * vc) / (nb + nc - 2))
    return RatioTest(
        direction=direction,
        n_baseline=nb,
        n_current=nc,
        baseline_mean=float(np.mean(baseline)),
        current_mean=float(np.mean(current)),
        log_ratio=d,
        se=se,
        df=df,
        p_worse=p,
        ci_low=math.exp(lo),
        ci_high=math.exp(hi),
        pooled_sd=pooled_sd,
        alpha=alpha,
    )


def holm_adjust_array(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values along the last axis (valid under any dependence between the tests).

    Sorted ascending, p_(i) is multiplied by (m - i + 1); a running maximum keeps the order; capped at 1.
    """
    p = np.asarray(p, dtype=float)
    m = p.shape[-1]
    if m == 0:
        return p.copy()
    order = np.argsort(p, axis=-1, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * np.take_along_axis(p, order, axis=-1))
    adjusted = np.maximum.accumulate(scaled, axis=-1)
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return out


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values of one family, in the given order."""
    return [float(v) for v in holm_adjust_array(np.asarray(p_values, dtype=float))]


# Codes of verdict_codes(), in Verdict order for the vectorized path.
REGRESSED_CODE, OK_CODE, INCONCLUSIVE_CODE = 0, 1, 2


def verdict_codes(
    log_ratio: np.ndarray,
    log_ci_high: np.ndarray,
    p_adjusted: np.ndarray,
    tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = DEFAULT_ALPHA,
) -> np.ndarray:
    """The decision rule on arrays (see ``verdict``): 0 REGRESSED, 1 OK, 2 INCONCLUSIVE."""
    bound = math.log1p(tolerance)
    regressed = (np.asarray(p_adjusted) <= alpha) & (np.asarray(log_ratio) > bound)
    ok = np.asarray(log_ci_high) <= bound
    return np.where(regressed, REGRESSED_CODE, np.where(ok, OK_CODE, INCONCLUSIVE_CODE))


def verdict(test: RatioTest, p_adjusted: float, tolerance: float = DEFAULT_TOLERANCE) -> Verdict:
    """The decision rule (design.md), given the Holm-adjusted one-sided p-value of H0 "ratio <= 1":

    - REGRESSED when H0 "ratio <= 1" is rejected at the Holm-adjusted level (``p_adjusted <= alpha``) *and* the
      point estimate of the ratio exceeds ``1 + tolerance``: the change is both real (family-wise error over
      every gate of the session <= alpha) and larger than what we agreed to tolerate.
    - OK when the upper end of the two-sided (1 - alpha) CI is <= 1 + tolerance: non-inferiority within the
      tolerance is shown (an improvement, no change, or a real change smaller than the tolerance).
    - INCONCLUSIVE otherwise: the data allow both a harmless and a harmful change; more starts decide
      (``starts_to_settle``).

    The two cannot collide: REGRESSED needs the point estimate above 1 + tolerance, so the CI's upper end is too.
    """
    code = int(
        verdict_codes(
            np.array(test.log_ratio), np.array(math.log(test.ci_high)), np.array(p_adjusted), tolerance, test.alpha
        )
    )
    return (Verdict.REGRESSED, Verdict.OK, Verdict.INCONCLUSIVE)[code]


def starts_to_settle(
    test: RatioTest,
    tolerance: float = DEFAULT_TOLERANCE,
    m: int = 1,
    max_n: int = MAX_SUGGESTED_STARTS,
) -> int | None:
    """Starts per arm (both arms equal) after which the verdict would no longer be INCONCLUSIVE, assuming the
    observed ratio and the observed (pooled) spread stay as they are. Always more than the starts already made
    (the question is how many to run *now*), planned with Welch's smallest df (n - 1) so the suggestion does not
    fall short when the two arms' spreads differ.

    An estimate above 1 + tolerance settles as REGRESSED once its one-sided t-test passes the strictest Holm
    level alpha/m (``m`` = gated comparisons in the session, the conservative case); an estimate at or below it
    settles as OK once the CI's upper end drops to 1 + tolerance. ``None`` when more than ``max_n`` starts
    would be needed (an estimate sitting on the tolerance boundary never settles).
    """
    bound = math.log1p(tolerance)
    d, s = test.log_ratio, test.pooled_sd
    for n in range(max(test.n_baseline, test.n_current) + 1, max_n + 1):
        se = s * math.sqrt(2.0 / n)
        df = n - 1  # Welch's df lies between n - 1 and 2n - 2: plan with the conservative end
        if se == 0.0:
            return n
        if d > bound:
            if d / se > float(sps.t.ppf(1 - test.alpha / max(m, 1), df)):
                return n
        elif d + float(sps.t.ppf(1 - test.alpha / 2, df)) * se <= bound:
            return n
    return None


def simulate_verdicts(
    rng: np.random.Generator,
    trials: int,
    metrics: int,
    n: int,
    cov: float,
    slowdown: float = 0.0,
    planted: int = 0,
    tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = DEFAULT_ALPHA,
    correlation: float = 0.0,
) -> np.ndarray:
    """Verdict codes (trials × metrics) of simulated gate sessions: ``metrics`` gated comparisons per session,
    ``n`` starts per arm, log-normal per-start noise with coefficient of variation ``cov``, and the first
    ``planted`` metrics of the current arm made worse by ``slowdown`` (1.05 × for 0.05). ``correlation`` shares
    part of each start's noise across its metrics (a slow start is slow everywhere). Holm runs over the whole
    session, as the gate does. Uses the shipped ``welch_log``/``holm_adjust_array``/``verdict_codes``.
    """
    sigma = math.sqrt(math.log1p(cov**2))

    def draw() -> np.ndarray:
        common = rng.standard_normal((trials, 1, n))
        own = rng.standard_normal((trials, metrics, n))
        return sigma * (math.sqrt(correlation) * common + math.sqrt(1 - correlation) * own)

    log_b, log_c = draw(), draw()
    log_c[:, :planted, :] += math.log1p(slowdown)
    d, _se, _df, p, _lo, hi = welch_log(log_b, log_c, alpha)
    return verdict_codes(d, hi, holm_adjust_array(p), tolerance, alpha)
