"""The main job appends every session to the default history and says where it is; two runs make a two-point
trend in `servegate history`. A history database that cannot be used is reported, and the results still written."""

from __future__ import annotations

import json

import pytest

from fixtures.projects import plugin_project
from servegate.cli import main
from servegate.testing.fakes import FAKE_SUITE_MODULE

pytest_plugins = ["pytester"]


def make_project(pytester: pytest.Pytester) -> None:
    suite = """
        hardware: cpu
        suites:
          serving:
            restarts: 2
            servers: [{model: some/model}]
            loads: [{concurrency: 1, num_requests: 4}]
        """
    plugin_project(pytester, suite, FAKE_SUITE_MODULE)


def test_two_runs_make_a_two_point_trend(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SERVEGATE_HISTORY_URL", raising=False)
    make_project(pytester)
    history = pytester.path / "results" / "history.sqlite"
    args = ("suites", "-m", "cpu", "-p", "no:cacheprovider", "--git-sha", "0123abc")
    first = pytester.runpytest(*args)
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines([f"history: recorded as session #1 of 1 in {history} *"])
    second = pytester.runpytest(*args)
    second.stdout.fnmatch_lines([f"history: recorded as session #2 of 2 in {history} *"])
    capsys.readouterr()

    assert main(["history", "--history-url", str(history), "--metric", "ttft_median_ms"]) == 0
    out = capsys.readouterr().out
    assert "history" in out and ": 2 sessions, " in out
    (row,) = [line.split() for line in out.splitlines() if line.startswith("cpu/")]
    assert row[:3] == ["cpu/model/c1-in128-out64", "ttft_median_ms", "2"]
    (results,) = sorted((pytester.path / "results").glob("results-*.json"))[-1:]
    doc = json.loads(results.read_text())
    assert doc["environment"]["git sha"] == "0123abc"
    trend = next(t for t in doc["history"]["trends"] if t["metric"] == "ttft_median_ms")
    assert [p[0] for p in trend["points"]] == [1, 2]  # the report's trend plot is drawn from the document alone


def test_an_unusable_history_is_reported_and_the_results_still_written(pytester: pytest.Pytester) -> None:
    make_project(pytester)
    url = "postgresql://gate:s3cret@127.0.0.1:1/history"
    # a subprocess: the PostgreSQL driver is first imported in there, not in this process's module snapshot
    result = pytester.runpytest_subprocess("suites", "-m", "cpu", "-p", "no:cacheprovider", "--history-url", url)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["history NOT recorded: history database postgresql://gate:***@127.0.0.1:1/history*"])
    assert "s3cret" not in result.stdout.str()
    assert list((pytester.path / "results").glob("results-*.json"))
