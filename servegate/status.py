"""Status labels and phases of seed 003 §5.1 (Table 7), so a sweep reads like the paper's scaling tables.

Seed 003 defines five phases (WARMUP, BASELINE, SCALING, STRESS, SATURATION) and four status labels whose criteria
are *phase-relative*: "the SCALING phase classifies requests as DEGRADED when p99 latency exceeds twice the
single-request baseline, while the SATURATION phase uses throughput-relative classification only (SATURATED when
throughput plateaus within 5% of the previous level). The baseline_p99 threshold is only passed to the SCALING
phase; consequently, DEGRADED status cannot trigger in the SATURATION or STRESS phases." FAILING (success < 95%)
applies in every phase. Labels are therefore not comparable across phases, and this module keeps the phase next
to every label.

Separately from the labels, ``saturation_onset`` applies the SATURATION rule (throughput < 1.05x the previous
level) to any sweep, because where throughput stops growing is what a reader of a concurrency sweep wants to know
even when the sweep ran as a SCALING phase (seed 003 Table 16 shows DeepSeek V3.2 gaining < 5% from 100 to 200
concurrent while still labelled DEGRADED, exactly because the label is phase-relative).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    """Seed 003 §5.1, the five phases of increasing intensity."""

    WARMUP = "WARMUP"  # initialize, warm caches; recorded but labelled separately
    BASELINE = "BASELINE"  # concurrency 1: the reference p99
    SCALING = "SCALING"  # concurrency sweep (seed: 5 to 200): throughput-latency trade-off
    STRESS = "STRESS"  # edge cases: long output, long-context prefill, multi-image
    SATURATION = "SATURATION"  # extreme concurrency (seed: 150 to 1,000): the breaking point


class Status(StrEnum):
    """Seed 003 Table 7, "Benchmark status indicators and their thresholds"."""

    OK = "OK"  # success >= 95%, latency normal
    DEGRADED = "DEGRADED"  # p99 > 2x baseline p99 (SCALING phase only)
    SATURATED = "SATURATED"  # throughput < 1.05x previous level (SATURATION phase only)
    FAILING = "FAILING"  # success < 95%, any phase


# Seed 003 Table 7 thresholds.
MIN_SUCCESS_RATE = 0.95
DEGRADED_P99_FACTOR = 2.0
SATURATION_GAIN = 1.05


def classify(
    phase: Phase,
    success_rate: float,
    p99_ms: float | None = None,
    baseline_p99_ms: float | None = None,
    throughput: float | None = None,
    previous_throughput: float | None = None,
) -> Status:
    """One test result's label under seed 003 Table 7, with the phase-relative scoping of §5.1.

    FAILING wins over everything because a level that drops requests has no meaningful latency or throughput.
    DEGRADED is only possible in SCALING and only with a baseline p99 (the seed passes ``baseline_p99`` to that
    phase alone); SATURATED only in SATURATION and only with a previous level to compare against.
    """
    if success_rate < MIN_SUCCESS_RATE:
        return Status.FAILING
    if (
        phase is Phase.SCALING
        and p99_ms is not None
        and baseline_p99_ms is not None
        and p99_ms > DEGRADED_P99_FACTOR * baseline_p99_ms
    ):
        return Status.DEGRADED
    if (
        phase is Phase.SATURATION
        and throughput is not None
        and previous_throughput is not None
        and throughput < SATURATION_GAIN * previous_throughput
    ):
        return Status.SATURATED
    return Status.OK


def phase_of_label(label: str) -> Phase | None:
    """The phase a level's label names (``SCALING-c16``, ``BASELINE``, ``STRESS-long/c4``), else None."""
    head = label.split("/", 1)[0].split("-", 1)[0]
    return Phase(head) if head in Phase.__members__ else None


def phase_of_levels(
    concurrencies: Sequence[int | None], profile: str = "concurrent", labels: Sequence[str] | None = None
) -> list[Phase]:
    """Map a case's load levels onto seed 003's phases.

    A level whose label names a phase (the progressive suite names its steps ``<PHASE>-<free label>``) is in
    that phase. Otherwise: a leading concurrency-1 level is the BASELINE (seed: "clean metrics at
    concurrency=1"); a ``saturation`` profile is the SATURATION phase; everything else sweeps load and is
    SCALING. Rate-driven levels (concurrency None) count as SCALING.
    """
    named = [phase_of_label(label) for label in labels] if labels is not None else [None] * len(concurrencies)
    phases: list[Phase] = []
    for i, (conc, phase) in enumerate(zip(concurrencies, named, strict=True)):
        if phase is not None:
            phases.append(phase)
        elif i == 0 and conc == 1:
            phases.append(Phase.BASELINE)
        elif profile == "saturation":
            phases.append(Phase.SATURATION)
        else:
            phases.append(Phase.SCALING)
    return phases


@dataclass(frozen=True)
class LevelPoint:
    """What the classifier needs from one load level (means over server starts)."""

    label: str
    concurrency: int | None
    success_rate: float
    p99_ms: float | None  # end-to-end request latency p99, the seed's "p99 Latency"
    throughput: float | None  # total tok/s, the seed's "Throughput"


@dataclass(frozen=True)
class LevelStatus:
    label: str
    phase: Phase
    status: Status
    p99_vs_baseline: float | None  # p99 / baseline p99: how close to the DEGRADED factor 2
    gain_vs_previous: float | None  # throughput / previous level's: how close to the SATURATED factor 1.05
    saturation_onset: bool = False  # the first load level gaining < 1.05x over the one before (any phase)

    def to_dict(self) -> dict[str, object]:
        return {
            "phase": self.phase.value,
            "status": self.status.value,
            "p99_vs_baseline": self.p99_vs_baseline,
            "gain_vs_previous": self.gain_vs_previous,
            "saturation_onset": self.saturation_onset,
        }


# Levels that load the server more and more; WARMUP and STRESS (another workload) are no "previous level".
LOAD_PHASES = (Phase.BASELINE, Phase.SCALING, Phase.SATURATION)


def classify_levels(points: Sequence[LevelPoint], profile: str = "concurrent") -> list[LevelStatus]:
    """Label every level of a case, keeping the two ratios that decided (or nearly decided) the label visible.

    The baseline p99 is the first BASELINE level's; a level's "previous" is the last BASELINE, SCALING or
    SATURATION level before it. This is the one place labels are computed: the results document stores them and
    every report reads them from there.
    """
    phases = phase_of_levels([p.concurrency for p in points], profile, [p.label for p in points])
    baseline_p99 = next((p.p99_ms for p, ph in zip(points, phases, strict=True) if ph is Phase.BASELINE), None)
    loaded = [(i, p.throughput) for i, (p, ph) in enumerate(zip(points, phases, strict=True)) if ph in LOAD_PHASES]
    onset_at = saturation_onset([t for _, t in loaded])
    onset = loaded[onset_at][0] if onset_at is not None else None
    out: list[LevelStatus] = []
    previous: float | None = None
    for i, (point, phase) in enumerate(zip(points, phases, strict=True)):
        ratio = _ratio(point.p99_ms, baseline_p99) if phase is not Phase.BASELINE else None
        gain = _ratio(point.throughput, previous) if phase in LOAD_PHASES else None
        status = classify(phase, point.success_rate, point.p99_ms, baseline_p99, point.throughput, previous)
        out.append(LevelStatus(point.label, phase, status, ratio, gain, onset == i))
        if phase in LOAD_PHASES:
            previous = point.throughput
    return out


def saturation_onset(throughputs: Sequence[float | None]) -> int | None:
    """Index of the first level whose throughput is < 1.05x the previous level's (seed 003 phase 5), or None."""
    for i in range(1, len(throughputs)):
        cur, prev = throughputs[i], throughputs[i - 1]
        if cur is not None and prev is not None and cur < SATURATION_GAIN * prev:
            return i
    return None


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den
