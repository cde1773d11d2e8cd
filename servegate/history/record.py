"""A finished session (or a merge of shards) enters the history, and learns what the history says about it.

``record_session`` appends the session, then looks at the trends of the session's own cases: their recent change
points are what the session's verdict mentions ("also a change point in history"), and the trends go into the
session's ``history`` so the HTML report can plot them from the results file alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servegate.history.changepoints import DEFAULT_MAX_PVALUE, Trend, trends
from servegate.history.store import HistoryStore, safe_url
from servegate.record import Session

PLOTTED_SESSIONS = 60  # the newest sessions of each series that the results file carries for the plot


@dataclass
class HistoryNote:
    url: str
    session_id: int
    new: bool
    sessions: int
    trends: list[Trend]

    def lines(self, session: Session) -> list[str]:
        """Terminal lines: where the session went, then every recent change point of its cases, said together
        with the session's own verdict for that metric when there is one."""
        where = "recorded as" if self.new else "already in the history as"
        out = [
            f"history: {where} session #{self.session_id} of {self.sessions} in {safe_url(self.url)} "
            f"(trends: servegate history --history-url {safe_url(self.url)})"
        ]
        verdicts = {(case.id, row.metric): row.verdict for case in session.cases for row in case.gate}
        for trend in self.trends:
            for cp in trend.recent_change_points():
                verdict = verdicts.get((trend.case_id, trend.metric))
                head = f"{verdict} here and also" if verdict else "also"
                out.append(f"history: {head} a change point in history: {cp.describe()}")
        return out

    def to_dict(self) -> dict[str, Any]:
        plotted = []
        for trend in self.trends:
            data = trend.to_dict()
            data["points"] = data["points"][-PLOTTED_SESSIONS:]
            plotted.append(data)
        return {
            "url": safe_url(self.url),
            "session_id": self.session_id,
            "sessions": self.sessions,
            "max_pvalue": DEFAULT_MAX_PVALUE,
            "trends": plotted,
        }


def record_session(session: Session, url: str) -> HistoryNote:
    """Append ``session`` to the history at ``url`` (one transaction) and return the note on it; the caller keeps
    ``note.to_dict()`` as ``session.history``. Raises ``HistoryError`` when the database cannot be used."""
    with HistoryStore(url) as store:
        recorded = store.append(session)
        case_ids = {case.id for case in session.cases}
        session_trends = [t for t in trends(store) if t.case_id in case_ids]
        return HistoryNote(url, recorded.session_id, recorded.new, len(store.sessions()), session_trends)
