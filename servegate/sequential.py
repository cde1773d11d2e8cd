"""Sequential restarts: a budget of server starts, a look after every round, error rates that hold over the looks.

The design is a group-sequential test with alpha spending (Lan & DeMets 1983; Jennison & Turnbull, *Group
Sequential Methods*, ch. 7 for the equivalence side):

- Looks are taken at n = min, min + 1, ..., max starts per arm; the information fraction of a look is n / max
  (fixed in advance, never data-driven, which is what makes spending valid when a case stops early).
- Two boundaries, each with its own spending function, each computed *non-binding* (ignoring the other):
  the **significance** boundary (REGRESSED, and IMPROVED for two-sided comparisons) spends ``alpha / M`` per gated
  row, M = every gated row of the session (Bonferroni over rows, so the session's family-wise false REGRESSED rate
  is <= alpha whatever the rows' dependence); the **equivalence** boundary (OK) spends ``ok_error`` per row, the
  chance of calling a row OK although it is really ``1 + tolerance`` or worse.
- Boundaries come from the exact joint law of the repeated z-statistics (Armitage-McPherson-Rowe recursion on a
  grid), then each is used as a nominal one-sided level for the Welch t-test at that look (the usual t-conversion).
- Spending is Hwang-Shih-DeCani with gamma = 1 (between Pocock and O'Brien-Fleming): early looks get enough
  level that a large change is caught at the first look with three starts, and the last look still keeps most of
  it. O'Brien-Fleming-type spending leaves the first looks at ~1e-7 per row, where a t-test with 4 df cannot
  reach; Pocock-type spends too much early for a 5% change to be caught later (bench/gate_power.py prints both).

A row that crosses a boundary keeps its verdict; the others are looked at again after the next round. A case stops
when every gated row is decided or when the budget is spent (the open rows are then INCONCLUSIVE).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, special
from scipy import stats as sps

DEFAULT_MIN_STARTS = 3
DEFAULT_MAX_STARTS = 12
DEFAULT_OK_ERROR = 0.05  # chance of OK for a row that is really 1 + tolerance worse
SPENDING_GAMMA = 1.0


class BudgetError(ValueError):
    """A restarts budget that cannot be run; the message says what was given and what is allowed."""


@dataclass(frozen=True)
class Budget:
    """Server starts per arm: at least ``min_starts`` before the first look, never more than ``max_starts``.

    ``min_starts == max_starts`` is a fixed design: one look, with the whole error budget spent there.
    """

    min_starts: int = DEFAULT_MIN_STARTS
    max_starts: int = DEFAULT_MAX_STARTS

    def __post_init__(self) -> None:
        if not (isinstance(self.min_starts, int) and isinstance(self.max_starts, int)):
            raise BudgetError(f"restarts: min and max must be integers, got {self.min_starts!r}, {self.max_starts!r}")
        if self.min_starts < 1 or self.max_starts < self.min_starts:
            raise BudgetError(f"restarts: need 1 <= min <= max, got min {self.min_starts}, max {self.max_starts}")

    @property
    def looks(self) -> tuple[int, ...]:
        """Starts per arm at which the gate looks (a t-test needs two per arm, so never before n = 2)."""
        return tuple(range(max(self.min_starts, 2), self.max_starts + 1)) or (self.max_starts,)

    @property
    def sequential(self) -> bool:
        return self.max_starts > self.min_starts

    def __str__(self) -> str:
        return f"{self.min_starts}" if not self.sequential else f"{self.min_starts}..{self.max_starts}"

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``auto`` (3..12), ``N`` (fixed) or ``MIN:MAX``, as given to ``--restarts``."""
        text = str(text).strip()
        if text == "auto":
            return cls()
        fixed = re.fullmatch(r"(\d+)", text)
        ranged = re.fullmatch(r"(\d+):(\d+)", text)
        try:
            if fixed:
                return cls(int(fixed.group(1)), int(fixed.group(1)))
            if ranged:
                return cls(int(ranged.group(1)), int(ranged.group(2)))
        except BudgetError as exc:
            raise BudgetError(f"--restarts {text!r}: {exc}") from None
        raise BudgetError(f"--restarts {text!r}: expected auto, N (fixed) or MIN:MAX (e.g. 3:12)")

    @classmethod
    def from_suite(cls, value: object, where: str) -> Budget:
        """A suite file's ``restarts:``: an integer (fixed) or ``{min: 3, max: 12}``."""
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise BudgetError(f"{where}.restarts: expected an integer >= 1, got {value!r}")
            return cls(value, value)
        if isinstance(value, dict) and set(value) <= {"min", "max"} and value:
            low = value.get("min", DEFAULT_MIN_STARTS)
            high = value.get("max", max(low, DEFAULT_MAX_STARTS) if isinstance(low, int) else DEFAULT_MAX_STARTS)
            try:
                return cls(low, high)
            except BudgetError as exc:
                raise BudgetError(f"{where}.{exc}") from exc
        raise BudgetError(f"{where}.restarts: expected an integer >= 1 or {{min: 3, max: 12}}, got {value!r}")


def spent(fraction: float | np.ndarray, total: float, gamma: float | None = None) -> np.ndarray:
    """Hwang-Shih-DeCani spending: the share of ``total`` error allowed up to information ``fraction``."""
    gamma = SPENDING_GAMMA if gamma is None else gamma
    t = np.clip(np.asarray(fraction, dtype=float), 0.0, 1.0)
    if gamma == 0:
        return total * t
    return total * (1 - np.exp(-gamma * t)) / (1 - math.exp(-gamma))


@lru_cache(maxsize=256)
def nominal_levels(looks: tuple[int, ...], max_starts: int, total: float) -> tuple[float, ...]:
    """One-sided nominal levels, one per look, such that a z-statistic monitored at every look crosses any of them
    with probability exactly ``total`` under the null (the spending increments, exactly, not a union bound).

    Scores S_k = Z_k sqrt(t_k) are Brownian motion at information t_k = n_k / max; the density of the paths
    that have not crossed is carried look to look on a grid and the next boundary solved for its increment.
    """
    fractions = np.array([n / max_starts for n in looks], dtype=float)
    targets = np.diff(np.concatenate([[0.0], spent(fractions, total)]))
    grid = np.linspace(-10.0, 10.0, 1001)  # score scale (sd <= 1): 10 sd each side, >= 11 points per kernel sd
    step = grid[1] - grid[0]
    levels: list[float] = []
    density: np.ndarray | None = None  # of paths still below every boundary, on ``grid``
    previous_t = 0.0
    for t, target in zip(fractions, targets, strict=True):
        spread = math.sqrt(t - previous_t)
        mass = None if density is None else density * step

        def excess(c: float, mass: np.ndarray | None = mass, spread: float = spread, target: float = target) -> float:
            """P(not crossed before, crossing now at c) - target."""
            if mass is None:
                return float(special.ndtr(-c / spread)) - target
            return float(mass @ special.ndtr((grid - c) / spread)) - target

        c = math.inf if target <= 0 else float(optimize.brentq(excess, -10.0, 40.0, xtol=1e-10))
        levels.append(float(special.ndtr(-c / math.sqrt(t))))
        if density is None:  # density of the paths that have not crossed yet, carried to this look
            new = np.exp(-0.5 * (grid / spread) ** 2) / (spread * math.sqrt(2 * math.pi))
        else:
            offsets = np.arange(-(grid.size - 1), grid.size) * step  # the kernel depends on s - u only
            kernel = np.exp(-0.5 * (offsets / spread) ** 2) / (spread * math.sqrt(2 * math.pi))
            new = np.convolve(density * step, kernel, mode="valid")
        density = np.where(grid < c, new, 0.0)
        previous_t = t
    return tuple(levels)


@dataclass(frozen=True)
class LookLevels:
    """The nominal one-sided levels of one look: ``significance`` for REGRESSED (and IMPROVED), ``equivalence``
    for OK. A fixed design has one look and the whole budget there."""

    n: int
    significance: float
    equivalence: float


def levels_at(
    n: int, budget: Budget, family_size: int, alpha: float, ok_error: float = DEFAULT_OK_ERROR, two_sided: bool = False
) -> LookLevels:
    """Levels for the look at ``n`` starts per arm. ``two_sided`` halves the significance level (a change in
    either direction is a finding); the equivalence level is per side already."""
    looks = budget.looks
    n_look = min(max(n, looks[0]), looks[-1])
    index = looks.index(n_look)
    per_row = alpha / max(family_size, 1) / (2 if two_sided else 1)
    return LookLevels(
        n,
        nominal_levels(looks, budget.max_starts, per_row)[index],
        nominal_levels(looks, budget.max_starts, ok_error)[index],
    )


# Verdict codes of the vectorized rule (Verdict order in servegate.stats).
REGRESSED_CODE, OK_CODE, INCONCLUSIVE_CODE, IMPROVED_CODE = 0, 1, 2, 3


def decide(
    log_ratio: np.ndarray,
    se: np.ndarray,
    df: np.ndarray,
    levels: LookLevels,
    tolerance: float,
    two_sided: bool = False,
) -> np.ndarray:
    """The rule of one look on arrays of Welch results (``log_ratio`` oriented "> 0 is worse"):

    - REGRESSED: "ratio <= 1" rejected at the look's significance level *and* the estimate beyond 1 + tolerance;
    - IMPROVED (two-sided only): "ratio >= 1" rejected at that level and the estimate below 1 / (1 + tolerance);
    - OK: "ratio >= 1 + tolerance" rejected at the look's equivalence level (and, two-sided, "ratio <=
      1 / (1 + tolerance)" too: the arms are equivalent within the tolerance);
    - INCONCLUSIVE otherwise (look again after the next round, or the budget is spent).

    The tolerance stays out of the REGRESSED null on purpose: with H0 "ratio <= 1 + tolerance" a 5% slowdown
    sits 2% from the null, and catching it at CoV 4% would take ~150 starts per arm. The estimate guard keeps
    changes smaller than the tolerance from being called REGRESSED in all but borderline cases.
    """
    bound = math.log1p(tolerance)
    d, se, df = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (log_ratio, se, df)))
    sig, eq = critical_t(levels.significance, df), critical_t(levels.equivalence, df)

    def rejects(distance: np.ndarray, crit: np.ndarray) -> np.ndarray:
        """Is the true log ratio further than ``distance`` (> 0) from the estimate's side, at level ``crit``?
        se = 0 (constant values on both arms) is an exact difference: rejected when the distance is positive."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(se > 0, distance / np.where(se > 0, se, 1.0) >= crit, distance > 0)

    regressed = rejects(d, sig) & (d > bound)  # H0 ratio <= 1
    improved = rejects(-d, sig) & (d < -bound) if two_sided else np.zeros(d.shape, dtype=bool)  # H0 ratio >= 1
    ok = rejects(bound - d, eq)  # H0 ratio >= 1 + tolerance
    if two_sided:
        ok &= rejects(d + bound, eq)  # H0 ratio <= 1 / (1 + tolerance)
    return np.where(
        regressed, REGRESSED_CODE, np.where(improved, IMPROVED_CODE, np.where(ok, OK_CODE, INCONCLUSIVE_CODE))
    )


_DF_GRID = np.geomspace(1.0, 1e4, 2000)


@lru_cache(maxsize=1024)
def _critical_table(level: float) -> np.ndarray:
    return np.log(sps.t.isf(level, _DF_GRID))  # levels < 0.5: positive; log-log is nearly straight


def critical_t(level: float, df: np.ndarray) -> np.ndarray:
    """The one-sided t critical value at ``level`` for each df: interpolated in log df from 2,000 exact values
    (relative error < 1e-4), because the gate's simulations need millions of them per second. Df beyond the
    table uses its ends (below 1 does not occur with >= 2 starts per arm; above 1e4 is the normal limit)."""
    return np.exp(np.interp(np.log(np.asarray(df, dtype=float)), np.log(_DF_GRID), _critical_table(float(level))))


def interval(
    log_ratio: float, se: float, df: float, levels: LookLevels, two_sided: bool = False
) -> tuple[float, float]:
    """The log-ratio interval that agrees with ``decide``: its low end is above 0 exactly when "ratio <= 1" is
    rejected at the look's significance level, its high end at or below log(1 + tolerance) exactly when OK's
    test passes. Two-sided, both ends use the significance level (the finding is "which arm is better")."""
    if se <= 0:
        return log_ratio, log_ratio
    q_sig = float(sps.t.isf(levels.significance, df))
    q_ok = float(sps.t.isf(levels.equivalence, df))
    if two_sided:
        return log_ratio - q_sig * se, log_ratio + q_sig * se
    return log_ratio - q_sig * se, log_ratio + q_ok * se


def paired_looks(log_a: np.ndarray, log_b: np.ndarray, looks: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """The paired test at every look: mean and se of the per-round log ratios, df n - 1."""
    x = log_b - log_a
    n = np.arange(1, x.shape[-1] + 1)
    s1, s2 = np.cumsum(x, axis=-1), np.cumsum(x * x, axis=-1)
    mean = s1 / n
    var = np.maximum(s2 - s1 * mean, 0.0) / np.maximum(n - 1, 1)
    idx = np.array(looks) - 1
    df = np.broadcast_to(np.array(looks) - 1.0, mean[..., idx].shape)
    return mean[..., idx], np.sqrt(var[..., idx] / np.array(looks)), df


def welch_looks(log_a: np.ndarray, log_b: np.ndarray, looks: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Welch (log_b - log_a) at every look: arrays (..., looks) of log ratio, se and df, from the first n starts
    on the last axis of each arm (arms of equal length, interleaved rounds)."""
    stats = []
    for x in (log_a, log_b):
        n = np.arange(1, x.shape[-1] + 1)
        s1, s2 = np.cumsum(x, axis=-1), np.cumsum(x * x, axis=-1)
        mean = s1 / n
        var = np.maximum(s2 - s1 * mean, 0.0) / np.maximum(n - 1, 1)
        idx = np.array(looks) - 1
        stats.append((mean[..., idx], var[..., idx] / np.array(looks)))
    (ma, va), (mb, vb) = stats
    se2 = va + vb
    nm1 = np.array(looks) - 1.0
    denom = va**2 / nm1 + vb**2 / nm1
    df = np.where(denom > 0, se2**2 / np.where(denom > 0, denom, 1.0), 2 * nm1)
    return mb - ma, np.sqrt(se2), df


@dataclass(frozen=True)
class SimulatedSessions:
    """Outcomes of simulated gate sessions: final verdict code per row, starts per arm each case used, the look
    (starts per arm) at which each row was decided (0 if never)."""

    codes: np.ndarray  # (sessions, configs, rows)
    starts: np.ndarray  # (sessions, configs)
    decided_at: np.ndarray  # (sessions, configs, rows)


def simulate_sessions(
    rng: np.random.Generator,
    sessions: int,
    configs: int,
    rows: int,
    cov: float,
    slowdowns: tuple[float, ...] = (),
    budget: Budget = Budget(),
    tolerance: float = 0.03,
    alpha: float = 0.05,
    ok_error: float = DEFAULT_OK_ERROR,
    correlation: float = 0.0,
    two_sided: bool = False,
    stop_on_regressed: bool = True,
    paired: bool = False,
    drift: float = 0.0,
) -> SimulatedSessions:
    """Sessions of ``configs`` cases × ``rows`` gated rows, two interleaved arms with log-normal per-start noise
    (CoV ``cov``; ``correlation`` shares part of a start's noise across its rows: a slow start is slow
    everywhere); config i's second arm is ``slowdowns[i]`` worse on every row (a slower server). Every case runs
    its own rounds and looks with the shipped ``levels_at``/``decide``, family M = configs × rows. ``paired``
    runs Welch and per-round ratios at half the levels each, as the gate does for A/B arms; ``drift`` adds a
    per-round log-normal term (sd) that both arms of a round share (a machine whose speed wanders)."""
    sigma = math.sqrt(math.log1p(cov**2))
    n_max = budget.max_starts

    def draw() -> np.ndarray:
        common = rng.standard_normal((sessions, configs, 1, n_max))
        own = rng.standard_normal((sessions, configs, rows, n_max))
        return sigma * (math.sqrt(correlation) * common + math.sqrt(1 - correlation) * own)

    log_a, log_b = draw(), draw()
    if drift:
        shared = drift * rng.standard_normal((sessions, configs, 1, n_max))
        log_a, log_b = log_a + shared, log_b + shared
    shift = np.zeros(configs)
    shift[: len(slowdowns)] = np.log1p(np.asarray(slowdowns, dtype=float))
    log_b += shift[None, :, None, None]
    looks = budget.looks
    d, se, df = welch_looks(log_a, log_b, looks)
    if paired:
        dp, sep, dfp = paired_looks(log_a, log_b, looks)
    family = configs * rows
    codes = np.full((sessions, configs, rows), INCONCLUSIVE_CODE)
    decided_at = np.zeros((sessions, configs, rows), dtype=int)
    running = np.ones((sessions, configs), dtype=bool)
    starts = np.full((sessions, configs), looks[-1])
    for k, n in enumerate(looks):
        levels = levels_at(n, budget, family, alpha, ok_error, two_sided)
        if paired and n >= 3:  # as servegate.gate: Welch and paired rounds, each at half the levels
            half = LookLevels(n, levels.significance / 2, levels.equivalence / 2)
            welch = decide(d[..., k], se[..., k], df[..., k], half, tolerance, two_sided)
            rounds = decide(dp[..., k], sep[..., k], dfp[..., k], half, tolerance, two_sided)
            finding = (rounds == REGRESSED_CODE) | (rounds == IMPROVED_CODE)
            now = np.where(welch == INCONCLUSIVE_CODE, rounds, np.where(finding, rounds, welch))
        else:
            now = decide(d[..., k], se[..., k], df[..., k], levels, tolerance, two_sided)
        fresh = running[..., None] & (decided_at == 0) & (now != INCONCLUSIVE_CODE)
        codes = np.where(fresh, now, codes)
        decided_at = np.where(fresh, n, decided_at)
        done = (decided_at > 0).all(axis=-1)
        if stop_on_regressed:
            done |= (codes == REGRESSED_CODE).any(axis=-1)
        stopping = running & done
        starts = np.where(stopping, n, starts)
        running &= ~done
    return SimulatedSessions(codes, starts, decided_at)
