"""Gated metrics as pytest-benchmark records: autosave, then compare, then ``pytest-benchmark compare``, in a scratch
project (pytester) whose only test hands fake per-start values to ``record_benchmarks``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from servegate.pytest.bench_bridge import benchmark_name, benchmark_value, record_benchmarks
from servegate.record import Case

pytest_plugins = ["pytester"]

CASE = "cpu/tiny-llama/c8-in128-out64"
TEST_FILE = f'''
import os
from servegate.pytest.bench_bridge import benchmark_session_of, record_benchmarks
from servegate.record import Case

def test_case(request):
    slow = float(os.environ.get("SLOWDOWN", "1"))
    values = {{
        "ttft_median_ms": [100.0 * slow, 102.0 * slow, 98.0 * slow],
        "itl_median_ms": [10.0, 10.5, 9.5],
        "e2el_median_ms": [700.0, 710.0, 690.0],
        "output_throughput": [1000.0 / slow, 1010.0 / slow, 990.0 / slow],
        "request_throughput": [15.0, 15.5, 14.5],
        "ttft_p99_ms": [150.0, 151.0, 149.0],
    }}
    records = record_benchmarks(
        benchmark_session_of(request.config),
        request.node,
        Case.model_construct(id="{CASE}", values=values),
        machine={{"gpu": "fake MI300X"}},
    )
    assert len(records) == 5
'''


def _case(values: dict[str, list[float]]) -> Case:
    """A case record with only what the bridge reads (its id and per-start values)."""
    return Case.model_construct(id=CASE, values=values)


def test_values_are_stored_as_seconds_lower_is_better() -> None:
    assert benchmark_value("ttft_median_ms", 250.0) == pytest.approx(0.25)
    assert benchmark_value("c4/output_throughput", 200.0) == pytest.approx(0.005)
    assert benchmark_name("ttft_median_ms") == "ttft_median"
    assert benchmark_name("c4/output_throughput") == "c4/1/output_throughput"
    assert record_benchmarks(None, None, _case({"ttft_median_ms": [1.0]})) == []


def test_records_carry_per_start_values_not_wall_times() -> None:
    session = SimpleNamespace(benchmarks=[])
    values = {"ttft_median_ms": [100.0, 120.0, float("nan")], "output_throughput": [500.0, 400.0], "x": [1.0]}
    records = record_benchmarks(session, None, _case(values), machine={"gpu": "g"})
    assert session.benchmarks == records and len(records) == 2
    ttft = records[0].as_dict()
    assert ttft["group"] == CASE and ttft["fullname"] == f"{CASE}::ttft_median"
    assert ttft["stats"]["data"] == pytest.approx([0.1, 0.12]) and ttft["stats"]["rounds"] == 2
    assert ttft["extra_info"]["values"][:2] == [100.0, 120.0]
    tput = records[1].as_dict()["stats"]
    assert tput["ops"] == pytest.approx(1 / ((1 / 500 + 1 / 400) / 2))  # OPS reads as the throughput
    assert session.servegate_machine == {"gpu": "g"}


def test_autosave_then_compare_then_the_cli(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_fake=TEST_FILE)
    storage = pytester.path / "bench-store"
    common = ("-p", "servegate.pytest.bench_bridge", f"--benchmark-storage=file://{storage}", "-p", "no:cacheprovider")

    first = pytester.runpytest_subprocess(*common, "--benchmark-autosave")
    first.assert_outcomes(passed=1)
    saved = sorted(storage.rglob("0001_*.json"))
    assert len(saved) == 1, first.stdout.str()
    doc = json.loads(saved[0].read_text())
    assert doc["machine_info"]["servegate"] == {"gpu": "fake MI300X"}
    by_name = {b["name"]: b for b in doc["benchmarks"]}
    assert set(by_name) == {
        "ttft_median",
        "itl_median",
        "e2el_median",
        "1/output_throughput",
        "1/request_throughput",
    }
    assert by_name["ttft_median"]["stats"]["mean"] == pytest.approx(0.1)
    assert by_name["ttft_median"]["stats"]["rounds"] == 3
    assert {b["group"] for b in doc["benchmarks"]} == {CASE}

    monkeypatch.setenv("SLOWDOWN", "1.5")
    second = pytester.runpytest_subprocess(*common, "--benchmark-compare", "--benchmark-columns=mean,ops,rounds")
    second.assert_outcomes(passed=1)
    out = second.stdout.str()
    assert f"benchmark '{CASE}'" in out
    for name in ("ttft_median", "itl_median", "1/output_throughput"):
        assert f"{name} (NOW)" in out, out
        assert f"{name} (0001_" in out, out
    ttft_now = next(line for line in out.splitlines() if line.startswith("ttft_median (NOW)"))
    assert "150.0000" in ttft_now and "150,000" not in ttft_now  # the slowed per-start values in ms
    assert "Name (time in ms)" in out

    cli = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "--storage", f"file://{storage}", "compare", "--group-by=group"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(pytester.path),
    )
    assert cli.returncode == 0, cli.stderr
    assert "1/output_throughput" in cli.stdout and "ttft_median" in cli.stdout and CASE in cli.stdout
