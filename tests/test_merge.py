"""Shards, one verdict: a session split over 2 runners (--shard 1/2, 2/2) and merged gives the unsplit session's
cases, values and verdicts, one HTML report, one JUnit verdict and one history entry.

The scratch suite records hand-made, deterministic starts (servegate.testing.fakes.fake_start) through the plugin's
real gate path (bench.conclude): the same values in every run, so split and unsplit must agree exactly. One case
is planted 30% slower than its baseline so the verdicts include a REGRESSED one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.projects import plugin_project
from servegate import junit_verdict
from servegate.cli import main
from servegate.history.store import HistoryStore
from servegate.merge import MergeError, merge_junit, merge_sessions, session_failed
from servegate.record import GateRow, Session, ShardInfo
from tests.history_sessions import make_session, stamp

pytest_plugins = ["pytester"]

SLOW_CASE = "cpu/model-b/c2-in128-out64"

GATED_MODULE = """
import os

from servegate.runner import CaseResult
from servegate.testing.fakes import fake_start

SUITE = "serving"


def test_serving(case, bench):
    scale = 1.0 + 0.01 * case.load.concurrency
    if os.environ.get("SLOW_CASE") == case.id:
        scale *= 1.3
    starts = [fake_start(i, scale * f) for i, f in enumerate((1.0, 1.01, 1.004))]
    bench.conclude(case, CaseResult(case.id, case.server, case.load, starts))
"""


def make_project(pytester: pytest.Pytester) -> None:
    suite = """
        hardware: cpu
        suites:
          serving:
            restarts: 3
            servers: [{model: some/model-a}, {model: some/model-b}]
            loads: [{concurrency: 1, num_requests: 4}, {concurrency: 2, num_requests: 4}]
        """
    plugin_project(pytester, suite, GATED_MODULE)


def run(pytester: pytest.Pytester, results: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "suites",
        "-m",
        "cpu",
        "-p",
        "no:cacheprovider",
        "--baselines-dir",
        "baselines",
        "--results-dir",
        results,
        f"--junitxml={results}/junit.xml",
        *args,
    )


def results_of(directory: Path) -> tuple[Path, dict]:
    (path,) = directory.glob("results-*.json")
    return path, json.loads(path.read_text())


def by_case(doc: dict) -> dict[str, dict]:
    return {case["id"]: case for case in doc["cases"]}


def test_two_shards_merged_equal_the_unsplit_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_project(pytester)
    run(pytester, "recorded", "--update-baselines").assert_outcomes(passed=4)
    monkeypatch.setenv("SLOW_CASE", SLOW_CASE)
    run(pytester, "unsplit").assert_outcomes(passed=3, failed=1)
    one = run(pytester, "shard1", "--shard", "1/2")
    two = run(pytester, "shard2", "--shard", "2/2")
    assert one.parseoutcomes().get("deselected") == 2 and two.parseoutcomes().get("deselected") == 2
    one.stdout.fnmatch_lines(["history: shard 1/2; `servegate merge` of all shards records the session"])

    root = pytester.path
    shard_paths = [results_of(root / "shard1")[0], results_of(root / "shard2")[0]]
    assert not (root / "shard1" / "history.sqlite").exists()  # shards leave the history to the merge
    merged_path = root / "merged" / "session.json"
    junits = [str(root / "shard1" / "junit.xml"), str(root / "shard2" / "junit.xml")]
    code = main(["merge", *map(str, shard_paths), "-o", str(merged_path), "--junit", *junits])
    out = capsys.readouterr().out
    assert code == 1, out  # the planted regression fails the merged gate
    assert "gate (default) over all 2 shards: FAILED" in out

    _, unsplit = results_of(root / "unsplit")
    merged = json.loads(merged_path.read_text())
    assert sorted(by_case(merged)) == sorted(by_case(unsplit))
    assert {len(results_of(root / d)[1]["cases"]) for d in ("shard1", "shard2")} == {2}
    verdicts = []
    for case_id, case in by_case(unsplit).items():
        twin = by_case(merged)[case_id]
        assert twin["values"] == case["values"]
        rows = [(r["metric"], r["verdict"], r["ratio"], r["ci_low"], r["ci_high"]) for r in case["gate"]]
        assert [(r["metric"], r["verdict"], r["ratio"], r["ci_low"], r["ci_high"]) for r in twin["gate"]] == rows
        verdicts += [r[1] for r in rows]
    assert verdicts.count("REGRESSED") == 5 and verdicts.count("OK") == 15  # 4 cases x 5 gated metrics
    assert "planned family 20" in unsplit["environment"]["gate"]

    assert sorted(p.name for p in (root / "merged").glob("*.html")) == ["session.html"]
    verdict = junit_verdict.evaluate(merged_path.with_suffix(".junit.xml"))
    assert (verdict.tests, verdict.failures, verdict.exit_code) == (5, 2, junit_verdict.EXIT_FAIL)
    with HistoryStore(str(root / "merged" / "history.sqlite")) as store:
        (session,) = store.sessions()
        assert session["shard_count"] == 2
        assert {case_id for case_id, _ in store.series()} == set(by_case(unsplit))


def shard_session(
    index: int, count: int, family: int = 10, case: str = "cpu/a", gate: list[GateRow] | None = None
) -> tuple[Path, Session]:
    session = make_session(stamp(index), {f"{case}{index}": [1.0, 1.01]}, gate=gate)
    session.shard = ShardInfo(index=index, count=count, planned_family=family, gate="default")
    return Path(f"shard{index}of{count}.json"), session


def gate_row(case_id: str, verdict: str) -> GateRow:
    return GateRow(
        config_id=case_id,
        metric="ttft_median_ms",
        verdict=verdict,
        reason=f"{verdict} here",
        tolerance=0.03,
        alpha=0.05,
    )


def test_merge_keeps_every_shards_cases_and_verdicts(tmp_path: Path) -> None:
    shards = [
        shard_session(2, 2, gate=[gate_row("cpu/a2", "REGRESSED")]),
        shard_session(1, 2, gate=[gate_row("cpu/a1", "OK")]),
    ]
    merged = merge_sessions(shards)
    assert [case.id for case in merged.cases] == ["cpu/a1", "cpu/a2"]
    assert [case.gate[0].verdict for case in merged.cases] == ["OK", "REGRESSED"]
    assert merged.cases[0] == shards[1][1].cases[0] and merged.cases[0] is not shards[1][1].cases[0]
    assert merged.created == stamp(2) and merged.gate_mode == "default" and merged.shard is None
    assert [(s.file, s.index, s.created) for s in merged.shards or []] == [
        ("shard2of2.json", 2, stamp(2)),
        ("shard1of2.json", 1, stamp(1)),
    ]
    assert merged.environment["command"] == "servegate merge shard2of2.json shard1of2.json"
    assert merged.environment["shards"] == "2 (planned family 10, gate default)"
    assert session_failed(merged)
    assert not session_failed(merged.model_copy(update={"gate_mode": "off"}))
    merged.cases[1].gate[0].verdict = "INCONCLUSIVE"
    assert not session_failed(merged) and session_failed(merged.model_copy(update={"gate_mode": "strict"}))

    shard_junit = tmp_path / "shard1.xml"
    shard_junit.write_text('<testsuite name="pytest" tests="1"><testcase name="t"/></testsuite>')
    out = merge_junit([shard_junit], merged.model_copy(update={"gate_mode": "strict"}), tmp_path / "merged.xml")
    text = out.read_text()
    assert "pytest [shard1.xml]" in text
    assert "cpu/a2 ttft_median_ms: REGRESSED here" in text  # the row's reason (its verdict is now INCONCLUSIVE)
    with pytest.raises(MergeError, match="that shard did not finish"):
        merge_junit([tmp_path / "absent.xml"], merged, tmp_path / "merged.xml")


def test_merge_refuses_incomplete_overlapping_or_mixed_shards() -> None:
    first = shard_session(1, 2)
    with pytest.raises(MergeError, match=r"need shards 1..2 once each: missing 2/2"):
        merge_sessions([first])
    with pytest.raises(MergeError, match=r"given twice 1/2"):
        merge_sessions([first, first])
    with pytest.raises(MergeError, match="shards of different splits"):
        merge_sessions([first, shard_session(2, 3)])
    with pytest.raises(MergeError, match=r"planned different sessions \(family sizes \[10, 12\]"):
        merge_sessions([first, shard_session(2, 2, family=12)])
    unsplit = make_session(stamp(5), {"cpu/x": [1.0, 1.01]})
    with pytest.raises(MergeError, match="not shard results"):
        merge_sessions([first, (Path("unsplit.json"), unsplit)])
    _, second = shard_session(2, 2)
    second.cases[0].id = first[1].cases[0].id
    with pytest.raises(MergeError, match=r"is in both shard1of2\.json and shard2\.json: shards must not overlap"):
        merge_sessions([first, (Path("shard2.json"), second)])
