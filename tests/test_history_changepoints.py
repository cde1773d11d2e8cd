"""Change points through the real store and the `servegate history` command: a planted step in 30 nightly sessions
is found at the session where it was planted, with the fingerprint field that changed there; an A/A history of the
same length gives none (Otava's default false-alarm setting: p < 0.001 per series)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from servegate.cli import main
from servegate.history.record import record_session
from servegate.history.store import HistoryStore
from servegate.record import GateRow
from servegate.report.html import render_html
from servegate.results import load_results, write_results
from tests.history_sessions import make_session, stamp

SESSIONS = 30
STEP_AT = 18  # the 18th session (index 17) is the first with the slower vLLM
NOISE = 0.02  # CoV of a start's speed, typical of repeated CPU runs here


def nightly(url: str, step: float, seed: int) -> None:
    """30 sessions of two cases with two starts each; from STEP_AT on, case cpu/a is ``step`` slower and the
    vLLM version moves from 0.20.1 to 0.20.2 (case cpu/b does not change)."""
    rng = np.random.default_rng(seed)
    with HistoryStore(url) as store:
        for day in range(SESSIONS):
            after = day + 1 >= STEP_AT
            slow = 1 + step if after else 1.0
            scales = {
                "cpu/a": list(slow * (1 + NOISE * rng.standard_normal(2))),
                "cpu/b": list(1.3 * (1 + NOISE * rng.standard_normal(2))),
            }
            store.append(make_session(stamp(day), scales, vllm_version="0.20.2" if after else "0.20.1"))


def history(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["history", "--history-url", url, *args]) == 0
    return capsys.readouterr().out


def test_a_planted_step_is_found_at_its_session_with_what_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(tmp_path / "history.sqlite")
    nightly(url, step=0.10, seed=1)
    out = history(url, capsys)
    assert f"{SESSIONS} sessions" in out
    found = [line.strip() for line in out.splitlines() if " at session #" in line]
    # Every gated metric of cpu/a moves at the step (latencies up, throughputs down), nothing of cpu/b does.
    assert len(found) == 5, out
    for line in found:
        assert line.startswith("cpu/a ") and f"at session #{STEP_AT} " in line, line
        assert "changed: vllm_version 0.20.1 → 0.20.2" in line
    ttft = next(line for line in found if " ttft_median_ms " in line)
    change = float(ttft.split("(")[2].split("%")[0])
    assert 7 < change < 13  # the planted +10%, measured through means of noisy starts


def test_an_aa_history_has_no_change_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = str(tmp_path / "history.sqlite")
    nightly(url, step=0.0, seed=1)
    out = history(url, capsys)
    assert f"{SESSIONS} sessions" in out
    assert "p < 0.001 per series): none" in out, out


def test_filters_and_a_missing_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = str(tmp_path / "history.sqlite")
    nightly(url, step=0.10, seed=1)
    out = history(url, capsys, "--case", "cpu/a", "--metric", "ttft_p99_ms")
    rows = [line for line in out.splitlines() if line.startswith("cpu/")]
    assert [r.split()[:2] for r in rows] == [["cpu/a", "ttft_p99_ms"]]
    assert main(["history", "--history-url", str(tmp_path / "none.sqlite")]) == 2
    assert "no history at" in capsys.readouterr().err


def test_a_session_hears_about_a_recent_change_point(tmp_path: Path) -> None:
    """The note a session gets after recording: a change point among the newest sessions, with its verdict."""
    url = str(tmp_path / "history.sqlite")
    rng = np.random.default_rng(3)
    for day in range(SESSIONS):
        slow = 1.15 if day >= SESSIONS - 4 else 1.0
        session = make_session(stamp(day), {"cpu/a": list(slow * (1 + NOISE * rng.standard_normal(2)))})
        note = record_session(session, url)
    session.cases[0].gate = [
        GateRow(
            config_id="cpu/a", metric="ttft_median_ms", verdict="REGRESSED", reason="slower", tolerance=0.03, alpha=0.05
        )
    ]
    lines = note.lines(session)
    assert lines[0].startswith(f"history: recorded as session #{SESSIONS} of {SESSIONS} in ")
    assert any(
        line.startswith("history: REGRESSED here and also a change point in history: cpu/a ttft_median_ms")
        for line in lines
    ), lines
    assert note.to_dict()["trends"][0]["points"][-1][0] == SESSIONS


def test_the_report_plots_the_trend_with_its_change_points(tmp_path: Path) -> None:
    url = str(tmp_path / "history.sqlite")
    nightly(url, step=0.10, seed=1)
    session = make_session(stamp(40), {"cpu/a": [1.1, 1.11]}, vllm_version="0.20.2")
    session.history = record_session(session, url).to_dict()
    page = render_html(load_results(write_results(tmp_path / "results.json", session)))  # as `servegate report`
    section = page[page.index('<section class="card" id="history">') :]
    section = section[: section.index("</section>")]
    assert section.count('alt="trend of cpu/a"') == 1 and "data:image/png;base64," in section
    assert section.count(f"<td>#{STEP_AT} (") == 5  # the five gated metrics' change point, in the table
    assert "vllm_version 0.20.1 → 0.20.2" in section
    assert render_html(session.model_copy(update={"history": None})).count('id="history"') == 0
