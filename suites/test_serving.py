"""Serving benchmark: each case is n fresh server starts under one load; the summary shows mean ± 95% t CI."""

from __future__ import annotations

SUITE = "serving"


def test_serving(case, bench) -> None:
    result = bench.run(case)
    for start in result.starts:
        summary = start.summary
        assert summary.success_rate >= 0.95, (
            f"start {start.start_index}: success {summary.success_rate:.0%} < 95% (FAILING); "
            f"outcomes {summary.outcomes}; first errors {summary.first_errors}; server log {start.log_path}"
        )
