"""Change points across sessions: Apache Otava's E-Divisive (the Hunter variant) over each metric's history.

Each (case, metric) series is one value per session, the mean over that session's starts. Otava splits the series
where the distributions before and after differ most (E-Divisive on sliding windows), then keeps only the points
whose two-sided t-test between neighbouring segments has p < ``max_pvalue``. The default 0.001 is Otava's own:
per series of 30 sessions with 2% noise about one series in forty shows a false change point
(``python bench/changepoint_false_alarms.py``), which is why only gated metrics are examined unless asked.

A change point is reported at the first session after the change, with the fingerprint fields that changed
between that session and the one before (vLLM 0.20.1 → 0.20.2, another image digest, another git SHA).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from otava.analysis import compute_change_points

from servegate.gate import DEFAULT_GATED_METRICS
from servegate.history.command import DEFAULT_MAX_PVALUE  # Otava's default significance for a change point
from servegate.history.mapping import FINGERPRINT_FIELDS
from servegate.history.store import HistoryStore, Point

WINDOW = 50  # Otava's default sliding window (sessions)
MIN_SESSIONS = 4  # fewer points cannot carry a change point with two sides to compare
RECENT_SESSIONS = 5  # "also a change point in history": one among the newest sessions of the series


@dataclass(frozen=True)
class ChangePoint:
    """Where a series' level moved: the first session after the change, the means either side and the p-value."""

    case_id: str
    metric: str
    index: int  # position in the series (0 = oldest session of the series)
    session_id: int
    created: str
    mean_before: float
    mean_after: float
    p_value: float
    changed: tuple[str, ...] = ()  # "vllm_version 0.20.1 → 0.20.2"

    @property
    def change(self) -> float:
        """Relative change of the metric, after vs before (+0.10 = 10% higher)."""
        return self.mean_after / self.mean_before - 1 if self.mean_before else math.nan

    def describe(self) -> str:
        what = "; changed: " + ", ".join(self.changed) if self.changed else "; no fingerprint field changed"
        return (
            f"{self.case_id} {self.metric} at session #{self.session_id} ({self.created}): "
            f"{self.mean_before:.4g} → {self.mean_after:.4g} ({self.change * 100:+.1f}%), p={self.p_value:.2g}{what}"
        )


@dataclass
class Trend:
    case_id: str
    metric: str
    points: list[Point]
    change_points: list[ChangePoint] = field(default_factory=list)

    def sparkline(self, width: int = 24) -> str:
        values = [p.mean for p in self.points[-width:]]
        low, high = min(values), max(values)
        bars = "▁▂▃▄▅▆▇█"
        if high == low:
            return bars[3] * len(values)
        return "".join(bars[min(7, int((v - low) / (high - low) * 8))] for v in values)

    def recent_change_points(self, sessions: int = RECENT_SESSIONS) -> list[ChangePoint]:
        """Change points among the series' newest sessions: what a session's verdict can mention."""
        return [cp for cp in self.change_points if cp.index >= len(self.points) - sessions]

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "metric": self.metric,
            "points": [[p.session_id, p.created, p.mean] for p in self.points],
            "change_points": [asdict(cp) for cp in self.change_points],
        }


def detect(values: Sequence[float], max_pvalue: float = DEFAULT_MAX_PVALUE) -> list[tuple[int, float, float, float]]:
    """(index, p-value, mean before, mean after) of every change point Otava finds in ``values``."""
    if len(values) < MIN_SESSIONS:
        return []
    found, _weak = compute_change_points(list(values), window_len=WINDOW, max_pvalue=max_pvalue)
    return [(int(cp.index), float(cp.stats.pvalue), float(cp.stats.mean_1), float(cp.stats.mean_2)) for cp in found]


def wanted(metric: str, names: Sequence[str]) -> bool:
    """``metric`` is one of ``names`` or a level's version of one (``c64/ttft_median_ms``)."""
    return metric in names or metric.rsplit("/", 1)[-1] in names


def trends(
    store: HistoryStore,
    case_id: str | None = None,
    metrics: Sequence[str] = DEFAULT_GATED_METRICS,
    max_pvalue: float = DEFAULT_MAX_PVALUE,
) -> list[Trend]:
    """Every (case, metric) series of the history with its change points, cases and metrics in name order."""
    sessions = {s["id"]: s for s in store.sessions()}
    out = []
    for (cid, metric), points in sorted(store.series(case_id).items()):
        if not wanted(metric, metrics):
            continue
        trend = Trend(cid, metric, points)
        for index, p_value, before, after in detect([p.mean for p in points], max_pvalue):
            previous, current = sessions[points[index - 1].session_id], sessions[points[index].session_id]
            trend.change_points.append(
                ChangePoint(
                    cid,
                    metric,
                    index,
                    points[index].session_id,
                    points[index].created,
                    before,
                    after,
                    p_value,
                    changed_fields(previous, current),
                )
            )
        out.append(trend)
    return out


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        f"{name} {before.get(name) or 'none'} → {after.get(name) or 'none'}"
        for name in FINGERPRINT_FIELDS
        if before.get(name) != after.get(name)
    )
