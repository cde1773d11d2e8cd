"""The CI verdict comes from the JUnit XML: a process that exits 0 after failing tests must still be red.

The pytest runs here are real subprocesses whose code calls ``os._exit(0)`` the way a misbehaving library does,
so the exit status really is 0 and only the JUnit-based verdict can tell.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from servegate.junit_verdict import EXIT_FAIL, EXIT_PASS, EXIT_UNUSABLE, evaluate, main


def run_pytest(tmp_path: Path, test_source: str, conftest: str = "") -> tuple[int, Path]:
    """pytest in a fresh interpreter (no servegate plugin), with --junitxml; returns (exit status, junit path)."""
    (tmp_path / "test_x.py").write_text(textwrap.dedent(test_source))
    (tmp_path / "conftest.py").write_text(textwrap.dedent(conftest))
    junit = tmp_path / "junit.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, junit


def test_os_exit_zero_after_a_failure_is_still_red(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The JUnit file is written at session finish; the os._exit(0) afterwards (as in an atexit-like teardown)
    # forges a green exit status.
    conftest = """
    import os
    def pytest_unconfigure(config):
        os._exit(0)
    """
    status, junit = run_pytest(tmp_path, "def test_ok():\n    pass\n\ndef test_bad():\n    assert 1 == 2\n", conftest)
    assert status == 0, "precondition: the exit status lies"
    verdict = evaluate(junit)
    assert (verdict.tests, verdict.failures, verdict.errors) == (2, 1, 0)
    assert not verdict.passed
    assert main([str(junit)]) == EXIT_FAIL
    out = capsys.readouterr().out
    assert "FAILED test_x::test_bad" in out
    assert "junit verdict FAIL" in out and "1 failed" in out


def test_os_exit_zero_inside_a_test_leaves_no_report_and_is_red(tmp_path: Path) -> None:
    source = """
    import os
    def test_bad():
        assert False
    def test_zz_exits():
        os._exit(0)
    """
    status, junit = run_pytest(tmp_path, source)
    assert status == 0 and not junit.exists()
    verdict = evaluate(junit)
    assert verdict.exit_code == EXIT_UNUSABLE
    assert "did not finish" in verdict.summary()


def test_a_clean_run_passes(tmp_path: Path) -> None:
    source = "import pytest\n\ndef test_a():\n    pass\n\n@pytest.mark.skip\ndef test_b():\n    pass\n"
    status, junit = run_pytest(tmp_path, source)
    assert status == 0
    verdict = evaluate(junit)
    assert (verdict.tests, verdict.skipped, verdict.executed) == (2, 1, 1)
    assert main([str(junit)]) == EXIT_PASS


def test_errors_count_as_red(tmp_path: Path) -> None:
    source = """
    import pytest
    @pytest.fixture
    def broken():
        raise RuntimeError("setup failed")
    def test_a(broken):
        pass
    """
    _, junit = run_pytest(tmp_path, source)
    verdict = evaluate(junit)
    assert verdict.errors == 1 and not verdict.passed
    assert "1 errors" in verdict.summary()


def test_zero_tests_is_red(tmp_path: Path) -> None:
    status, junit = run_pytest(tmp_path, "X = 1\n")
    assert status == pytest.ExitCode.NO_TESTS_COLLECTED
    verdict = evaluate(junit)
    assert verdict.tests == 0 and verdict.exit_code == EXIT_FAIL
    assert "zero tests" in verdict.summary()


def test_everything_skipped_is_red_unless_allowed(tmp_path: Path) -> None:
    _, junit = run_pytest(tmp_path, "import pytest\n\n@pytest.mark.skip(reason='no MI300X')\ndef test_a():\n    pass\n")
    assert evaluate(junit).exit_code == EXIT_FAIL
    assert "every test was skipped" in evaluate(junit).summary()
    assert evaluate(junit, allow_skipped_only=True).passed


def test_min_tests_catches_a_shrunken_collection(tmp_path: Path) -> None:
    _, junit = run_pytest(tmp_path, "def test_a():\n    pass\n")
    assert evaluate(junit, min_tests=1).passed
    verdict = evaluate(junit, min_tests=5)
    assert not verdict.passed and "only 1 tests ran, at least 5 expected" in verdict.summary()


def test_counts_come_from_testcases_not_the_header(tmp_path: Path) -> None:
    junit = tmp_path / "forged.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest" tests="1" failures="0" errors="0">'
        '<testcase classname="a" name="t1"/><testcase classname="a" name="t2"><failure message="x"/></testcase>'
        "</testsuite></testsuites>"
    )
    verdict = evaluate(junit)
    assert (verdict.tests, verdict.failures) == (2, 1) and not verdict.passed


@pytest.mark.parametrize("content", ["", "<testsuites><testsuite", "not xml at all", "<html></html>"])
def test_truncated_or_foreign_files_are_unusable(tmp_path: Path, content: str) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(content)
    assert evaluate(junit).exit_code == EXIT_UNUSABLE


def test_cli_as_a_module(tmp_path: Path) -> None:
    _, junit = run_pytest(tmp_path, "def test_bad():\n    assert 0\n")
    proc = subprocess.run(
        [sys.executable, "-m", "servegate.junit_verdict", str(junit)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == EXIT_FAIL
    assert "FAILED test_x::test_bad" in proc.stdout
