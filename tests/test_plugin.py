"""The pytest plugin in a scratch project (pytester): markers, hardware skips, compat reasons, results under xdist.

The scratch suites never start a server: their test bodies record hand-made results, so these tests check the
plugin's plumbing (selection, skip lines, collection of case documents across processes), not vLLM.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from servegate.testing.fakes import FAKE_SUITE_MODULE

pytest_plugins = ["pytester"]

CONFTEST = """
import servegate.hardware.detect as hw
{fake_hardware}
pytest_plugins = ["servegate.pytest.plugin"]
"""

FAKE_MI300X = """
hw._CACHE["hw"] = hw.HardwareInfo(
    vendor="amd", marker="mi300x", name="AMD Instinct MI300X", arch="gfx942", count=8, memory_gb=192.0,
    source="amd-smi (faked by the test)",
)
"""



def suite_yaml(hardware: str, servers: str = "- model: some/model") -> str:
    return textwrap.dedent(
        f"""
        hardware: {hardware}
        suites:
          serving:
            restarts: 2
            servers:
              {servers}
            loads:
              - {{concurrency: 1, num_requests: 4}}
              - {{concurrency: 2, num_requests: 4}}
        """
    )


def make_project(
    pytester: pytest.Pytester, hardware: str, fake: str = "", servers: str = "- model: some/model"
) -> None:
    pytester.makeconftest(CONFTEST.format(fake_hardware=fake))
    suites = pytester.mkdir("suites")
    (suites / "serving.yaml").write_text(suite_yaml(hardware, servers))
    (suites / "test_serving.py").write_text(FAKE_SUITE_MODULE)


def test_absent_hardware_skips_with_one_summary_line(pytester: pytest.Pytester) -> None:
    make_project(pytester, "mi300x")
    result = pytester.runpytest("suites", "-m", "mi300x", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
    lines = [line for line in result.outlines if line.startswith("servegate: 2 cases skipped - no MI300X found")]
    assert len(lines) == 1, result.outlines


def test_unknown_marker_is_a_usage_error(pytester: pytest.Pytester) -> None:
    make_project(pytester, "cpu")
    result = pytester.runpytest("suites", "-m", "mi999x", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown marker(s) mi999x; hardware markers are cpu, mi300x*"])


def test_compat_rule_skips_before_any_start_and_says_why(pytester: pytest.Pytester) -> None:
    # DeepSeek V3.2 is sparse MLA: on ROCm (vLLM 0.20.1) without AITER and --block-size 1 it cannot run.
    servers = "- {model: deepseek-ai/DeepSeek-V3.2, tensor_parallel_size: 8, env: {AITER_ENABLE_VSKIP: 0}}"
    make_project(pytester, "mi300x", FAKE_MI300X, servers)
    # a subprocess: the faked detection must not leak into this process's cached hardware
    result = pytester.runpytest_subprocess("suites", "-m", "mi300x", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*sparse-mla-aiter-block-size-1-rocm: DeepSeek sparse attention (DSA) on ROCm*"])


def _results(path: Path) -> dict:
    files = sorted((path / "results").glob("results-*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def test_results_json_is_complete_with_and_without_xdist(pytester: pytest.Pytester) -> None:
    make_project(pytester, "cpu")
    serial = pytester.runpytest_subprocess("suites", "-m", "cpu", "-p", "no:cacheprovider")
    serial.assert_outcomes(passed=2)
    doc_serial = _results(pytester.path)
    for f in (pytester.path / "results").glob("results-*"):
        f.unlink()
    parallel = pytester.runpytest_subprocess("suites", "-m", "cpu", "-n", "2", "-p", "no:cacheprovider")
    parallel.assert_outcomes(passed=2)
    doc_parallel = _results(pytester.path)
    ids = sorted(c["id"] for c in doc_serial["cases"])
    assert ids == sorted(c["id"] for c in doc_parallel["cases"]) and len(ids) == 2
    by_id = {c["id"]: c for c in doc_parallel["cases"]}
    for case in doc_serial["cases"]:
        assert case["values"] == by_id[case["id"]]["values"]
    assert any((pytester.path / "results").glob("results-*.html")), "the HTML report is written next to the JSON"
    parallel.stdout.fnmatch_lines(["*results JSON: *results-*.json", "*HTML report: *results-*.html"])
