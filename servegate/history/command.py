"""``servegate history``: every case and metric of the history with its trend and its change points."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from servegate.history import HistoryError

if TYPE_CHECKING:
    from servegate.history.changepoints import Trend

# Otava's defaults, repeated here so that `servegate --help` does not import SciPy and SQLAlchemy.
DEFAULT_MAX_PVALUE = 0.001


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "history",
        help="trends and change points (Apache Otava's E-Divisive) of every case and metric across sessions",
    )
    parser.add_argument(
        "--history-url",
        default=None,
        help="postgresql://user@host/db or an SQLite file (default: $SERVEGATE_HISTORY_URL or results/history.sqlite)",
    )
    parser.add_argument("--case", default=None, help="only this case id")
    parser.add_argument(
        "--metric",
        action="append",
        default=None,
        help="only this metric, e.g. ttft_p99_ms (repeatable; default: the gated metrics)",
    )
    parser.add_argument(
        "--max-pvalue",
        type=float,
        default=DEFAULT_MAX_PVALUE,
        help=f"significance of a change point, per series (default {DEFAULT_MAX_PVALUE:g}, Otava's)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from servegate.gate import DEFAULT_GATED_METRICS
    from servegate.history.changepoints import trends
    from servegate.history.store import HistoryStore, default_url

    url = args.history_url or default_url(Path("results"))
    if "://" not in url and not Path(url).exists():
        raise HistoryError(f"no history at {url}: a pytest run writes one there (or pass --history-url)")
    with HistoryStore(url) as store:
        sessions = store.sessions()
        found = trends(store, args.case, args.metric or DEFAULT_GATED_METRICS, args.max_pvalue)
    print(render(url, sessions, found, args.max_pvalue))
    return 0


def render(url: str, sessions: list[dict], found: list[Trend], max_pvalue: float) -> str:
    from servegate.history.changepoints import WINDOW
    from servegate.history.store import safe_url

    if not sessions:
        return f"history {safe_url(url)}: no sessions recorded yet"
    lines = [
        f"history {safe_url(url)}: {len(sessions)} session{'s' if len(sessions) != 1 else ''}, "
        f"{sessions[0]['created']} … {sessions[-1]['created']}",
        "",
    ]
    if not found:
        return "\n".join([*lines, "no series match the given --case/--metric"])
    table = [("case", "metric", "sessions", "first", "last", "change", "trend (newest 24)", "change points")]
    for t in found:
        first, last = t.points[0].mean, t.points[-1].mean
        change = f"{(last / first - 1) * 100:+.1f}%" if first else "-"
        row = (t.case_id, t.metric, str(len(t.points)), f"{first:.4g}", f"{last:.4g}", change, t.sparkline())
        table.append((*row, str(len(t.change_points))))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table]
    points = [cp for t in found for cp in t.change_points]
    lines += [
        "",
        f"change points (Apache Otava E-Divisive, window {WINDOW} sessions, p < {max_pvalue:g} per series): "
        + (str(len(points)) if points else "none"),
    ]
    lines += [f"  {cp.describe()}" for cp in points]
    return "\n".join(lines)
