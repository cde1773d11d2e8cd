"""Seed 003 Table 7 status labels and §5.1 phase scoping, checked at and around every threshold."""

from __future__ import annotations

import pytest

from servegate.status import (
    DEGRADED_P99_FACTOR,
    MIN_SUCCESS_RATE,
    SATURATION_GAIN,
    LevelPoint,
    Phase,
    Status,
    classify,
    classify_levels,
    phase_of_label,
    phase_of_levels,
    saturation_onset,
)


def test_thresholds_are_table_7s() -> None:
    assert (MIN_SUCCESS_RATE, DEGRADED_P99_FACTOR, SATURATION_GAIN) == (0.95, 2.0, 1.05)


@pytest.mark.parametrize("phase", list(Phase))
def test_failing_wins_in_every_phase(phase: Phase) -> None:
    # Latency and throughput would say DEGRADED/SATURATED; a level that drops requests is FAILING first.
    assert classify(phase, 0.9499, p99_ms=10_000, baseline_p99_ms=1, throughput=1, previous_throughput=100) == (
        Status.FAILING
    )


def test_success_boundary_is_inclusive() -> None:
    assert classify(Phase.SCALING, 0.95) is Status.OK  # "Success >= 95%"


def test_degraded_needs_scaling_phase_and_more_than_twice_the_baseline() -> None:
    assert classify(Phase.SCALING, 1.0, p99_ms=2.001, baseline_p99_ms=1.0) is Status.DEGRADED
    assert classify(Phase.SCALING, 1.0, p99_ms=2.0, baseline_p99_ms=1.0) is Status.OK  # strictly greater
    assert classify(Phase.SCALING, 1.0, p99_ms=50.0, baseline_p99_ms=None) is Status.OK  # no baseline, no DEGRADED
    for phase in (Phase.SATURATION, Phase.STRESS, Phase.BASELINE):
        assert classify(phase, 1.0, p99_ms=50.0, baseline_p99_ms=1.0) is Status.OK


def test_saturated_needs_saturation_phase_and_under_1_05_gain() -> None:
    assert classify(Phase.SATURATION, 1.0, throughput=104.9, previous_throughput=100) is Status.SATURATED
    assert classify(Phase.SATURATION, 1.0, throughput=105.0, previous_throughput=100) is Status.OK
    assert classify(Phase.SATURATION, 1.0, throughput=90, previous_throughput=None) is Status.OK
    assert classify(Phase.SCALING, 1.0, throughput=90, previous_throughput=100) is Status.OK


def test_phases_of_a_sweep() -> None:
    assert phase_of_levels([1, 2, 4]) == [Phase.BASELINE, Phase.SCALING, Phase.SCALING]
    assert phase_of_levels([2, 1]) == [Phase.SCALING, Phase.SCALING]  # only a *leading* c=1 is the baseline
    assert phase_of_levels([1, 500, 1000], "saturation") == [Phase.BASELINE, Phase.SATURATION, Phase.SATURATION]
    assert phase_of_levels([None]) == [Phase.SCALING]


def test_seed_003_table_16_scaling_labels() -> None:
    """DeepSeek V3.2 (Table 16): p99 8.19, 8.12 s OK, then DEGRADED from 8.72 s on.

    The table does not print its baseline p99; any baseline in (4.095, 4.36] s reproduces the labels, 4.2 s is used.
    The last step gains 7,160 -> 7,266 tok/s (< 1.05x) yet stays DEGRADED: SATURATED is not a SCALING label.
    """
    conc = [1, 5, 10, 25, 50, 100, 200]
    p99_s = [4.2, 8.19, 8.12, 8.72, 11.34, 13.75, 13.95]
    thr = [100.0, 461, 1235, 3013, 4607, 7160, 7266]
    points = [LevelPoint(f"c{c}", c, 1.0, p * 1000, t) for c, p, t in zip(conc, p99_s, thr, strict=True)]
    got = [s.status.value for s in classify_levels(points)]
    assert got == ["OK", "OK", "OK", "DEGRADED", "DEGRADED", "DEGRADED", "DEGRADED"]
    assert saturation_onset(thr) == 6


def test_classify_levels_reports_the_deciding_ratios() -> None:
    points = [LevelPoint("c1", 1, 1.0, 100.0, 10.0), LevelPoint("c2", 2, 1.0, 150.0, 19.0)]
    base, second = classify_levels(points)
    assert base.phase is Phase.BASELINE and base.p99_vs_baseline is None and base.gain_vs_previous is None
    assert second.p99_vs_baseline == pytest.approx(1.5)
    assert second.gain_vs_previous == pytest.approx(1.9)


def test_saturation_profile_labels_plateau() -> None:
    points = [LevelPoint(f"c{c}", c, 1.0, None, t) for c, t in ((150, 100.0), (300, 130.0), (500, 133.0))]
    assert [s.status for s in classify_levels(points, "saturation")] == [Status.OK, Status.OK, Status.SATURATED]


def test_saturation_onset_none_while_growing() -> None:
    assert saturation_onset([1.0, 2.0, 3.0]) is None
    assert saturation_onset([1.0, None, 0.5]) is None  # a gap compares nothing


def test_phases_named_by_the_labels_win_over_concurrency() -> None:
    """The progressive suite names its steps by phase: WARMUP at concurrency 1 is not the BASELINE."""
    labels = ["WARMUP", "BASELINE", "SCALING-c4", "STRESS-long-context", "SATURATION-c32/c32"]
    assert phase_of_levels([1, 1, 4, 4, 32], labels=labels) == [
        Phase.WARMUP,
        Phase.BASELINE,
        Phase.SCALING,
        Phase.STRESS,
        Phase.SATURATION,
    ]
    assert phase_of_label("c16") is None and phase_of_label("BASELINE-sync") is Phase.BASELINE


def test_progressive_labels_skip_warmup_and_stress_as_previous_level() -> None:
    """SATURATION compares with the last loading level (SCALING), not with the STRESS workload between them."""
    rows = [
        ("WARMUP", 1, 5000.0, 10.0),
        ("BASELINE", 1, 100.0, 50.0),
        ("SCALING-c4", 4, 150.0, 150.0),
        ("STRESS-long", 4, 900.0, 20.0),
        ("SATURATION-c32", 32, 400.0, 155.0),
    ]
    got = classify_levels([LevelPoint(label, c, 1.0, p99, thr) for label, c, p99, thr in rows])
    assert [s.phase for s in got] == [Phase.WARMUP, Phase.BASELINE, Phase.SCALING, Phase.STRESS, Phase.SATURATION]
    assert [s.status for s in got] == [Status.OK, Status.OK, Status.OK, Status.OK, Status.SATURATED]
    assert got[4].gain_vs_previous == pytest.approx(155 / 150)  # against SCALING-c4, not STRESS's 20 tok/s
    assert got[3].gain_vs_previous is None and got[0].p99_vs_baseline == pytest.approx(50.0)
    assert [s.saturation_onset for s in got] == [False, False, False, False, True]
    assert got[4].to_dict()["status"] == "SATURATED"


def test_the_results_record_stores_the_labels_the_reports_show() -> None:
    """Status is decided once, into the record; the terminal prints the stored label, whatever it says."""
    from servegate.config import LoadConfig, ServerConfig
    from servegate.launch.base import StartupFacts
    from servegate.load.measure import LevelResult
    from servegate.report.terminal import render_case
    from servegate.results import case_record
    from servegate.runner import CaseResult, StartResult
    from servegate.testing.fakes import fake_start

    def start(index: int) -> StartResult:
        c1 = fake_start(index, 1.0).levels[0]
        c4 = LevelResult("c4", 4, None, fake_start(index, 3.0).levels[0].summary)  # p99 3x the BASELINE's
        return StartResult(index, StartupFacts(), [c1, c4], None, 0.0)

    result = CaseResult("x", ServerConfig(model="m"), LoadConfig(concurrency=4), [start(0), start(1)])
    case = case_record("x", "s", "cpu", result)
    assert case.status["c1"].phase == "BASELINE" and case.status["c4"].status == "DEGRADED"
    assert any("DEGRADED SCALING" in line for line in render_case(case))
    case.status["c4"] = case.status["c4"].model_copy(update={"status": "FAILING"})
    assert any("FAILING SCALING" in line for line in render_case(case))


def test_a_client_bound_level_is_named_in_terminal_and_html() -> None:
    """A level whose numbers may measure the client says so wherever the numbers are shown, not only when a
    baseline is refused for it."""
    from servegate.config import LoadConfig, ServerConfig
    from servegate.report.html import render_html
    from servegate.report.terminal import render_case
    from servegate.results import case_record, session_record
    from servegate.runner import CaseResult
    from servegate.testing.fakes import fake_start

    starts = [fake_start(0, 1.0), fake_start(1, 1.0, client_bound=True, client_bound_reason="send lag 900 ms")]
    case = case_record("x", "s", "cpu", CaseResult("x", ServerConfig(model="m"), LoadConfig(), starts))
    assert case.client_bound_levels() == ["start 2 level c1: send lag 900 ms"]
    assert any("CLIENT-BOUND" in line and "start 2 level c1: send lag 900 ms" in line for line in render_case(case))
    assert "start 2 level c1: send lag 900 ms" in render_html(session_record([case], {}))
    clean = case_record("x", "s", "cpu", CaseResult("x", ServerConfig(model="m"), LoadConfig(), starts[:1]))
    assert not any("CLIENT-BOUND" in line for line in render_case(clean))
