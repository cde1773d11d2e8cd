"""The terminal table: per case, each headline metric as mean and 95% CI over server starts.

Single-level cases get one row per metric; multi-level cases (sweeps, phases) one row per level with the
headline metrics as columns, so a sweep reads top to bottom like ``vllm bench serve`` output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from servegate.record import Case, Correctness, Stat

HEADLINE = [
    ("ttft_median_ms", "TTFT p50", "ms"),
    ("ttft_p99_ms", "TTFT p99", "ms"),
    ("itl_median_ms", "ITL p50", "ms"),
    ("itl_p99_ms", "ITL p99", "ms"),
    ("tpot_mean_ms", "TPOT mean", "ms"),
    ("e2el_median_ms", "E2EL p50", "ms"),
    ("e2el_p99_ms", "E2EL p99", "ms"),
    ("request_throughput", "requests", "req/s"),
    ("output_throughput", "output", "tok/s"),
    ("total_token_throughput", "total", "tok/s"),
    ("success_rate", "success", "share"),
]
LEVEL_COLUMNS = [
    ("output_throughput", "out tok/s"),
    ("request_throughput", "req/s"),
    ("ttft_median_ms", "TTFT p50 ms"),
    ("ttft_p99_ms", "TTFT p99 ms"),
    ("itl_median_ms", "ITL p50 ms"),
    ("e2el_p99_ms", "E2EL p99 ms"),
    ("success_rate", "success"),
]


def _fmt(x: float) -> str:
    if math.isinf(x) or math.isnan(x):
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _bounded(stat: Stat) -> bool:
    return math.isfinite(stat.ci_low) and math.isfinite(stat.ci_high)


def _mean_ci(stat: Stat | None) -> str:
    """``mean [low-high]``: the interval may be asymmetric (a ratio interval for latencies), so no ± half-width."""
    if stat is None:
        return "-"
    if not _bounded(stat):
        return _fmt(stat.mean)
    return f"{_fmt(stat.mean)} [{_fmt(stat.ci_low)}-{_fmt(stat.ci_high)}]"


def _status(case: Case, label: str) -> str:
    """The level's status label as the results record stores it (servegate.status, computed once)."""
    entry = case.status.get(label)
    if entry is None:
        return ""
    onset = " (saturation onset)" if entry.saturation_onset else ""
    return f"{entry.status} {entry.phase}{onset}"


def render_case(case: Case) -> list[str]:
    n = len(case.starts)
    arm = f", arm {case.arm}" if case.arm else ""
    lines = [f"{case.id}  (suite {case.suite}{arm}, {n} server start{'s' if n != 1 else ''})"]
    labels = case.level_labels()
    if len(labels) > 1:
        lines += _render_levels(case, labels)
    else:
        lines += _render_metrics(case)
    for where in case.client_bound_levels():
        lines.append(f"  CLIENT-BOUND (the numbers may measure the client, not the server): {where}")
    facts = [start.facts for start in case.starts]
    ready = [f.time_to_ready_s for f in facts if f.time_to_ready_s is not None]
    if ready:
        first = facts[0]
        lines.append(
            f"  server: ready in {', '.join(f'{r:.0f}' for r in ready)} s; vLLM {first.vllm_version}; "
            f"KV cache {first.kv_cache_tokens} tokens; attention {first.attention_backend or 'n/a'}"
        )
    for row in case.cold_start:
        lines.append(
            "  cold start: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
        )
    lines += _render_correctness(case.correctness)
    for rows, title in ((case.gate, "gate"), (case.ab, "A/B vs first arm")):
        for row in rows:
            lines.append(f"  {title} {row.metric}: {row.verdict} - {row.reason}")
    for looks in (case.gate_looks, case.ab_looks):
        if looks:
            lines.append("  looks: " + ", ".join(f"n={lk.n}: {lk.decided} decided, {lk.open} open" for lk in looks))
    for row in [*case.gate, *case.ab]:
        split = case.variance.get(row.metric)
        if row.verdict == "INCONCLUSIVE" and split and split.advice != "n/a":
            lines.append(f"  precision {row.metric}: {split.advice}")
    unsupported = sorted(k for k, v in case.variance.items() if v.unsupported_starts)
    if unsupported:
        lines.append(f"  percentiles this run cannot support (too few requests): {', '.join(unsupported)}")
    return lines


def _render_correctness(doc: Correctness | None) -> list[str]:
    if doc is None:
        return []
    across = "equal" if not doc.across_starts else f"{len(doc.across_starts)} differences"
    golden = doc.golden_status
    if golden == "compared":
        golden = "equal" if not doc.golden_mismatches else f"{len(doc.golden_mismatches)} prompts differ"
    return [
        f"  correctness: {len(doc.prompts)} greedy prompts; across {doc.starts} starts: {across}; golden file: {golden}"
    ]


def _render_metrics(case: Case) -> list[str]:
    if not any(case.stats.get(key) for key, _, _ in HEADLINE):
        return []
    lines = [f"  {'metric':<12} {'unit':<6} {'mean':>10}  {'95% CI':>17}  {'CoV':>6}  per start"]
    for key, label, unit in HEADLINE:
        s = case.stats.get(key)
        if s is None:
            continue
        ci = f"{_fmt(s.ci_low)} - {_fmt(s.ci_high)}" if _bounded(s) else "n/a (1 start)"
        cov = f"{s.cov * 100:.1f}%" if not math.isnan(s.cov) else "n/a"
        per_start = ", ".join(_fmt(v) for v in case.values[key])
        lines.append(f"  {label:<12} {unit:<6} {_fmt(s.mean):>10}  {ci:>17}  {cov:>6}  {per_start}")
    labels = case.level_labels()
    if labels and _status(case, labels[0]):
        lines.append(f"  status: {_status(case, labels[0])}")
    return lines


def _render_levels(case: Case, labels: list[str]) -> list[str]:
    width = max(8, *(len(label) for label in labels))
    header = f"  {'level':<{width}} " + " ".join(f"{title:>19}" for _, title in LEVEL_COLUMNS)
    lines = [header + "  status, phase"]
    for label in labels:
        cells = " ".join(f"{_mean_ci(case.stats.get(f'{label}/{key}')):>19}" for key, _ in LEVEL_COLUMNS)
        lines.append(f"  {label:<{width}} {cells}  {_status(case, label)}")
    lines.append("  (mean [95% CI] over starts; one start shows the value alone)")
    return lines


def render_cases(cases: Sequence[Case]) -> str:
    out: list[str] = []
    for case in cases:
        out += render_case(case)
        out.append("")
    return "\n".join(out).rstrip()
