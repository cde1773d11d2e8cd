"""Where runs meet their baselines: record a case as the new baseline, or gate it against the stored one.

Each test decides its verdict when it finishes, before the session's other comparisons exist, so the multiple-
comparison correction uses the session's *planned* family size M (every gated metric of every selected case):
a p-value is adjusted to min(1, p·M), the first and strictest step of Holm's procedure. The family-wise false
REGRESSED rate therefore stays ≤ α for the whole session, under pytest-xdist too (every worker plans the same M).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from servegate.baseline import Baseline, Fingerprint, baseline_path, find_baseline, save_baseline
from servegate.gate import DEFAULT_GATED_METRICS, DERIVED_GATED_METRICS, Comparison, decide_in_family, evaluate
from servegate.runner import CaseResult
from servegate.stats import DEFAULT_TOLERANCE, Verdict


@dataclass
class RegressionGate:
    baselines_dir: Path
    hardware_id: str
    tolerance: float = DEFAULT_TOLERANCE
    family_size: int = 1
    gated_metrics: tuple[str, ...] = DEFAULT_GATED_METRICS + DERIVED_GATED_METRICS
    rows: list[Comparison] = field(default_factory=list)

    def path_for(self, suite: str, case_id: str) -> Path:
        return baseline_path(self.baselines_dir, self.hardware_id, suite, case_id)

    def as_baseline(self, suite: str, case_id: str, result: CaseResult) -> Baseline:
        return Baseline(
            hardware_id=self.hardware_id,
            suite=suite,
            config_id=case_id,
            values=result.values(),
            server=asdict(result.server),
            load=asdict(result.load),
            fingerprint=_fingerprint(result),
        )

    def record(self, suite: str, case_id: str, result: CaseResult) -> Path:
        """Store the case's per-start values and fingerprint as its baseline (atomically)."""
        return save_baseline(self.baselines_dir, self.as_baseline(suite, case_id, result))

    def check(self, suite: str, case_id: str, result: CaseResult) -> list[Comparison]:
        """Rows for this case against its baseline; a missing baseline is one NOT COMPARED row saying how to make
        one. A corrupted baseline raises ``BaselineError`` naming the file and what is wrong."""
        baseline = find_baseline(self.baselines_dir, self.hardware_id, suite, case_id)
        if baseline is None:
            path = self.path_for(suite, case_id)
            rows = [
                Comparison(
                    case_id,
                    "*",
                    Verdict.NOT_COMPARED,
                    f"not compared: no baseline at {path}; record one with --update-baselines",
                    tolerance=self.tolerance,
                )
            ]
        else:
            rows = evaluate(
                result.values(),
                baseline,
                self.gated_metrics,
                self.tolerance,
                current_fingerprint=_fingerprint(result),
                config_id=case_id,
            )
            rows = decide_in_family(rows, self.family_size)
        self.rows += rows
        return rows

    def compare_arms(self, case_id: str, a: CaseResult, b: CaseResult, suite: str) -> list[Comparison]:
        """Arm B against arm A of an ablation (same machine, same session): rows as the gate would give them,
        corrected within this comparison only, since an ablation reports and does not gate."""
        reference = self.as_baseline(suite, case_id, a)
        return evaluate(b.values(), reference, self.gated_metrics, self.tolerance, config_id=case_id)


def _fingerprint(result: CaseResult) -> Fingerprint:
    facts = result.starts[0].facts if result.starts else None
    return Fingerprint.collect(server=result.server, facts=facts)
