"""The gate on stored baselines: rows per gated metric, session-wide Holm, fail modes, fingerprints, rendering."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from servegate.baseline import Baseline, Fingerprint
from servegate.gate import DEFAULT_GATED_METRICS, apply_holm, evaluate, gate_failed, gated_keys, render_gate
from servegate.metrics import direction_of
from servegate.stats import Verdict

FP = Fingerprint(hardware_id="cpu-amd-epyc-2c", hardware_name="AMD EPYC", device_count=1, model="tiny-llama")
CFG = "cpu/tiny-llama/c8-in128-out64"
BASE = {
    "ttft_median_ms": [100.0, 101.0, 99.5, 100.4, 99.9],
    "itl_median_ms": [10.0, 10.1, 9.95, 10.05, 9.98],
    "e2el_median_ms": [700.0, 702.0, 698.0, 701.0, 699.5],
    "output_throughput": [1000.0, 1005.0, 995.0, 1002.0, 998.0],
    "request_throughput": [15.6, 15.7, 15.5, 15.65, 15.55],
    "ttft_p99_ms": [150.0, 180.0, 160.0, 170.0, 155.0],  # not gated by default
}


def _baseline(values: dict[str, list[float]] | None = None, fp: Fingerprint = FP) -> Baseline:
    return Baseline(FP.hardware_id, "serving", CFG, values or BASE, {}, {}, fp)


def _scaled(values: dict[str, list[float]], **factors: float) -> dict[str, list[float]]:
    return {k: [x * factors.get(k, 1.0) for x in v] for k, v in values.items()}


def test_default_gated_metrics_exist_and_have_the_right_direction() -> None:
    from servegate.metrics import Distribution, RunSummary

    d = Distribution(1.0, 1.0, 0.0, {"p50": 1.0, "p99": 1.0}, 1)
    flat = RunSummary(1, 1, 1.0, {}, 1.0, 1, 1, 1.0, 1.0, 1.0, None, d, d, d, d, 0.0, 0.0).flat()
    assert set(DEFAULT_GATED_METRICS) <= set(flat)
    assert [direction_of(m) for m in DEFAULT_GATED_METRICS] == ["lower", "lower", "lower", "higher", "higher"]


def test_throughput_drop_regresses_with_a_readable_reason() -> None:
    current = _scaled(BASE, output_throughput=0.921, request_throughput=0.921)
    rows = {c.metric: c for c in evaluate(current, _baseline(), current_fingerprint=FP)}
    assert set(rows) == set(DEFAULT_GATED_METRICS)
    out = rows["output_throughput"]
    assert out.verdict is Verdict.REGRESSED
    assert out.ratio == pytest.approx(1 / 0.921, rel=1e-6) and out.ci_low > 1.03
    assert out.reason.startswith("output_throughput 7.9% lower (worse), CI ")
    assert "beyond 3% tolerance" in out.reason
    assert rows["ttft_median_ms"].verdict is Verdict.OK  # unchanged, tight
    assert gate_failed(rows.values()) and gate_failed(rows.values(), "strict")


def test_improvements_and_small_changes_pass() -> None:
    current = _scaled(BASE, ttft_median_ms=0.8, output_throughput=1.2, e2el_median_ms=1.01)
    rows = evaluate(current, _baseline())
    assert all(c.verdict is Verdict.OK for c in rows), render_gate(rows)
    assert not gate_failed(rows, "strict")
    ttft = next(c for c in rows if c.metric == "ttft_median_ms")
    assert "20.0% lower (better)" in ttft.reason and ttft.ratio < 1


def test_noisy_change_is_inconclusive_with_a_suggestion_and_fails_only_strict() -> None:
    rng = np.random.default_rng(1)
    noisy_base = {k: list(np.mean(v) * rng.lognormal(0, 0.08, 3)) for k, v in BASE.items()}
    current = {k: list(np.mean(v) * rng.lognormal(0.04, 0.08, 3)) for k, v in BASE.items()}
    rows = evaluate(current, _baseline(noisy_base))
    inconclusive = [c for c in rows if c.verdict is Verdict.INCONCLUSIVE]
    assert inconclusive, render_gate(rows)
    assert all("starts per arm" in c.reason for c in inconclusive)
    assert all(c.starts_needed is None or c.starts_needed > 3 for c in inconclusive)
    assert not gate_failed(rows) and gate_failed(rows, "strict")
    with pytest.raises(ValueError, match="strict"):
        gate_failed(rows, "lenient")  # type: ignore[arg-type]


def test_other_hardware_is_never_compared_silently() -> None:
    h100 = replace(FP, hardware_id="h100-x1", hardware_name="NVIDIA H100")
    rows = evaluate(_scaled(BASE, output_throughput=0.5), _baseline(), current_fingerprint=h100)
    assert [c.verdict for c in rows] == [Verdict.NOT_COMPARED]
    assert rows[0].reason == (
        "not compared: baseline from other hardware cpu-amd-epyc-2c (1x AMD EPYC) vs h100-x1 (1x NVIDIA H100)"
    )
    assert not gate_failed(rows) and gate_failed(rows, "strict")
    assert "NOT COMPARED" in render_gate(rows) and "other hardware" in render_gate(rows)


def test_non_blocking_fingerprint_differences_are_reported_on_every_row() -> None:
    newer = replace(FP, vllm_version="0.32.0")
    rows = evaluate(BASE, _baseline(fp=replace(FP, vllm_version="0.31.0")), current_fingerprint=newer)
    assert all(c.verdict is Verdict.OK for c in rows)
    assert all("fingerprint differs: vllm_version: 0.31.0 vs 0.32.0" in c.reason for c in rows)


def test_missing_metrics_and_too_few_starts_are_not_compared() -> None:
    current = {k: v for k, v in BASE.items() if k != "itl_median_ms"}
    current["ttft_median_ms"] = [100.0]
    rows = {c.metric: c for c in evaluate(current, _baseline())}
    assert rows["itl_median_ms"].verdict is Verdict.NOT_COMPARED
    assert "missing in the current run" in rows["itl_median_ms"].reason
    assert "needs >= 2 starts" in rows["ttft_median_ms"].reason
    zero = evaluate(_scaled(BASE, output_throughput=0.0), _baseline(), gated_metrics=["output_throughput"])
    assert zero[0].verdict is Verdict.NOT_COMPARED and "<= 0" in zero[0].reason


def test_multi_level_cases_gate_every_level() -> None:
    levels = {f"{lvl}/{k}": v for lvl in ("c1", "c4") for k, v in BASE.items()}
    assert len(gated_keys(levels, DEFAULT_GATED_METRICS)) == 10
    rows = evaluate(_scaled(levels, **{"c4/output_throughput": 0.9}), _baseline(levels))
    regressed = [c.metric for c in rows if c.verdict is Verdict.REGRESSED]
    assert regressed == ["c4/output_throughput"]


def test_holm_over_the_session_is_stricter_than_per_config() -> None:
    """A borderline regression that passes Holm over its own 5 rows must not pass over a 50-row session."""
    rng = np.random.default_rng(4)
    base = {k: list(np.mean(v) * rng.lognormal(0, 0.02, 5)) for k, v in BASE.items()}
    for factor in np.linspace(1.03, 1.15, 200):
        cur = {k: list(np.mean(v) * rng.lognormal(0, 0.02, 5)) for k, v in BASE.items()}
        cur["ttft_median_ms"] = [x * factor for x in base["ttft_median_ms"]]
        alone = evaluate(cur, _baseline(base))
        ttft = next(c for c in alone if c.metric == "ttft_median_ms")
        if ttft.verdict is Verdict.REGRESSED and ttft.p_value * 50 > 0.05:
            break
    else:
        pytest.fail("no borderline case found")
    others = [replace(c, config_id=f"cfg{i}") for i in range(9) for c in evaluate(BASE, _baseline())]
    session = apply_holm(alone + others)
    ttft_session = next(c for c in session if c.metric == "ttft_median_ms" and c.config_id == CFG)
    assert ttft_session.verdict is not Verdict.REGRESSED
    assert ttft_session.p_adjusted > ttft.p_adjusted
    assert "over 50" in ttft_session.reason


def test_render_groups_by_config_with_numbers_and_summary() -> None:
    rows = apply_holm(
        evaluate(_scaled(BASE, output_throughput=0.9), _baseline())
        + [replace(c, config_id="cpu/tiny-llama/c1-in128-out64") for c in evaluate(BASE, _baseline())]
    )
    text = render_gate(rows)
    lines = text.splitlines()
    assert lines[0] == CFG and "cpu/tiny-llama/c1-in128-out64" in lines
    tput = next(line for line in lines if line.strip().startswith("output_throughput"))
    assert "1000" in tput and "900" in tput and "1.111 [" in tput and "REGRESSED" in tput
    assert lines[-1].startswith("gate: 1 REGRESSED, 9 OK, 0 INCONCLUSIVE, 0 NOT COMPARED (Holm over 10 comparisons")
    assert render_gate([]).startswith("servegate gate: no gated comparisons")


def test_rows_serialize_without_nan() -> None:
    import json

    rows = evaluate({"output_throughput": [1.0]}, _baseline(), gated_metrics=["output_throughput"])
    doc = json.dumps([c.to_dict() for c in rows], allow_nan=False)
    assert '"verdict": "NOT COMPARED"' in doc
