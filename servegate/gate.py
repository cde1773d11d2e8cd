"""The regression gate: current per-start values against a stored baseline (or arm B against arm A), one verdict
per gated metric, taken look by look as starts accumulate (servegate.sequential has the statistics).

Decision rule per gated row, with tolerance δ (default 3%), the session's family of M gated rows and α (0.05):

- the comparison is the ratio current/baseline made "> 1 means worse" (baseline/current for throughputs), Welch's
  t on the log per-start values (or, for interleaved A/B rounds, the per-round log ratios when that is tighter);
- REGRESSED when "ratio <= 1" is rejected at the look's significance level (alpha spent over the looks and split
  Bonferroni over the M rows: the session's family-wise false REGRESSED rate is <= α) and the estimate exceeds
  1 + δ; IMPROVED, for two-sided comparisons, the mirror image;
- OK when "ratio >= 1 + δ" is rejected at the look's equivalence level (a row really δ worse is called OK at most
  5% of the time over all looks); two-sided, the arms must be equivalent within δ both ways;
- INCONCLUSIVE while neither holds; when the budget is spent the row stays INCONCLUSIVE;
- NOT COMPARED when the baseline is from other hardware or another model, a metric is missing, either side has
  fewer than two starts, or a per-start value is zero, negative or not finite (named with its start).

By default a REGRESSED row fails the build, and so does a baseline measured under other settings (``gate_failed``);
``gate_failed(..., mode="strict")`` fails anything but OK/IMPROVED.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from scipy import stats as sps

from servegate.baseline import Baseline, Fingerprint, SettingChange, blocking_mismatch, fingerprint_mismatch
from servegate.metrics import direction_of
from servegate.record import GateRow
from servegate.sequential import (
    INCONCLUSIVE_CODE,
    OK_CODE,
    Budget,
    LookLevels,
    critical_t,
    decide,
    interval,
    levels_at,
)
from servegate.stats import DEFAULT_ALPHA, DEFAULT_TOLERANCE, RatioTest, Verdict, compare

# TTFT p50, ITL p50, E2EL p50, output and request throughput: the user-facing serving numbers, one each of
# latency-to-start, streaming smoothness, whole-request latency and capacity. Names as in RunSummary.flat().
DEFAULT_GATED_METRICS: tuple[str, ...] = (
    "ttft_median_ms",
    "itl_median_ms",
    "e2el_median_ms",
    "output_throughput",
    "request_throughput",
)
# Per-start values over a step's levels, present only where a load asks for them (servegate.capacity: profile
# capacity; servegate.pareto: pareto_interactivity); both higher is better.
DERIVED_GATED_METRICS: tuple[str, ...] = ("capacity_at_slo", "throughput_per_gpu_at_interactivity")
GateMode = Literal["default", "strict"]
_CODES = (Verdict.REGRESSED, Verdict.OK, Verdict.INCONCLUSIVE, Verdict.IMPROVED)
_MAX_LOG_RATIO = 700.0  # exp() of more overflows a float: such a "ratio" is a broken measurement, not a finding


@dataclass(frozen=True)
class Comparison:
    """One row of the gate: a metric of a config, its numbers and its verdict with a human reason."""

    config_id: str
    metric: str
    verdict: Verdict
    reason: str
    baseline_mean: float = math.nan
    current_mean: float = math.nan
    ratio: float = math.nan  # > 1 means worse
    ci_low: float = math.nan  # the interval of the test that made the verdict (see sequential.interval)
    ci_high: float = math.nan
    p_value: float = math.nan  # one-sided p of "ratio <= 1" (of "ratio >= 1" for an IMPROVED row)
    level: float = math.nan  # the significance level the p-value was held to at this look
    n_baseline: int = 0
    n_current: int = 0
    look: int = 0  # starts per arm at the look that decided the row (or the last look)
    family_size: int = 1
    pairing: str = ""
    tolerance: float = DEFAULT_TOLERANCE
    alpha: float = DEFAULT_ALPHA
    two_sided: bool = False
    notes: tuple[str, ...] = ()  # non-blocking fingerprint differences (vLLM version, driver, ...)
    config_diff: tuple[SettingChange, ...] = ()  # NOT COMPARED: the settings the baseline was measured under
    test: RatioTest | None = None

    @property
    def tested(self) -> bool:
        return self.test is not None

    @property
    def decided(self) -> bool:
        return self.verdict is not Verdict.INCONCLUSIVE

    def to_row(self) -> GateRow:
        """The row as the results record keeps it: without the internal test object, non-finite numbers None."""
        out = {k: v for k, v in self.__dict__.items() if k != "test"}
        out["verdict"] = self.verdict.value
        out["notes"] = list(self.notes)
        out["config_diff"] = {c.path: {"baseline": c.baseline, "current": c.current} for c in self.config_diff}
        return GateRow(**{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()})


def gated_keys(values: Mapping[str, Sequence[float]], gated_metrics: Iterable[str]) -> list[str]:
    """Keys of ``values`` that are gated: exactly a gated name, or ``<level>/<name>`` for multi-level cases."""
    names = tuple(gated_metrics)
    return [k for k in values if k in names or k.rsplit("/", 1)[-1] in names]


def _unusable(key: str, side: str, values: Sequence[float]) -> str | None:
    """Why per-start values cannot enter a log ratio, naming the starts (1-based), or None."""
    bad = [f"start {i + 1}: {v:g}" for i, v in enumerate(values) if not (math.isfinite(v) and v > 0)]
    if not bad:
        return None
    return f"not compared: {key} in the {side} is zero, negative or not finite ({', '.join(bad)}); a ratio needs logs"


def evaluate(
    current_values: Mapping[str, Sequence[float]],
    baseline: Baseline,
    gated_metrics: Iterable[str] = DEFAULT_GATED_METRICS,
    tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = DEFAULT_ALPHA,
    current_fingerprint: Fingerprint | None = None,
    config_id: str | None = None,
    levels: LookLevels | None = None,
    family_size: int | None = None,
    two_sided: bool = False,
    paired: bool = False,
) -> list[Comparison]:
    """Compare one config's current per-start values with its baseline at one look, one row per gated metric.

    ``levels`` are the look's nominal levels (``servegate.sequential.levels_at``); without them the look is a
    fixed design of the current starts with a family of ``family_size`` rows (default: this config's rows).
    With ``current_fingerprint`` given, other hardware/model gives one NOT COMPARED row for the whole config, and
    other non-blocking differences are attached to every row as notes.
    """
    cid = config_id or baseline.config_id
    notes: tuple[str, ...] = ()
    if current_fingerprint is not None:
        blocked = blocking_mismatch(baseline.fingerprint, current_fingerprint)
        if blocked:
            return [
                Comparison(cid, "*", Verdict.NOT_COMPARED, f"not compared: {blocked}", tolerance=tolerance, alpha=alpha)
            ]
        notes = tuple(fingerprint_mismatch(baseline.fingerprint, current_fingerprint))
    gated = tuple(gated_metrics)
    keys = list(dict.fromkeys(gated_keys(baseline.values, gated) + gated_keys(current_values, gated)))
    m = family_size or len(keys)
    rows: list[Comparison] = []
    for key in keys:
        base = list(baseline.values.get(key, []))
        cur = list(current_values.get(key, []))
        n = len(cur)
        look = levels or levels_at(n, Budget(max(n, 1), max(n, 1)), m, alpha, two_sided=two_sided)
        common = {
            "tolerance": tolerance,
            "alpha": alpha,
            "notes": notes,
            "n_baseline": len(base),
            "n_current": n,
            "look": look.n,
            "family_size": m,
            "two_sided": two_sided,
        }
        reason = None
        if key not in baseline.values or key not in current_values:
            side = "baseline" if key not in baseline.values else "current run"
            reason = f"not compared: {key} missing in the {side}"
        elif len(base) < 2 or len(cur) < 2:
            reason = f"not compared: needs >= 2 starts per side, baseline has {len(base)}, current {len(cur)}"
        else:
            reason = _unusable(key, "baseline", base) or _unusable(key, "current run", cur)
        if reason is None:
            direction = direction_of(key.rsplit("/", 1)[-1])
            tests = [compare(base, cur, direction)]
            if paired and len(base) == len(cur) >= 3:
                tests.append(compare(base, cur, direction, paired=True))
            if abs(tests[0].log_ratio) > _MAX_LOG_RATIO:
                reason = f"not compared: {key} differs by a factor beyond e^700 between the sides (broken values)"
            else:
                rows.append(_decided(cid, key, tests, look, common))
                continue
        rows.append(Comparison(cid, key, Verdict.NOT_COMPARED, reason, **common))
    return rows


def _decided(cid: str, key: str, tests: list[RatioTest], look: LookLevels, common: dict) -> Comparison:
    """The row of one tested metric at one look: verdict, the interval that agrees with it, and the reason.

    With two tests (Welch and paired rounds of interleaved A/B arms) each runs at half the look's levels and a
    finding of either counts: the union keeps the error rates, whichever test the data favour. (Picking the
    narrower interval after seeing the data would double the false findings: bench/gate_power.py.)"""
    two_sided = common["two_sided"]
    if len(tests) > 1:
        look = LookLevels(look.n, look.significance / len(tests), look.equivalence / len(tests))
    codes = [int(decide(t.log_ratio, t.se, t.df, look, common["tolerance"], two_sided)) for t in tests]
    widths = [float(critical_t(look.significance, t.df)) * t.se for t in tests]
    decisive = [i for i, c in enumerate(codes) if c != INCONCLUSIVE_CODE]
    best = min(decisive or range(len(tests)), key=lambda i: (codes[i] == OK_CODE, widths[i]))
    test, verdict = tests[best], _CODES[codes[best]]
    lo, hi = interval(test.log_ratio, test.se, test.df, look, two_sided)
    t = test.log_ratio / test.se if test.se > 0 else math.copysign(math.inf, test.log_ratio or -1.0)
    p = float(sps.t.sf(-t if verdict is Verdict.IMPROVED else t, test.df))
    row = Comparison(
        cid,
        key,
        verdict,
        "",
        baseline_mean=test.baseline_mean,
        current_mean=test.current_mean,
        ratio=math.exp(test.log_ratio),
        ci_low=math.exp(max(lo, -_MAX_LOG_RATIO)),
        ci_high=math.exp(min(hi, _MAX_LOG_RATIO)),
        p_value=p,
        level=look.significance,
        pairing=test.pairing if len(tests) > 1 else "",
        test=test,
        **common,
    )
    return replace(row, reason=_reason(row))


@dataclass
class Monitor:
    """The looks of one case: rows decided at a look keep that verdict; open rows are looked at again after the
    next round; ``done`` when every row is decided, when (gating) a row is REGRESSED and the case fails whatever
    comes next, or when the budget is spent."""

    budget: Budget
    stop_on_regressed: bool = True
    rows: dict[tuple[str, str], Comparison] = field(default_factory=dict)
    looks: list[dict[str, object]] = field(default_factory=list)

    def look(self, n: int, rows_now: Sequence[Comparison]) -> list[Comparison]:
        """Merge this look's rows into the decided ones; returns the current state of every row."""
        for row in rows_now:
            key = (row.config_id, row.metric)
            kept = self.rows.get(key)
            if kept is None or not kept.decided:
                self.rows[key] = row
        rows = list(self.rows.values())
        decided = sum(r.decided for r in rows)
        self.looks.append(
            {
                "n": n,
                "decided": decided,
                "open": len(rows) - decided,
                "verdicts": {v.value: n for v in Verdict if (n := sum(r.verdict is v for r in rows))},
            }
        )
        return rows

    @property
    def done(self) -> bool:
        if not self.looks:
            return False
        rows = list(self.rows.values())
        last_n = int(self.looks[-1]["n"])  # type: ignore[arg-type]
        if last_n >= self.budget.max_starts or all(r.decided for r in rows):
            return True
        return self.stop_on_regressed and any(r.verdict is Verdict.REGRESSED for r in rows)

    def progress_line(self, case_id: str) -> str:
        """ "look 3: 4 decided, 1 open, next start 4/12" (or why it stops)."""
        last = self.looks[-1]
        n = int(last["n"])  # type: ignore[arg-type]
        counts = ", ".join(f"{k} {v}" for k, v in last["verdicts"].items())  # type: ignore[union-attr]
        head = f"[{case_id}] look {len(self.looks)} (n={n}): {last['decided']} decided, {last['open']} open ({counts})"
        if not self.done:
            return f"{head}, next start {n + 1}/{self.budget.max_starts}"
        if int(last["open"]) == 0:  # type: ignore[arg-type]
            return f"{head}; every row decided, stopping"
        if n >= self.budget.max_starts:
            return f"{head}; budget of {self.budget.max_starts} starts spent, open rows stay INCONCLUSIVE"
        return f"{head}; a row is REGRESSED, the case fails whatever the open rows do: stopping"

    def final(self) -> list[Comparison]:
        """Every row, open ones with a reason that says the look was the last."""
        out = []
        for row in self.rows.values():
            if row.verdict is Verdict.INCONCLUSIVE:
                spent = f"; stopped after {row.look} starts per arm (budget {self.budget})"
                row = replace(row, reason=row.reason + spent)
            out.append(row)
        return out


def gate_failed(rows: Iterable[Comparison | GateRow], mode: GateMode = "default") -> bool:
    """Default: REGRESSED fails, and so does a row NOT COMPARED because the baseline was measured under other
    settings (it has a ``config_diff``): an option such as ``--intensity`` or an edited suite file must not switch
    the gate off while the session stays green (``--gate off`` reports only; ``--update-baselines`` re-records).
    Strict: anything not OK or IMPROVED fails (INCONCLUSIVE, any NOT COMPARED)."""
    if mode not in ("default", "strict"):
        raise ValueError(f"gate mode must be 'default' or 'strict', got {mode!r}")
    rows = list(rows)
    if mode == "strict":
        return any(r.verdict not in (Verdict.OK, Verdict.IMPROVED) for r in rows)
    return any(r.verdict == Verdict.REGRESSED or (r.verdict == Verdict.NOT_COMPARED and r.config_diff) for r in rows)


def _pct(x: float) -> str:
    return f"{abs(x - 1) * 100:.1f}%"


def _change(c: Comparison) -> tuple[str, str]:
    """The metric's own change (current vs baseline) and its CI, in words: "7.9% lower", "5.1% to 10.6% lower"."""
    assert c.test is not None
    if c.test.direction == "lower":  # ratio = current / baseline
        mid, lo, hi = c.ratio, c.ci_low, c.ci_high
    else:  # ratio = baseline / current: the metric changed by 1/ratio
        mid, lo, hi = 1 / c.ratio, 1 / c.ci_high, 1 / c.ci_low
    word = "unchanged" if abs(mid - 1) < 0.0005 else ("higher" if mid > 1 else "lower")
    if lo >= 1 or hi <= 1:  # the whole CI on one side
        side = "higher" if lo >= 1 else "lower"
        a, b = sorted((_pct(lo), _pct(hi)), key=lambda s: float(s[:-1]))
        ci = f"CI {a} to {b} {side}"
    else:
        ci = f"CI {_pct(lo)} lower to {_pct(hi)} higher"
    return ("unchanged" if word == "unchanged" else f"{_pct(mid)} {word}"), ci


def _worst(c: Comparison) -> str:
    """The CI's worst end in the metric's own terms: "4.0% higher" for a latency, "12.1% lower" for a throughput."""
    assert c.test is not None
    return f"{_pct(c.ci_high)} higher" if c.test.direction == "lower" else f"{_pct(1 / c.ci_high)} lower"


def _reason(c: Comparison) -> str:
    """Human text: what changed, how sure (the test and its level at this look), against which tolerance."""
    change, ci = _change(c)
    tol = f"{c.tolerance * 100:g}% tolerance"
    worse = "worse" if c.ratio > 1.0005 else ("better" if c.ratio < 0.9995 else "same")
    metric = c.metric
    paired = f", {c.pairing} test" if c.pairing else ""
    sig = f"p={c.p_value:.2g} <= {c.level:.2g} at look n={c.look}, {c.family_size} gated rows{paired}"
    if c.verdict is Verdict.REGRESSED:
        text = f"{metric} {change} ({worse}), {ci}; beyond {tol} ({sig})"
    elif c.verdict is Verdict.IMPROVED:
        text = f"{metric} {change} ({worse}), {ci}; better beyond {tol} ({sig})"
    elif c.verdict is Verdict.OK:
        worst = f"at worst {_worst(c)}" if c.ci_high > 1 else "better even at the CI's worst end"
        text = f"{metric} {change} ({worse}), {ci}; {worst}, within {tol} (look n={c.look}{paired})"
    elif c.ratio > 1 + c.tolerance or (c.two_sided and c.ratio < 1 / (1 + c.tolerance)):
        text = f"{metric} {change} ({worse}), {ci}; beyond {tol} but not yet significant at look n={c.look}"
    else:
        text = f"{metric} {change} ({worse}), {ci}; CI reaches {_worst(c)}, past the {tol} (look n={c.look})"
    if c.notes:
        text += " [fingerprint differs: " + "; ".join(c.notes) + "]"
    return text


def _num(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x:.4g}" if abs(x) < 1000 else f"{x:.0f}"


def render_gate(comparisons: Sequence[Comparison]) -> str:
    """Terminal text: per config a table of metric, baseline mean, current mean, ratio (> 1 worse) with CI,
    verdict and reason; then one summary line. Plain text so it reads the same in CI logs."""
    if not comparisons:
        return "servegate gate: no gated comparisons (no baselines found)"
    lines: list[str] = []
    headers = ("metric", "baseline", "current", "ratio [CI]", "verdict")
    by_config: dict[str, list[Comparison]] = {}
    for c in comparisons:
        by_config.setdefault(c.config_id, []).append(c)
    for config_id, rows in by_config.items():
        table = [headers]
        for c in rows:
            ratio = f"{c.ratio:.3f} [{c.ci_low:.3f}, {c.ci_high:.3f}]" if c.tested else "-"
            table.append((c.metric, _num(c.baseline_mean), _num(c.current_mean), ratio, c.verdict.value))
        widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
        lines.append(f"{config_id}")
        for j, r in enumerate(table):
            cells = "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True))
            reason = "reason" if j == 0 else rows[j - 1].reason
            lines.append(f"  {cells}  {reason}")
    counts = {v: sum(c.verdict is v for c in comparisons) for v in Verdict}
    tested = sum(c.tested for c in comparisons)
    first = comparisons[0]
    lines.append(
        "gate: "
        + ", ".join(f"{n} {v.value}" for v, n in counts.items())
        + f" ({tested} tested; alpha {first.alpha:g} spent over looks, Bonferroni over {first.family_size} gated rows,"
        + f" tolerance {first.tolerance * 100:g}%; ratio > 1 means worse)"
    )
    return "\n".join(lines)
