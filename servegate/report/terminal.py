"""The terminal table: per case, each headline metric as mean ± 95% t half-width over server starts."""

from __future__ import annotations

import math

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


def _fmt(x: float) -> str:
    if math.isinf(x) or math.isnan(x):
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def render_case(case: dict) -> list[str]:
    stats = case["stats"]
    n = len(case["starts"])
    lines = [f"{case['id']}  (suite {case['suite']}, {n} server start{'s' if n != 1 else ''})"]
    lines.append(f"  {'metric':<12} {'unit':<6} {'mean':>10}  {'± 95% CI':>10}  {'CoV':>6}  per start")
    for key, label, unit in HEADLINE:
        s = stats.get(key)
        if s is None:
            continue
        half = (s["ci_high"] - s["ci_low"]) / 2
        cov = f"{s['cov'] * 100:.1f}%" if not math.isnan(s["cov"]) else "n/a"
        per_start = ", ".join(_fmt(v) for v in case["values"][key])
        lines.append(f"  {label:<12} {unit:<6} {_fmt(s['mean']):>10}  ±{_fmt(half):>9}  {cov:>6}  {per_start}")
    facts = [st["facts"] for st in case["starts"]]
    ready = [f["time_to_ready_s"] for f in facts if f.get("time_to_ready_s") is not None]
    if ready:
        first = facts[0]
        lines.append(
            f"  server: ready in {', '.join(f'{r:.0f}' for r in ready)} s; vLLM {first.get('vllm_version')}; "
            f"KV cache {first.get('kv_cache_tokens')} tokens; attention {first.get('attention_backend') or 'n/a'}"
        )
    for verdict in case.get("verdicts", []):
        lines.append(f"  gate {verdict['metric']}: {verdict['verdict']} ({verdict['reason']})")
    return lines


def render_session(document: dict) -> str:
    out: list[str] = []
    for case in document["cases"]:
        out += render_case(case)
        out.append("")
    return "\n".join(out).rstrip()
