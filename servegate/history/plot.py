"""The HTML report's history section: per case, its gated metrics across sessions with change points marked.

Drawn from the session's ``history`` alone (``HistoryNote.to_dict()``, kept in the results file when the session
was recorded), so ``servegate report`` renders the same section days later without the database.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from servegate.record import Session
from servegate.report.plots import DPI, PALETTE, VERDICT_COLORS, to_data_uri


def trend_chart(case_id: str, trends: list[Mapping[str, Any]]) -> str:
    """One case's metrics as % of their first plotted session (so latencies and throughputs share an axis), each
    session a point at its history id; every change point a dashed line at its session."""
    fig = Figure(figsize=(7.2, 3.2), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    marked: set[int] = set()
    for color, trend in zip(PALETTE * 4, trends, strict=False):
        points = trend["points"]
        if not points or not points[0][2]:
            continue
        first = points[0][2]
        ax.plot(
            [p[0] for p in points],
            [100 * (p[2] / first - 1) for p in points],
            marker="o",
            markersize=3,
            linewidth=1.2,
            color=color,
            label=trend["metric"],
        )
        for cp in trend["change_points"]:
            if cp["session_id"] not in marked:
                marked.add(cp["session_id"])
                ax.axvline(cp["session_id"] - 0.5, color=VERDICT_COLORS["REGRESSED"], linestyle="--", linewidth=1)
    ax.axhline(0, color="#9ca3af", linewidth=0.8)
    ax.set_xlabel("history session #", fontsize=9)
    ax.set_ylabel("% vs first session shown", fontsize=9)
    ax.set_title(f"{case_id}: trend, change points dashed", fontsize=10)
    ax.grid(True, color="#e5e7eb", linewidth=0.8)
    ax.legend(fontsize=7.5, frameon=False, loc="best")
    return to_data_uri(fig)


def render_history(session: Session) -> str:
    """The report section, or "" when the session was not recorded in a history."""
    history = session.history
    if not history or not history.get("trends"):
        return ""
    by_case: dict[str, list[Mapping[str, Any]]] = {}
    for trend in history["trends"]:
        by_case.setdefault(trend["case_id"], []).append(trend)
    esc = html.escape
    parts = [
        '<section class="card" id="history"><h2>History</h2>',
        f'<p class="note">Session #{esc(str(history.get("session_id")))} of {esc(str(history.get("sessions")))} in '
        f"{esc(str(history.get('url')))}. Change points: Apache Otava E-Divisive, p &lt; "
        f"{esc(str(history.get('max_pvalue')))} per series.</p>",
    ]
    for case_id, trends in by_case.items():
        if max(len(t["points"]) for t in trends) < 2:  # one session is no trend: a chart of it is one dot
            parts.append(f'<p class="note">{esc(case_id)}: first session in this history, no trend yet.</p>')
        else:
            parts.append(f'<img class="wide" alt="trend of {esc(case_id)}" src="{trend_chart(case_id, trends)}">')
        rows = [
            f"<tr><td>{esc(t['metric'])}</td><td>#{cp['session_id']} ({esc(cp['created'])})</td>"
            f"<td>{cp['mean_before']:.4g} → {cp['mean_after']:.4g} "
            f"({(cp['mean_after'] / cp['mean_before'] - 1) * 100:+.1f}%)</td><td>{cp['p_value']:.2g}</td>"
            f"<td>{esc(', '.join(cp['changed']) or 'no fingerprint field')}</td></tr>"
            for t in trends
            for cp in t["change_points"]
            if cp["mean_before"]
        ]
        if rows:
            parts.append(
                "<table><tr><th>metric</th><th>session</th><th>change</th><th>p</th><th>what changed</th></tr>"
                + "".join(rows)
                + "</table>"
            )
    parts.append("</section>")
    return "".join(parts)
