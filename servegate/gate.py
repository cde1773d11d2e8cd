"""The regression gate: current per-start values against a stored baseline, one verdict per gated metric.

Decision rule (design.md "Decisions already taken"), per gated metric, with tolerance δ (default 3%) and α (0.05):

- the comparison is the ratio current/baseline made "> 1 means worse" (baseline/current for throughputs), with a
  two-sided (1 − α) CI from Welch's t on the log per-start values (df Welch–Satterthwaite);
- REGRESSED when the one-sided test of "ratio ≤ 1" is rejected at the Holm-adjusted level across *every* gated
  comparison of the session (family-wise false-alarm rate ≤ α) and the point ratio exceeds 1 + δ;
- OK when the CI's upper end is ≤ 1 + δ (non-inferiority within the tolerance is shown);
- INCONCLUSIVE otherwise, with the starts per arm that would settle it at the observed spread;
- NOT COMPARED when the baseline is from other hardware or another model, a metric is missing, either side has
  fewer than two starts, or values are not positive (a ratio needs logs). Never silently: the reason says which.

Only REGRESSED fails the build by default; ``gate_failed(..., mode="strict")`` fails anything but OK.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from servegate.baseline import Baseline, Fingerprint, blocking_mismatch, fingerprint_mismatch
from servegate.metrics import direction_of
from servegate.stats import (
    DEFAULT_ALPHA,
    DEFAULT_TOLERANCE,
    RatioTest,
    Verdict,
    compare,
    holm_adjust,
    starts_to_settle,
    verdict,
)

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
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_value: float = math.nan  # one-sided, of "ratio <= 1", unadjusted
    p_adjusted: float = math.nan  # Holm over the family the verdict was taken in
    n_baseline: int = 0
    n_current: int = 0
    starts_needed: int | None = None  # INCONCLUSIVE: starts per arm that would settle it; None: > 200
    tolerance: float = DEFAULT_TOLERANCE
    alpha: float = DEFAULT_ALPHA
    notes: tuple[str, ...] = ()  # non-blocking fingerprint differences (vLLM version, driver, ...)
    test: RatioTest | None = None

    @property
    def tested(self) -> bool:
        return self.test is not None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (for the results document): the row without the internal test object."""
        out = {k: v for k, v in self.__dict__.items() if k != "test"}
        out["verdict"] = self.verdict.value
        out["notes"] = list(self.notes)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


def gated_keys(values: Mapping[str, Sequence[float]], gated_metrics: Iterable[str]) -> list[str]:
    """Keys of ``values`` that are gated: exactly a gated name, or ``<level>/<name>`` for multi-level cases."""
    names = tuple(gated_metrics)
    return [k for k in values if k in names or k.rsplit("/", 1)[-1] in names]


def evaluate(
    current_values: Mapping[str, Sequence[float]],
    baseline: Baseline,
    gated_metrics: Iterable[str] = DEFAULT_GATED_METRICS,
    tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = DEFAULT_ALPHA,
    current_fingerprint: Fingerprint | None = None,
    config_id: str | None = None,
) -> list[Comparison]:
    """Compare one config's current per-start values with its baseline, one row per gated metric.

    Verdicts are taken with Holm over this config's rows only; a session with several configs must call
    ``apply_holm`` on all rows together, which is what keeps the session's false-alarm rate at alpha.
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
    rows: list[Comparison] = []
    for key in keys:
        base = [x for x in baseline.values.get(key, []) if math.isfinite(x)]
        cur = [x for x in current_values.get(key, []) if math.isfinite(x)]
        common = {
            "tolerance": tolerance,
            "alpha": alpha,
            "notes": notes,
            "n_baseline": len(base),
            "n_current": len(cur),
        }
        if key not in baseline.values or key not in current_values:
            side = "baseline" if key not in baseline.values else "current run"
            rows.append(
                Comparison(cid, key, Verdict.NOT_COMPARED, f"not compared: {key} missing in the {side}", **common)
            )
            continue
        if len(base) < 2 or len(cur) < 2:
            reason = f"not compared: needs >= 2 starts per side, baseline has {len(base)}, current {len(cur)}"
            rows.append(Comparison(cid, key, Verdict.NOT_COMPARED, reason, **common))
            continue
        if min(base + cur) <= 0:
            reason = f"not compared: {key} has values <= 0, a ratio is undefined"
            rows.append(Comparison(cid, key, Verdict.NOT_COMPARED, reason, **common))
            continue
        test = compare(base, cur, direction_of(key.rsplit("/", 1)[-1]), alpha)
        rows.append(
            Comparison(
                cid,
                key,
                Verdict.INCONCLUSIVE,
                "",
                baseline_mean=test.baseline_mean,
                current_mean=test.current_mean,
                ratio=test.ratio,
                ci_low=test.ci_low,
                ci_high=test.ci_high,
                p_value=test.p_worse,
                test=test,
                **common,
            )
        )
    return apply_holm(rows)


def apply_holm(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """Re-take every tested row's verdict with Holm over all tested rows given (the session's family).

    Untested rows (NOT COMPARED) pass through unchanged and do not enlarge the family. Order is kept.
    """
    tested = [i for i, c in enumerate(comparisons) if c.test is not None]
    adjusted = holm_adjust([comparisons[i].p_value for i in tested])
    m = len(tested)
    out = list(comparisons)
    for i, p_adj in zip(tested, adjusted, strict=True):
        c = comparisons[i]
        assert c.test is not None
        v = verdict(c.test, p_adj, c.tolerance)
        needed = starts_to_settle(c.test, c.tolerance, m) if v is Verdict.INCONCLUSIVE else None
        row = replace(c, verdict=v, p_adjusted=p_adj, starts_needed=needed)
        out[i] = replace(row, reason=_reason(row, m))
    return out


def decide_in_family(comparisons: Sequence[Comparison], family_size: int) -> list[Comparison]:
    """Re-take the verdicts with p adjusted to min(1, p·M) for a family of ``family_size`` = M comparisons that
    are not all known yet (each test decides when it finishes): Holm's first, strictest step, so the session's
    family-wise false-alarm rate stays <= alpha whatever the other p-values turn out to be."""
    m = max(family_size, sum(c.test is not None for c in comparisons), 1)
    out = []
    for c in comparisons:
        if c.test is None:
            out.append(c)
            continue
        p_adj = min(1.0, c.p_value * m)
        v = verdict(c.test, p_adj, c.tolerance)
        needed = starts_to_settle(c.test, c.tolerance, m) if v is Verdict.INCONCLUSIVE else None
        row = replace(c, verdict=v, p_adjusted=p_adj, starts_needed=needed)
        out.append(replace(row, reason=_reason(row, m)))
    return out


def gate_failed(comparisons: Iterable[Comparison], mode: GateMode = "default") -> bool:
    """Default: only REGRESSED fails. Strict: anything not OK fails (INCONCLUSIVE, NOT COMPARED too)."""
    if mode not in ("default", "strict"):
        raise ValueError(f"gate mode must be 'default' or 'strict', got {mode!r}")
    rows = list(comparisons)
    if mode == "strict":
        return any(c.verdict is not Verdict.OK for c in rows)
    return any(c.verdict is Verdict.REGRESSED for c in rows)


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


def _reason(c: Comparison, m: int) -> str:
    """Human text: what changed, how sure, against which tolerance, and what would settle an open question."""
    change, ci = _change(c)
    tol = f"{c.tolerance * 100:g}% tolerance"
    worse = "worse" if c.ratio > 1.0005 else ("better" if c.ratio < 0.9995 else "same")
    metric = c.metric
    if c.verdict is Verdict.REGRESSED:
        text = f"{metric} {change} ({worse}), {ci}; beyond {tol} (Holm p={c.p_adjusted:.2g} over {m})"
    elif c.verdict is Verdict.OK:
        worst = f"at worst {_worst(c)}" if c.ci_high > 1 else "better even at the CI's worst end"
        text = f"{metric} {change} ({worse}), {ci}; {worst}, within {tol}"
    else:
        if c.ratio > 1 + c.tolerance:
            why = f"beyond {tol} but not significant after Holm (p={c.p_adjusted:.2g} over {m})"
        else:
            why = f"CI reaches {_worst(c)}, past the {tol}"
        settle = (
            f"~{c.starts_needed} starts per arm would settle it"
            if c.starts_needed is not None
            else "more than 200 starts per arm would be needed at this spread"
        )
        text = f"{metric} {change} ({worse}), {ci}; {why}; {settle}"
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
        + f" (Holm over {tested} comparisons, alpha {first.alpha:g}, tolerance {first.tolerance * 100:g}%;"
        + " ratio > 1 means worse)"
    )
    return "\n".join(lines)
