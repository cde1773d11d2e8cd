"""Where runs meet their baselines: record a case as the new baseline, or gate it against the stored one, look by
look as its starts accumulate (servegate.sequential, servegate.gate.Monitor).

Each test decides its verdicts while it runs, before the session's other comparisons exist, so the multiple-
comparison correction uses the session's *planned* family size M (every gated row of every selected case that
gates): each row's significance budget is alpha / M, spent over its looks. The family-wise false REGRESSED rate
therefore stays <= alpha for the whole session, under pytest-xdist too (every worker plans the same M). This is
Bonferroni over rows, not Holm: Holm's step-down needs every p-value of the session at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from servegate.baseline import (
    UNREAD,
    Baseline,
    Fingerprint,
    SettingChange,
    baseline_path,
    config_diff,
    effective_config,
    file_digest,
    find_baseline,
    refusal_reasons,
    save_baseline,
)
from servegate.config import LoadConfig, ServerConfig
from servegate.gate import DEFAULT_GATED_METRICS, DERIVED_GATED_METRICS, Comparison, Monitor, evaluate
from servegate.load.profiles import saturation_levels
from servegate.runner import CaseResult
from servegate.sequential import Budget, levels_at
from servegate.stats import DEFAULT_ALPHA, DEFAULT_TOLERANCE, Verdict


@dataclass
class RegressionGate:
    baselines_dir: Path
    hardware_id: str
    tolerance: float = DEFAULT_TOLERANCE
    family_size: int = 1
    gated_metrics: tuple[str, ...] = DEFAULT_GATED_METRICS + DERIVED_GATED_METRICS
    alpha: float = DEFAULT_ALPHA
    rows: list[Comparison] = field(default_factory=list)
    read_digests: dict[Path, str | None] = field(default_factory=dict)  # baseline files as seen at case start

    def path_for(self, suite: str, case_id: str) -> Path:
        return baseline_path(self.baselines_dir, self.hardware_id, suite, case_id)

    def as_baseline(self, suite: str, case_id: str, result: CaseResult, forced: str | None = None) -> Baseline:
        config = effective_config(result.server, result.load)
        return Baseline(
            hardware_id=self.hardware_id,
            suite=suite,
            config_id=case_id,
            values=result.values(),
            server=config["server"],
            load=config["load"],
            fingerprint=_fingerprint(result),
            forced=forced,
        )

    def observe(self, suite: str, case_id: str) -> None:
        """Remember the baseline file's state before the case runs: ``record`` replaces only that state."""
        path = self.path_for(suite, case_id)
        self.read_digests[path] = file_digest(path)

    def record(self, suite: str, case_id: str, result: CaseResult, force: bool = False) -> Path:
        """Store the case's per-start values, configuration and fingerprint as its baseline (atomically).

        A run that may not be a baseline (``refusal_reasons``) raises ``BaselineRefused`` and leaves the stored
        one as it was, unless ``force``, which is then written into the file with the reasons. Raises
        ``BaselineConflict`` when another session replaced the file since ``observe``.
        """
        reasons = refusal_reasons(result, self.gated_metrics)
        if reasons and not force:
            raise BaselineRefused(self.path_for(suite, case_id), reasons)
        forced = "forced despite: " + "; ".join(reasons) if reasons else None
        expected = self.read_digests.get(self.path_for(suite, case_id), UNREAD)
        return save_baseline(self.baselines_dir, self.as_baseline(suite, case_id, result, forced), expected)

    def baseline(self, suite: str, case_id: str) -> Baseline | None:
        """The stored baseline, None when there is none; a corrupted one raises ``BaselineError`` naming the file."""
        return find_baseline(self.baselines_dir, self.hardware_id, suite, case_id)

    def mismatch(self, baseline: Baseline, server: ServerConfig, load: LoadConfig) -> list[SettingChange]:
        """The settings in which ``baseline`` was measured differently; empty when it can be compared with a run of
        ``server`` under ``load``."""
        return config_diff(baseline, server, load)

    def missing(self, suite: str, case_id: str) -> list[Comparison]:
        path = self.path_for(suite, case_id)
        reason = f"not compared: no baseline at {path}; record one with --update-baselines"
        return [Comparison(case_id, "*", Verdict.NOT_COMPARED, reason, tolerance=self.tolerance)]

    def look(self, baseline: Baseline, case_id: str, result: CaseResult, budget: Budget) -> list[Comparison]:
        """The rows of one look at the current starts (n = how many there are) against the baseline."""
        n = len(result.starts)
        return evaluate(
            result.values(),
            baseline,
            self.gated_metrics,
            self.tolerance,
            self.alpha,
            current_fingerprint=_fingerprint(result),
            config_id=case_id,
            levels=levels_at(n, budget, self.family_size, self.alpha),
            family_size=self.family_size,
        )

    def check(self, suite: str, case_id: str, result: CaseResult, budget: Budget | None = None) -> list[Comparison]:
        """A finished case in one look (a fixed design of its starts, or the last look of ``budget``)."""
        baseline = self.baseline(suite, case_id)
        if baseline is None:
            rows = self.missing(suite, case_id)
        elif diff := self.mismatch(baseline, result.server, result.load):
            rows = [
                Comparison(
                    case_id,
                    "*",
                    Verdict.NOT_COMPARED,
                    "not compared: the baseline was measured under another configuration: "
                    + "; ".join(map(str, diff))
                    + " (run with the baseline's settings, re-record with --update-baselines, or --gate off to "
                    "report only)",
                    tolerance=self.tolerance,
                    config_diff=tuple(diff),
                )
            ]
        else:
            n = len(result.starts)
            rows = self.look(baseline, case_id, result, budget or Budget(max(n, 1), max(n, 1)))
        self.rows += rows
        return rows

    def compare_arms(
        self,
        case_id: str,
        a: CaseResult,
        b: CaseResult,
        suite: str,
        budget: Budget | None = None,
        comparisons: int = 1,
        paired: bool = True,
    ) -> list[Comparison]:
        """Arm B against arm A of an ablation (same machine, interleaved rounds): two-sided (which arm is better,
        IMPROVED or REGRESSED, or equivalent within the tolerance), Welch and paired rounds each at half the
        level when ``paired`` (a finding of either counts), corrected within the ablation's own rows
        (``comparisons`` arms against the first), since an ablation reports and does not gate."""
        reference = self.as_baseline(suite, case_id, a)
        n = min(len(a.starts), len(b.starts))
        budget = budget or Budget(max(n, 1), max(n, 1))
        keys = [k for k in reference.values if k in self.gated_metrics or k.rsplit("/", 1)[-1] in self.gated_metrics]
        family = max(len(keys), 1) * comparisons
        return evaluate(
            b.values(),
            reference,
            self.gated_metrics,
            self.tolerance,
            self.alpha,
            config_id=case_id,
            levels=levels_at(n, budget, family, self.alpha, two_sided=True),
            family_size=family,
            two_sided=True,
            paired=paired,
        )

    def monitor(self, budget: Budget, gating: bool = True) -> Monitor:
        """Looks for one case: a gated case stops at its first REGRESSED row (it fails whatever comes next); an
        ablation runs until every row is decided, since it reports how the arms differ."""
        return Monitor(budget, stop_on_regressed=gating)


def planned_levels(load: LoadConfig) -> int:
    """Load levels one step of this load reports: a sweep's synchronous, constant-rate and max-throughput levels,
    a saturation search's concurrency levels (an upper bound: the search may stop early), else one."""
    if load.profile == "sweep":
        return 2 + load.sweep_rates
    if load.profile == "saturation":
        return len(saturation_levels(load))
    if load.profile in ("concurrent", "capacity"):  # a capacity search measures some of its levels
        return len(load.concurrency_levels) or 1
    return 1


def planned_rows(steps: Sequence[tuple[str, LoadConfig]], gated_metrics: Sequence[str]) -> int:
    """Gated rows a case will produce: every level of every step times every gated per-level metric, plus one row
    per step for each gated metric derived over its levels (capacity at the SLO, throughput at an interactivity)."""
    per_level = [m for m in gated_metrics if m not in DERIVED_GATED_METRICS]
    rows = sum(planned_levels(load) for _, load in steps) * len(per_level)
    for _, load in steps:
        rows += "capacity_at_slo" in gated_metrics and load.profile == "capacity"
        rows += "throughput_per_gpu_at_interactivity" in gated_metrics and load.pareto_interactivity is not None
    return rows


class BaselineRefused(ValueError):
    """This run may not become a baseline; the old one (if any) is kept."""

    def __init__(self, path: Path, reasons: list[str]) -> None:
        self.path, self.reasons = path, reasons
        super().__init__(
            f"baseline NOT written to {path} (the previous one, if any, is kept): "
            + "; ".join(reasons)
            + ". Fix the run, or record it anyway with --force-baseline (the file then says so)"
        )


def _fingerprint(result: CaseResult) -> Fingerprint:
    facts = result.starts[0].facts if result.starts else None
    return Fingerprint.collect(server=result.server, facts=facts)
