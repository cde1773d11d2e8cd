"""The results record: one typed model of a session, from which the results JSON, every report and the history
are made.

A session holds cases; a case holds its server starts, each start its load levels, each level the run's summary.
Beside the starts a case carries what was computed over them once: the per-start values, their statistics, each
level's status label, the gate's rows and looks, and (by suite) correctness, cold-start phases or KV saturation.
The runner and the gate write these objects; the file is their dump; loading a file validates it back into the
same objects, so a report never guesses at a key and a file of another shape is refused naming the place.

The leaves are the measuring code's own dataclasses (``RunSummary``, ``Distribution``, ``StartupFacts``), so a
field added to a summary is a field of the record with no second declaration to keep in step. Unknown keys are
refused everywhere else: a misspelt annotation fails where it is written, not in a report weeks later.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from servegate.launch.base import StartupFacts
from servegate.metrics import RunSummary

VerdictName = Literal["REGRESSED", "OK", "INCONCLUSIVE", "IMPROVED", "NOT COMPARED"]


class Record(BaseModel):
    """Every part of the record: unknown keys refused, assignments (annotations after the fact) validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Level(Record):
    """One load level of one start: its label (``c8``, ``phase/c8``), its load and what the run measured."""

    label: str
    concurrency: int | None = None
    rate: float | None = None
    summary: RunSummary


class Start(Record):
    """One fresh server: what its log said, the levels measured on it, and values derived over those levels."""

    index: int  # 0-based; reports number starts from 1
    facts: StartupFacts
    levels: list[Level]
    warmup_s: float = 0.0
    derived: dict[str, float] = Field(default_factory=dict)  # capacity_at_slo, Pareto reading, ...
    findings: dict[str, Any] = Field(default_factory=dict)  # what the workload sections draw (search probes, front)
    log_path: str | None = None
    server_lost: str | None = None  # the level during which the server died


class Stat(Record):
    """One metric over starts: mean and the interval a reader can take literally (see results.stats_of)."""

    n: int
    mean: float
    sd: float
    cov: float
    ci_low: float
    ci_high: float
    ci_method: str
    confidence: float = 0.95


class LevelStatus(Record):
    """A level's seed 003 Table 7 label and the two ratios that decided it (servegate.status)."""

    phase: str
    status: str
    p99_vs_baseline: float | None = None
    gain_vs_previous: float | None = None
    saturation_onset: bool = False


class GateRow(Record):
    """One gated metric's comparison (servegate.gate.Comparison as written; non-finite numbers are None)."""

    config_id: str
    metric: str
    verdict: VerdictName
    reason: str
    baseline_mean: float | None = None
    current_mean: float | None = None
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    level: float | None = None
    n_baseline: int = 0
    n_current: int = 0
    look: int = 0
    family_size: int = 1
    pairing: str = ""
    tolerance: float
    alpha: float
    two_sided: bool = False
    notes: list[str] = Field(default_factory=list)  # fingerprint differences that did not block the comparison
    config_diff: dict[str, ConfigChange] = Field(default_factory=dict)  # NOT COMPARED: what differs from baseline


class ConfigChange(Record):
    """One setting that differs between the baseline and this run (dotted path -> both values)."""

    baseline: Any
    current: Any


class Look(Record):
    """The state of a case's rows after one look of the sequential gate."""

    n: int
    decided: int
    open: int
    verdicts: dict[str, int] = Field(default_factory=dict)


class Variance(Record):
    """One metric's variance split into within-start sampling and between-start parts (servegate.precision)."""

    n_starts: int
    within_var: float | None
    between_var: float | None
    unsupported_starts: int
    advice: str


class Correctness(Record):
    """Greedy outputs of the correctness suite: across starts, and against the golden file."""

    prompts: list[str]
    outputs: list[str]
    max_tokens: int | None = None
    starts: int
    across_starts: list[str]
    golden: str | None = None
    golden_status: str
    golden_mismatches: list[str]
    golden_outputs: list[str] | None = None


class Case(Record):
    """One benchmark case (or one arm of an A/B case) over all its starts."""

    id: str
    suite: str
    hardware: str
    server: dict[str, Any]  # the effective ServerConfig, secret env values masked
    server_id: str
    load: dict[str, Any]  # the effective LoadConfig of its last step
    load_id: str
    starts: list[Start]
    values: dict[str, list[float]]  # per-start values of every scalar metric, ``<level>/<metric>`` when multi-level
    stats: dict[str, Stat]
    status: dict[str, LevelStatus]  # level label -> label
    variance: dict[str, Variance] = Field(default_factory=dict)
    gate: list[GateRow] = Field(default_factory=list)
    gate_looks: list[Look] = Field(default_factory=list)
    ab: list[GateRow] = Field(default_factory=list)  # this arm against the first (A/B cases)
    ab_looks: list[Look] = Field(default_factory=list)
    arm: str | None = None
    ab_group: str | None = None
    correctness: Correctness | None = None
    cold_start: list[dict[str, Any]] = Field(default_factory=list)  # per start: phase -> seconds
    kv_saturation: list[dict[str, Any]] = Field(default_factory=list)  # per start and level: peaks, preemptions

    def level_labels(self) -> list[str]:
        """Level labels in sweep order, over every start (a start that stopped early has fewer)."""
        labels: list[str] = []
        for start in self.starts:
            for level in start.levels:
                if level.label not in labels:
                    labels.append(level.label)
        return labels

    def client_bound_levels(self) -> list[str]:
        """``start N level L: why`` for every level whose numbers may measure the client, not the server."""
        return [
            f"start {start.index + 1} level {level.label}: {level.summary.client_bound_reason or 'client-bound'}"
            for start in self.starts
            for level in start.levels
            if level.summary.client_bound
        ]

    def stat(self, label: str | None, metric: str) -> Stat | None:
        """The statistics of ``metric`` at level ``label`` (key ``label/metric`` when the case has several)."""
        multi = len(self.level_labels()) > 1
        return self.stats.get(f"{label}/{metric}" if multi and label is not None else metric)


class ShardInfo(Record):
    """Which shard of a split session this is, and the plan every shard must share to be merged."""

    index: int
    count: int
    planned_family: int
    gate: str


class ShardSource(Record):
    """One shard file a merged session was made from."""

    file: str
    index: int
    created: str | None = None
    hardware: str | None = None
    command: str | None = None


class NonFinite(Record):
    """Where the file has null for a number that was not finite, and which (JSON has no NaN)."""

    reason: str
    paths: list[list[str | int]]
    values: list[str]


class Session(Record):
    """A whole session: what ran, where, and every case."""

    schema_version: int
    servegate_version: str
    created: str
    environment: dict[str, Any]  # readable lines plus the raw ``fingerprint``
    cases: list[Case]
    shard: ShardInfo | None = None
    shards: list[ShardSource] | None = None  # a merged session's sources
    gate_mode: str | None = None  # a merged session's gate mode
    history: dict[str, Any] | None = None  # servegate.history.record.HistoryNote.to_dict()
    upgraded_from_schema: int | None = None
    non_finite: NonFinite | None = None


GateRow.model_rebuild()
