"""The report's charts as inline PNG data URIs, so the HTML is one file that opens anywhere without a network.

matplotlib's object API (``Figure`` + Agg canvas) is used instead of pyplot: no global state, no GUI backend, safe
inside pytest sessions and threads. Every function takes plain numbers (the forest plot: the record's gate rows)
and returns a ``Chart``: the ``data:image/png;base64,...`` string and, per panel, the value axis's limits next to
the extent of what was drawn on it (so a report test can see an axis below zero or a whisker cut off at the top
without reading pixels).
Non-finite values (an unbounded CI from a single start) are drawn without error bars rather than crashing.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter, ScalarFormatter

from servegate.record import GateRow

VERDICT_COLORS = {"REGRESSED": "#c0392b", "OK": "#2e8b57", "INCONCLUSIVE": "#d68910", "IMPROVED": "#1e8449"}
STATUS_COLORS = {"OK": "#2e8b57", "DEGRADED": "#d68910", "SATURATED": "#2f6fb0", "FAILING": "#c0392b"}
PALETTE = ["#2f6fb0", "#d35400", "#2e8b57", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#b7950b"]
DPI = 110
WIDE_SPAN = 10.0  # CI ends this far apart: a linear axis would show whiskers and no bars

Series = tuple[Sequence[float], Sequence[float], Sequence[float]]  # means, CI lows, CI highs


def _fig(width: float = 6.2, height: float = 3.4) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _style(ax: object) -> None:
    ax.grid(True, color="#e5e7eb", linewidth=0.8)  # type: ignore[attr-defined]
    ax.set_axisbelow(True)  # type: ignore[attr-defined]
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)  # type: ignore[attr-defined]
    ax.tick_params(labelsize=8.5)  # type: ignore[attr-defined]


def to_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass(frozen=True)
class Panel:
    """One subplot's value axis: its limits, the extent of the data drawn on it, how many values it shows."""

    axis_low: float
    axis_high: float
    data_low: float
    data_high: float
    points: int | None  # values plotted (None: not counted, e.g. time series)

    def to_list(self) -> list[float | int | None]:
        return [self.axis_low, self.axis_high, self.data_low, self.data_high, self.points]


@dataclass(frozen=True)
class Chart:
    uri: str
    panels: tuple[Panel, ...]


def chart(fig: Figure, value_axis: str = "y", points: Sequence[int] | None = None) -> Chart:
    """Render ``fig`` and keep each panel's value-axis facts (after layout, so the limits are the drawn ones)."""
    uri = to_data_uri(fig)
    panels = []
    axes = [ax for ax in fig.axes if ax.has_data()]
    for i, ax in enumerate(axes):
        low, high = ax.get_ylim() if value_axis == "y" else ax.get_xlim()
        lim = ax.dataLim
        d_low, d_high = (lim.y0, lim.y1) if value_axis == "y" else (lim.x0, lim.x1)
        count = points[i] if points is not None and i < len(points) else None
        panels.append(Panel(float(min(low, high)), float(max(low, high)), float(d_low), float(d_high), count))
    return Chart(uri, tuple(panels))


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _yerr(means: Sequence[float], lows: Sequence[float], highs: Sequence[float]) -> list[list[float]]:
    """Asymmetric error bars; zero length where the CI is unbounded (n = 1) so the point still shows."""
    lo = [m - lo if _finite(lo) and _finite(m) else 0.0 for m, lo in zip(means, lows, strict=True)]
    hi = [hi - m if _finite(hi) and _finite(m) else 0.0 for m, hi in zip(means, highs, strict=True)]
    return [lo, hi]


def _clean(values: Sequence[float | None]) -> list[float]:
    return [v if _finite(v) else math.nan for v in values]  # type: ignore[misc]


def sweep_chart(
    x: Sequence[float],
    series: Mapping[str, Series],
    title: str,
    ylabel: str,
    xlabel: str = "concurrency",
    floor: float | None = None,
    floor_label: str = "physical floor",
    markers: Mapping[int, str] | None = None,
    log_x: bool = True,
    log_y: bool = False,
) -> Chart:
    """Metric vs load level with 95% CI bars; optional floor line and per-level status shading.

    ``log_y`` switches to a log axis only when the data spans > 30x, so the low-load levels and a floor line far
    below them stay visible instead of being squashed onto the x axis by the saturated tail. Intervals wider than
    ``WIDE_SPAN`` switch any chart to a log axis, where a wide interval stays a bar instead of flattening the lines.
    """
    fig = _fig()
    ax = fig.add_subplot()
    for i, (name, (means, lows, highs)) in enumerate(series.items()):
        m = _clean(means)
        ax.errorbar(
            x,
            m,
            yerr=_yerr(m, _clean(lows), _clean(highs)),
            marker="o",
            ms=4,
            capsize=3,
            lw=1.6,
            color=PALETTE[i % len(PALETTE)],
            label=name,
        )
    if floor is not None and _finite(floor):
        ax.axhline(floor, color="#555", ls="--", lw=1.1, label=f"{floor_label} {floor:.3g}")
    if markers:
        for idx, status in markers.items():
            ax.axvspan(
                x[idx] / 1.25 if log_x else x[idx] - 0.4,
                x[idx] * 1.25 if log_x else x[idx] + 0.4,
                color=STATUS_COLORS.get(status, "#999"),
                alpha=0.10,
                lw=0,
            )
    finite = [v for _, (means, _lo, _hi) in series.items() for v in _clean(means) if _finite(v) and v > 0]
    # CI ends this far apart (2 starts: t = 12.7) would squash every line onto the x axis of a linear chart.
    ends = [v for _, (_m, lows, highs) in series.items() for v in (*_clean(lows), *_clean(highs)) if _finite(v)]
    wide = bool(ends) and min(ends) > 0 and max(ends) / min(ends) > WIDE_SPAN
    if wide or (log_y and finite and max(finite) / min(finite) > 30):
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    if log_x and all(v > 0 for v in x):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(x), [f"{v:g}" for v in x])
    ax.set_title(title, fontsize=10.5, loc="left")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    _style(ax)
    handles, _labels = ax.get_legend_handles_labels()
    for status in dict.fromkeys((markers or {}).values()):
        handles.append(Patch(color=STATUS_COLORS.get(status, "#999"), alpha=0.25, label=status))
    ax.legend(handles=handles, fontsize=8, frameon=False)
    return chart(fig, points=[sum(1 for v in _clean(m) if _finite(v)) for m, _lo, _hi in series.values()][:1])


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def point_panels(groups: Mapping[str, Sequence[tuple[str, float, float, float]]], title: str) -> Chart:
    """Single-level cases: per metric a panel of points with 95% CIs, since a line through one level would be a lie.

    One panel per quantity keeps a 10 ms ITL readable next to a 2 s E2EL, which a shared axis would flatten.
    """
    groups = {k: v for k, v in groups.items() if len(v) > 1}  # one value is a table cell, not a chart
    fig = _fig(3.1 * max(1, len(groups)), 2.8)
    for k, (name, rows) in enumerate(groups.items()):
        ax = fig.add_subplot(1, len(groups), k + 1)
        means = _clean([r[1] for r in rows])
        xs = list(range(len(rows)))
        err = _yerr(means, _clean([r[2] for r in rows]), _clean([r[3] for r in rows]))
        ax.errorbar(xs, means, yerr=err, fmt="o", ms=6, capsize=6, color=PALETTE[k % 8], lw=1.6)
        for xi, m in zip(xs, means, strict=True):
            if _finite(m):
                ax.annotate(_num(m), (xi, m), textcoords="offset points", xytext=(9, 0), va="center", fontsize=8)
        ax.set_xticks(xs, [r[0] for r in rows])
        ax.set_xlim(-0.6, len(rows) - 0.1)
        tops = [v for v in [*means, *_clean([r[3] for r in rows])] if _finite(v)]
        ax.set_ylim(bottom=0, top=max([*tops, 0]) * 1.12 or 1)  # room for the highest whisker, not just the means
        ax.set_title(name, fontsize=9.5, loc="left")
        _style(ax)
    fig.suptitle(title, fontsize=10.5, x=0.01, ha="left")
    return chart(fig, points=[len(rows) for rows in groups.values()])


def per_start_percentiles(per_start: Mapping[str, Mapping[str, Mapping[str, float]]], title: str) -> Chart:
    """Small multiples, one per latency metric: each start's distribution as its percentile profile.

    ``per_start`` maps start label -> metric -> {"mean": .., "p50": .., "p99": ..}. Starts that disagree show up as
    separated lines, which is the restart-to-restart variance the CI is built from.
    """
    metrics = sorted({m for d in per_start.values() for m in d}, key=["ttft", "itl", "tpot", "e2el"].index)
    fig = _fig(12.4, 2.9)
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), k + 1)
        for i, (start, by_metric) in enumerate(per_start.items()):
            points = by_metric.get(metric, {})
            names = [n for n in ("p50", "p90", "p95", "p99", "p99_9") if n in points]
            ax.plot(names, [points[n] for n in names], marker="o", ms=3.5, lw=1.3, color=PALETTE[i % 8], label=start)
        ax.set_title(f"{metric.upper()} (ms)", fontsize=9.5, loc="left")
        ax.set_ylim(bottom=0)
        _style(ax)
        if k == 0:
            ax.legend(fontsize=7.5, frameon=False, loc="best")
    fig.suptitle(title, fontsize=10.5, x=0.01, ha="left")
    return chart(fig)


def forest_plot(rows: Sequence[GateRow], title: str, tolerance: float | None = None) -> Chart:
    """Ratio CIs ("> 1 means worse") per gated metric, coloured by verdict: the whole gate at one glance."""
    fig = _fig(9.0, 1.1 + 0.4 * len(rows))
    ax = fig.add_subplot()
    y = list(range(len(rows)))[::-1]
    for yi, row in zip(y, rows, strict=True):
        ratio = row.ratio if row.ratio is not None else math.nan
        lo = row.ci_low if row.ci_low is not None else math.nan
        hi = row.ci_high if row.ci_high is not None else math.nan
        color = VERDICT_COLORS.get(row.verdict, "#7f8c8d")
        if _finite(lo) and _finite(hi):
            ax.plot([lo, hi], [yi, yi], color=color, lw=2.4, solid_capstyle="butt")
        ax.plot([ratio], [yi], marker="D", ms=6, color=color)
    ax.axvline(1.0, color="#333", lw=1)
    if tolerance:
        ax.axvline(1.0 + tolerance, color="#999", lw=1, ls=":")
    ax.set_yticks(y, [r.metric for r in rows], fontsize=8.5)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("ratio current / reference  (> 1 is worse)", fontsize=9)
    ax.set_title(title, fontsize=10.5, loc="left")
    handles = [Line2D([], [], color=c, marker="D", lw=2, label=v) for v, c in VERDICT_COLORS.items()]
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="best")
    left, right = ax.get_xlim()
    ax.set_xlim(max(left, 0.0), right)  # ratios are positive: no axis below zero
    _style(ax)
    return chart(fig, "x")


def stacked_phases(rows: Mapping[str, Mapping[str, float]], title: str) -> Chart:
    """Cold-start phases per server start as stacked bars: where the minutes before the first token go."""
    phases: list[str] = []
    for d in rows.values():
        phases += [p for p in d if p not in phases]
    fig = _fig(9.0, 1.1 + 0.42 * len(rows))
    ax = fig.add_subplot()
    labels = list(rows)
    y = list(range(len(labels)))[::-1]
    left = [0.0] * len(labels)
    for i, phase in enumerate(phases):
        widths = [float(rows[lab].get(phase) or 0.0) for lab in labels]
        ax.barh(y, widths, left=left, color=PALETTE[i % 8], label=phase, height=0.6)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_yticks(y, labels)
    ax.set_xlabel("seconds", fontsize=9)
    ax.set_title(title, fontsize=10.5, loc="left")
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    _style(ax)
    return chart(fig, "x")


def level_bars(labels: Sequence[str], bars: Mapping[str, Sequence[float]], title: str, ylabel: str) -> Chart:
    """Per-level bars (peak KV-cache usage, preemptions): categorical, so gaps in a sweep stay honest."""
    fig = _fig()
    ax = fig.add_subplot()
    n = max(1, len(bars))
    width = 0.8 / n
    for i, (name, vals) in enumerate(bars.items()):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(labels))]
        ax.bar(xs, _clean(list(vals)), width=width, color=PALETTE[i % 8], label=name)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_title(title, fontsize=10.5, loc="left")
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_ylim(bottom=0)
    _style(ax)
    if len(bars) > 1:
        ax.legend(fontsize=8, frameon=False)
    return chart(fig, points=[sum(1 for v in _clean(list(vals)) if _finite(v)) for vals in bars.values()][:1])


def arms_chart(metrics: Sequence[str], arms: Mapping[str, Sequence[tuple[float, float, float]]], title: str) -> Chart:
    """A/B arms side by side, one panel per metric, mean with 95% CI: the ablation as seed 003 Table 26 shows it."""
    fig = _fig(3.0 * max(1, len(metrics)), 2.9)
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), k + 1)
        names = list(arms)
        means = _clean([arms[a][k][0] for a in names])
        lows, highs = _clean([arms[a][k][1] for a in names]), _clean([arms[a][k][2] for a in names])
        err = _yerr(means, lows, highs)
        ends = [v for v in (*lows, *highs) if _finite(v) and v > 0]
        if ends and max(ends) / min(ends) > WIDE_SPAN:  # bars would vanish under the whiskers: points on a log axis
            for i, (mean, below, above) in enumerate(zip(means, err[0], err[1], strict=True)):
                ax.errorbar([i], [mean], yerr=[[below], [above]], fmt="o", ms=7, color=PALETTE[i % 8], capsize=5)
            ax.set_yscale("log")
            ax.set_xlim(-0.6, len(names) - 0.4)
        else:
            ax.bar(range(len(names)), means, color=[PALETTE[i % 8] for i in range(len(names))], width=0.6, alpha=0.85)
            ax.errorbar(range(len(names)), means, yerr=err, fmt="none", ecolor="#222", capsize=5, lw=1.3)
            ax.set_ylim(bottom=0)
        ax.set_xticks(range(len(names)), names)
        ax.set_title(metric, fontsize=9.5, loc="left")
        _style(ax)
    fig.suptitle(title, fontsize=10.5, x=0.01, ha="left")
    finite = [sum(1 for a in arms if _finite(arms[a][k][0])) for k in range(len(metrics))]
    return chart(fig, points=finite)


def capacity_chart(
    per_start: Sequence[Sequence[tuple[float, float]]],
    metric: str,
    bound: float,
    capacity: tuple[float, float, float],
    title: str,
) -> Chart:
    """A limited metric against concurrency per start (the levels the search measured), its bound, and the capacity
    across starts as a line with its CI as a band."""
    fig = _fig(6.2, 3.4)
    ax = fig.add_subplot(111)
    for i, points in enumerate(per_start):
        pts = sorted((c, v) for c, v in points if _finite(v))
        if pts:
            ax.plot(
                [c for c, _ in pts],
                [v for _, v in pts],
                "o-",
                color=PALETTE[i % len(PALETTE)],
                lw=1.4,
                ms=5,
                label=f"start {i + 1}",
            )
    ax.axhline(bound, color="#c0392b", ls="--", lw=1.2, label=f"{metric} bound {_num(bound)}")
    mean, low, high = capacity
    if _finite(mean):
        ax.axvline(mean, color="#2e8b57", lw=1.6, label=f"capacity {_num(mean)}")
        if _finite(low) and _finite(high):
            ax.axvspan(low, high, color="#2e8b57", alpha=0.15, label="95% CI over starts")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # plain numbers, not 2^3 or 2x10^2
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("concurrency", fontsize=9)
    ax.set_ylabel(metric, fontsize=9)
    ax.set_title(title, fontsize=10)
    _style(ax)
    ax.legend(fontsize=7.5, loc="upper left")
    return chart(fig)


def pareto_chart(
    per_start: Sequence[tuple[Sequence[tuple[str, float, float]], Sequence[str]]],
    target: float | None,
    value: float | None,
    title: str,
) -> Chart:
    """Output tokens/s per GPU against tokens/s per user, every level of every start; the front as a line; the gated
    reading (throughput at the target interactivity) as a marked point."""
    fig = _fig(6.2, 3.6)
    ax = fig.add_subplot(111)
    for i, (points, front) in enumerate(per_start):
        color = PALETTE[i % len(PALETTE)]
        ax.scatter([x for _, x, _ in points], [y for _, _, y in points], color=color, s=22, alpha=0.7)
        for label, x, y in points:
            ax.annotate(label.rsplit("/", 1)[-1], (x, y), fontsize=6.5, xytext=(3, 3), textcoords="offset points")
        on_front = sorted((x, y) for label, x, y in points if label in front)
        ax.plot(
            [x for x, _ in on_front], [y for _, y in on_front], "-", color=color, lw=1.4, label=f"start {i + 1} front"
        )
    if target is not None:
        ax.axvline(target, color="#7f8c8d", ls=":", lw=1.2, label=f"interactivity {_num(target)} tok/s/user")
        if value is not None and _finite(value):
            ax.plot([target], [value], "D", color="#c0392b", ms=7, label=f"{_num(value)} tok/s/GPU (mean)")
    ax.set_xlabel("interactivity: output tokens/s per user (1000 / TPOT p50 ms)", fontsize=9)
    ax.set_ylabel("output tokens/s per GPU", fontsize=9)
    ax.set_title(title, fontsize=10)
    _style(ax)
    ax.legend(fontsize=7.5)
    ax.set_ylim(bottom=0)
    return chart(fig)
