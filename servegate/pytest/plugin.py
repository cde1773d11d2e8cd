"""The pytest side of servegate: options, hardware markers, suite parametrization, the bench fixture, the summary.

A suite test module names its suite (``SUITE = "serving"``) and takes the ``case`` and ``bench`` fixtures; this
plugin turns every matching case of every ``*.yaml`` next to the module into one parametrized test whose id is the
case id and whose marker is the case's hardware, so ``pytest suites/ -m mi300x`` selects exactly those.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from servegate import compat
from servegate.baseline import BaselineConflict, BaselineError
from servegate.config import INTENSITY_MULTIPLIERS, ServerConfig
from servegate.gate import DEFAULT_GATED_METRICS, DERIVED_GATED_METRICS, Comparison, Monitor, gate_failed, render_gate
from servegate.hardware.detect import detected, skip_reason_for
from servegate.hardware.specs import KNOWN_MARKERS, MARKER_LABELS
from servegate.history import HistoryError
from servegate.history.record import record_session
from servegate.history.store import default_url
from servegate.launch.base import ServerLostError, ServerStartError
from servegate.launch.dispatch import DispatchLauncher
from servegate.precision import case_components
from servegate.preflight import Preflight, Resolver
from servegate.pytest import bench_bridge, options
from servegate.pytest.bench_bridge import benchmark_session_of, record_benchmarks
from servegate.record import Case as CaseRecord
from servegate.record import Session, ShardInfo
from servegate.redact import redact_text
from servegate.regression import BaselineRefused, RegressionGate, planned_rows
from servegate.report.html import write_html_report
from servegate.report.terminal import render_cases
from servegate.results import case_record, load_results, session_record, write_results
from servegate.runner import CaseResult, StartResult, run_rounds, run_start
from servegate.sequential import Budget, BudgetError
from servegate.shard import Shard
from servegate.stats import DEFAULT_TOLERANCE
from servegate.suite import Case, SuiteError, check_gate_metrics, discover

DEFAULT_BASELINES_DIR = "baselines"  # a missing default store is warned about; a missing given one is refused


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("servegate", "servegate: vLLM serving benchmarks")
    group.addoption(
        "--restarts",
        default=None,
        help="server starts per case: auto (3..12, sequential), N (fixed) or MIN:MAX; default: the suite file's "
        "(gating needs >= 2)",
    )
    group.addoption(
        "--gate-metrics",
        default=None,
        help="comma-separated metrics to gate (default: each suite's gate.metrics, else "
        + ",".join(DEFAULT_GATED_METRICS)
        + "); fewer rows make a smaller family and a more sensitive gate",
    )
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
        "--baselines-dir",
        default=DEFAULT_BASELINES_DIR,
        help="root of the baseline store: <dir>/<hardware-id>/<suite>/<server-id>/<load-id>.json; relative to the "
        "rootdir (default: <rootdir>/baselines)",
    )
    group.addoption(
        "--update-baselines",
        action="store_true",
        help="record this run's per-start values (and correctness golden outputs) as the new baselines; only a "
        "passing run with >= 2 starts and no FAILING or CLIENT-BOUND level is recorded",
    )
    group.addoption(
        "--force-baseline",
        action="store_true",
        help="with --update-baselines: record even a run that breaks those rules (the file says so and why)",
    )
    group.addoption(
        "--require-hardware",
        action="store_true",
        help="fail the session when a selected case's hardware is not on this machine (instead of skipping it)",
    )
    group.addoption(
        "--gate",
        choices=("default", "strict", "off"),
        default="default",
        help="default: a case fails when REGRESSED or when its baseline was measured under other settings; strict: "
        "also INCONCLUSIVE / any NOT COMPARED; off: report only",
    )
    group.addoption(
        "--tolerance",
        type=options.parse_tolerance,
        default=DEFAULT_TOLERANCE,
        help=f"relative change tolerated before a metric can be REGRESSED (default {DEFAULT_TOLERANCE:g})",
    )
    group.addoption(
        "--launcher",
        choices=("local", "docker"),
        default=None,
        help="start every server this way, whatever the suite file says (local: inside a vLLM container or venv)",
    )
    group.addoption(
        "--vllm-url",
        default=None,
        help="measure an already running server at this loopback URL instead of starting one (no lifecycle)",
    )
    group.addoption(
        "--vllm-python",
        default=None,
        help="python interpreter that has vLLM installed (default: $SERVEGATE_VLLM_PYTHON or this one)",
    )
    group.addoption(
        "--history-url",
        default=None,
        help="history database every session is appended to: postgresql://user@host/db or an SQLite file "
        "(default: $SERVEGATE_HISTORY_URL or <results-dir>/history.sqlite)",
    )
    group.addoption(
        "--git-sha",
        default=None,
        help="commit under test, recorded in the results and the history (default: $SERVEGATE_GIT_SHA, $GITHUB_SHA)",
    )
    group.addoption(
        "--shard",
        default=None,
        metavar="I/N",
        help="run the I-th of N shards of the cases (1-based); join the shards with `servegate merge`",
    )


def pytest_configure(config: pytest.Config) -> None:
    for marker in KNOWN_MARKERS:
        config.addinivalue_line("markers", f"{marker}: suite cases for {MARKER_LABELS[marker]}; skipped elsewhere")
    _check_marker_expression(config)
    _check_options(config)
    config.pluginmanager.register(bench_bridge, "servegate-bench-bridge")  # machine_info and units of its tables
    bench_session = BenchSession(config)
    config.stash[SESSION_KEY] = bench_session
    config.pluginmanager.register(bench_session, "servegate-session")
    _terminate_as_interrupt()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Plan the gate's family: every gated row (level × metric) of every selected, runnable case that gates (its
    module does not say ``GATED = False``; ablations report in their own family), see servegate.regression."""
    errors = config.stash.get(SUITE_ERRORS_KEY, set())
    if errors:
        raise pytest.UsageError("\n".join(sorted(errors)))
    bench_session = config.stash[SESSION_KEY]
    size = 0
    selected = []
    for item in items:
        case = getattr(getattr(item, "callspec", None), "params", {}).get("case")
        if not isinstance(case, Case):
            continue
        selected.append(case)
        if item.get_closest_marker("skip") is None:
            bench_session.preflight.plan([case.server, *(server for _, server in case.arms)])
            if getattr(getattr(item, "module", None), "GATED", True) and not case.arms:
                size += planned_rows(case.steps, bench_session.gate_metrics_for(case))
    _check_selected_cases(config, selected)
    bench_session.regression.family_size = max(size, 1)
    _select_shard(config, items)  # after planning: every shard gates in the whole session's family


def _check_options(config: pytest.Config) -> None:
    """Options, their combinations and directories, refused before any server starts (exit code 4)."""
    try:
        budget = Budget.parse(config.getoption("--restarts")) if config.getoption("--restarts") else None
        if config.getoption("--gate-metrics"):
            check_gate_metrics(config.getoption("--gate-metrics").split(","), "--gate-metrics")
    except (BudgetError, SuiteError) as exc:
        raise pytest.UsageError(str(exc)) from None
    try:
        options.check_restarts_gateable(
            budget.max_starts if budget else None, config.getoption("--gate"), config.getoption("--update-baselines")
        )
        baselines = options.resolve_dir(config.getoption("--baselines-dir"), config.rootpath, "--baselines-dir")
        gating = config.getoption("--gate") != "off" and not config.getoption("--update-baselines")
        if gating and config.getoption("--baselines-dir") != DEFAULT_BASELINES_DIR and not baselines.is_dir():
            raise options.OptionError(
                f"--baselines-dir {config.getoption('--baselines-dir')!r}: {baselines} does not exist, so the gate "
                "would compare nothing; expected an existing baseline store (record one with --update-baselines, "
                "or run with --gate off to report only)"
            )
        results = options.resolve_dir(config.getoption("--results-dir"), Path.cwd(), "--results-dir")
        options.check_writable_dir(results, "--results-dir")
    except options.OptionError as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.getoption("--force-baseline") and not config.getoption("--update-baselines"):
        raise pytest.UsageError("--force-baseline only applies with --update-baselines")


def _check_selected_cases(config: pytest.Config, cases: list[Case]) -> None:
    """Before any server starts: absent hardware under --require-hardware, and the client's open-file limit
    against the largest concurrency (EMFILE would otherwise show up as a FAILING server)."""
    if config.getoption("--require-hardware"):
        absent = sorted({f"{c.hardware} ({r})" for c in cases if (r := skip_reason_for(c.hardware, detected()))})
        if absent:
            pytest.exit(
                f"servegate: --require-hardware: {len(absent)} selected hardware target(s) not on this machine: "
                + "; ".join(absent),
                returncode=pytest.ExitCode.TESTS_FAILED,
            )
    loads = [load for c in cases for _, load in c.steps]
    peak = max((max([ld.concurrency, *ld.concurrency_levels]) for ld in loads), default=0)
    try:
        options.ensure_fd_limit(peak)
    except options.OptionError as exc:
        pytest.exit(f"servegate: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)


def _select_shard(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = config.stash[SESSION_KEY].shard
    if shard is None:
        return
    keep = shard.select([item.nodeid for item in items])
    config.hook.pytest_deselected(items=[item for item in items if item.nodeid not in keep])
    items[:] = [item for item in items if item.nodeid in keep]


def _benchmark_storage_requested(config: pytest.Config) -> bool:
    """pytest-benchmark records only when asked for (save, autosave, compare, json): otherwise its tables would
    repeat the servegate table at the end of every run."""
    options = ("benchmark_autosave", "benchmark_save", "benchmark_compare", "benchmark_json", "benchmark_histogram")
    return any(config.getoption(name, None) for name in options)


def _check_marker_expression(config: pytest.Config) -> None:
    """``-m mi999x`` would silently select nothing and 'pass'; a CI gate must hear that the marker is unknown."""
    expression = config.getoption("markexpr", "") or ""
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expression)) - {"and", "or", "not"}
    known = {line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")}
    unknown = sorted(names - known)
    if unknown:
        raise pytest.UsageError(
            f"-m {expression!r}: unknown marker(s) {', '.join(unknown)}; "
            f"hardware markers are {', '.join(KNOWN_MARKERS)} (see `pytest --markers`)"
        )


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
    except SuiteError as exc:  # reported once collection ends, as a usage error without a collection traceback
        metafunc.config.stash.setdefault(SUITE_ERRORS_KEY, set()).add(f"servegate: {exc}")
        cases = []
    metafunc.parametrize("case", [pytest.param(c, id=c.id, marks=_marks_for(c)) for c in cases])


def _marks_for(case: Case) -> list[pytest.MarkDecorator]:
    """The hardware marker; a skip when that hardware is absent (one line saying what was found instead) or when
    the suite file says the suite is meaningless there; then the compat rules' skips and xfails, decided before
    any server starts."""
    marks = [getattr(pytest.mark, case.hardware)]
    reason = skip_reason_for(case.hardware, detected()) or case.option_dict.get("skip")
    if reason:
        marks.append(pytest.mark.skip(reason=str(reason).strip()))
    for server in [case.server, *(config for _, config in case.arms)]:
        for violation in compat.check(server, case.hardware):
            mark = pytest.mark.skip if violation.action == "skip" else pytest.mark.xfail
            marks.append(mark(reason=f"{server.id}: {violation}"))
    return marks


class BenchSession:
    """Session-wide state: the launcher, where logs go, and every case result for the summary and the JSON."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results_dir = Path(config.getoption("--results-dir", "results")).resolve()
        self.stamp = time.strftime("%Y%m%d-%H%M%S")
        self.cases: list[CaseRecord] = []
        self.results_path: Path | None = None
        self.html_path: Path | None = None
        self.current_item: pytest.Item | None = None
        self._last: CaseRecord | None = None
        self.is_xdist_worker = hasattr(config, "workerinput")
        self.write_failed = False
        self.pending_baselines: list[tuple[Case, CaseResult]] = []  # written once the test has passed
        self._ab_monitors: dict[str, Monitor] = {}
        self.regression = RegressionGate(
            self.baselines_dir, detected().hardware_id, tolerance=config.getoption("--tolerance")
        )
        self.preflight = Preflight(
            Resolver(config.getoption("--launcher"), config.getoption("--vllm-python"), config.getoption("--vllm-url"))
        )
        self.shard = _shard_option(config)
        self.history_lines: list[str] = []

    @property
    def log_dir(self) -> Path:
        return self.results_dir / "logs"

    def progress(self, message: str) -> None:
        """A live line on the terminal even while pytest captures output: long runs must show where they are."""
        line = f"[servegate {time.strftime('%H:%M:%S')}] {message}"
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            print(line, flush=True)
            return
        with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
            reporter.ensure_newline()
            reporter.write_line(line)

    def launcher(self) -> DispatchLauncher:
        """Local process, docker or external URL, as each ServerConfig (or --vllm-url) says."""
        return DispatchLauncher(
            vllm_python=self.config.getoption("--vllm-python"),
            vllm_url=self.config.getoption("--vllm-url"),
            launcher=self.config.getoption("--launcher"),
            on_progress=self.progress,
        )

    @property
    def update_baselines(self) -> bool:
        return bool(self.config.getoption("--update-baselines"))

    @property
    def baselines_dir(self) -> Path:
        return options.resolve_dir(self.config.getoption("--baselines-dir"), self.config.rootpath, "--baselines-dir")

    @property
    def hardware_id(self) -> str:
        return detected().hardware_id

    def budget_for(self, case: Case) -> Budget:
        """--restarts (auto, N, MIN:MAX) over the suite file's ``restarts``."""
        option = self.config.getoption("--restarts")
        try:
            return Budget.parse(option) if option else case.restarts
        except BudgetError as exc:
            raise pytest.UsageError(str(exc)) from exc

    def restarts_for(self, case: Case) -> int:
        """Starts of a case that does not look at a gate (correctness, cold start): the budget's minimum."""
        return self.budget_for(case).min_starts

    def gate_metrics_for(self, case: Case) -> tuple[str, ...]:
        option = self.config.getoption("--gate-metrics")
        if option:
            return tuple(m.strip() for m in option.split(",") if m.strip())
        return case.gate_metrics or DEFAULT_GATED_METRICS + DERIVED_GATED_METRICS

    def scaled_steps(self, case: Case) -> list[tuple[str, Any]]:
        multiplier = INTENSITY_MULTIPLIERS[self.config.getoption("--intensity")]
        return [(name, load.scaled(multiplier)) for name, load in case.steps]

    def check_preflight(self, servers: list[ServerConfig]) -> None:
        """Fail the case with vLLM's own words when the vLLM that would serve it rejects its flags or env
        (servegate.preflight; every planned case is checked in the first call, before any server starts)."""
        rejection = self.preflight.rejection(servers)
        if rejection:
            pytest.fail(rejection, pytrace=False)

    def run(self, case: Case) -> CaseResult:
        """Fresh server starts of the case's server, each running every step, then baseline or gate.

        Recording a baseline runs the budget's maximum (every later gate's precision is capped by it); gating
        runs rounds and looks after each from the budget's minimum on, until every row is decided, a row is
        REGRESSED, or the budget is spent; without a comparable baseline there is nothing to look at: the minimum
        runs (and conclude() says why)."""
        self.check_preflight([case.server])
        budget = self.budget_for(case)
        self.regression.gated_metrics = self.gate_metrics_for(case)
        baseline = None
        if not self.update_baselines:
            try:
                baseline = self.regression.baseline(case.suite, case.id)
            except BaselineError as exc:
                pytest.fail(str(exc), pytrace=False)
        if baseline is not None and self.regression.mismatch(baseline, case.server, self.scaled_steps(case)[-1][1]):
            baseline = None  # measured under another configuration: NOT COMPARED, with the fields listed
        monitor = self.regression.monitor(budget)

        def stop(n: int, results: dict[str, CaseResult]) -> bool:
            assert baseline is not None
            monitor.look(n, self.regression.look(baseline, case.id, results[""], budget))
            self.progress(monitor.progress_line(case.id))
            return monitor.done

        restarts = budget.max_starts if (self.update_baselines or baseline is not None) else budget.min_starts
        result = run_rounds(
            case.id,
            [("", case.server)],
            self.scaled_steps(case),
            self.launcher(),
            restarts,
            self.log_dir,
            self.progress,
            first_look=budget.looks[0],
            stop=stop if baseline is not None else None,
        )[""]
        self.conclude(case, result, monitor if baseline is not None else None)
        return result

    def conclude(self, case: Case, result: CaseResult, monitor: Monitor | None = None) -> None:
        """Record the case's baseline or gate it, keep its document (and pytest-benchmark records), and fail the
        test when the gate says so. With the ``monitor`` of a sequential run its rows and looks are the verdict."""
        if monitor is not None and monitor.looks:
            rows = monitor.final()
            self.regression.rows += rows
        else:
            rows = self._baseline_or_gate(case, result)
        looks = monitor.looks if monitor is not None else []
        record = self.record(case, result, gate=[row.to_row() for row in rows], gate_looks=looks)
        if _benchmark_storage_requested(self.config):
            record_benchmarks(benchmark_session_of(self.config), self.current_item, record, detected().fingerprint())
        mode = self.config.getoption("--gate")
        if mode != "off" and gate_failed(rows, mode):
            pytest.fail(f"regression gate ({mode}) failed for {case.id}:\n{render_gate(rows)}", pytrace=False)

    def _baseline_or_gate(self, case: Case, result: CaseResult) -> list[Comparison]:
        if self.update_baselines:
            if self.current_item is not None:
                self.pending_baselines.append((case, result))
            else:
                self.write_baseline(case, result)
            return []
        try:
            return self.regression.check(case.suite, case.id, result)
        except BaselineError as exc:
            self.record(case, result)
            pytest.fail(str(exc), pytrace=False)

    def write_baseline(self, case: Case, result: CaseResult) -> None:
        """Record the case as its baseline, or fail it saying why not (the stored baseline stays as it was)."""
        try:
            path = self.regression.record(
                case.suite, case.id, result, force=bool(self.config.getoption("--force-baseline"))
            )
        except (BaselineRefused, BaselineConflict) as exc:
            pytest.fail(f"[{case.id}] {exc}", pytrace=False)
        self.progress(f"[{case.id}] baseline written: {path}")

    def compare_arms(self, case: Case, a: CaseResult, b: CaseResult) -> list[Comparison]:
        """Arm ``b`` against arm ``a`` (the first), as two-sided rows (reported with the case, never failing it):
        the sequential run's final rows when ``run_rounds`` looked, else one look at the starts made."""
        monitor = self._ab_monitors.get(case.id)
        config_id = f"{case.id}: {_arm_name(b)} vs {_arm_name(a)}"
        rows = [r for r in monitor.final() if r.config_id == config_id] if monitor is not None else []
        if not rows:
            rows = self.regression.compare_arms(config_id, a, b, case.suite, comparisons=max(len(case.arms) - 1, 1))
        earlier = self._last.ab if self._last is not None else []  # arms after the first, in turn
        ab = [*earlier, *(row.to_row() for row in rows)]
        self.annotate(ab=ab, ab_looks=monitor.looks if monitor is not None else [])
        return rows

    def run_ab(self, case: Case) -> dict[str, CaseResult]:
        """The case's arms, interleaved start by start (A, B, A, B, ...): rounds until every row of every arm
        against the first is decided (two-sided) or the budget is spent."""
        self.check_preflight([server for _, server in case.arms])
        budget = self.budget_for(case)
        self.regression.gated_metrics = self.gate_metrics_for(case)
        monitor = self.regression.monitor(budget, gating=False)
        first = case.arms[0][0]
        others = [name for name, _ in case.arms[1:]]

        def stop(n: int, results: dict[str, CaseResult]) -> bool:
            rows = [
                row
                for name in others
                for row in self.regression.compare_arms(
                    f"{case.id}: {name} vs {first}", results[first], results[name], case.suite, budget, len(others)
                )
            ]
            monitor.look(n, rows)
            self.progress(monitor.progress_line(case.id))
            return monitor.done

        results = run_rounds(
            case.id,
            case.arms,
            self.scaled_steps(case),
            self.launcher(),
            budget.max_starts,
            self.log_dir,
            self.progress,
            first_look=budget.looks[0],
            stop=stop,
        )
        self._ab_monitors[case.id] = monitor
        for arm, result in results.items():
            self.record(case, result, arm=arm, ab_group=case.id, case_id=f"{case.id}[{arm}]")
        return results

    def run_starts(self, case: Case, servers: list[ServerConfig]) -> CaseResult:
        """One start per given server config (e.g. the same server with a cold, then a warm compile cache)."""
        self.check_preflight(servers)
        result = CaseResult(case.id, case.server, case.load)
        steps = self.scaled_steps(case)
        for i, server in enumerate(servers):
            start: StartResult = run_start(
                case.id, server, steps, self.launcher(), i, len(servers), self.log_dir, self.progress
            )
            result.starts.append(start)
        return result

    def record(self, case: Case, result: CaseResult, case_id: str | None = None, **extra: Any) -> CaseRecord:
        """Attach the case's record to the running test's report; the session collects it from there, so the
        same path works in one process and across pytest-xdist workers (reports travel to the controller, as
        plain data: the controller validates them back into records)."""
        variance = {key: c.to_dict() for key, c in case_components(result.starts).items()}
        record = case_record(case_id or case.id, case.suite, case.hardware, result, variance=variance, **extra)
        if self.current_item is not None:
            self.current_item.user_properties.append((CASE_PROPERTY, record.model_dump()))
        else:  # used as a library outside a test
            self.cases.append(record)
        self._last = record
        return record

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect case records from call reports: local ones and those xdist workers send to the controller."""
        if report.when != "call":
            return
        self.cases += [
            CaseRecord.model_validate(value) for name, value in report.user_properties if name == CASE_PROPERTY
        ]

    @property
    def last_record(self) -> CaseRecord:
        """The record of the case recorded last (its statistics and status labels, as the reports will show)."""
        if self._last is None:
            raise RuntimeError("no case was recorded yet")
        return self._last

    def annotate(self, **extra: Any) -> None:
        """Set fields (comparisons, KV saturation rows, ...) of the case recorded last; each is validated."""
        if self._last is None:
            raise RuntimeError("annotate() before any case was recorded")
        for name, value in extra.items():
            setattr(self._last, name, value)
        if self.current_item is not None:  # the report carries the record as it is now
            props = self.current_item.user_properties
            i = max(i for i, (name, _) in enumerate(props) if name == CASE_PROPERTY)
            props[i] = (CASE_PROPERTY, self._last.model_dump())

    def write(self) -> Path | None:
        if not self.cases or self.is_xdist_worker:  # workers' cases reach the controller inside their reports
            return None
        # Unique even for two sessions of one process in one second (in-process runs): the history keys on it.
        path = self.results_dir / f"results-{self.stamp}-{os.getpid()}-{uuid.uuid4().hex[:6]}.json"
        hw = detected()
        env = {
            "hardware": hw.describe(),
            "hardware id": hw.hardware_id,
            "command": "pytest " + " ".join(self.config.invocation_params.args),
            "xdist workers": self.config.getoption("numprocesses", None) or "none (serial)",
            "gate": f"{self.config.getoption('--gate')}, tolerance {self.regression.tolerance:g}, "
            f"planned family {self.regression.family_size} gated rows (Bonferroni), restarts "
            f"{self.config.getoption('--restarts') or 'per suite file'}",
            "fingerprint": hw.fingerprint(),
        }
        git_sha = (
            self.config.getoption("--git-sha") or os.environ.get("SERVEGATE_GIT_SHA") or os.environ.get("GITHUB_SHA")
        )
        if git_sha:
            env["git sha"] = git_sha
        session = session_record(self.cases, env)
        if self.shard is not None:
            session.shard = ShardInfo(
                index=self.shard.index,
                count=self.shard.count,
                planned_family=self.regression.family_size,
                gate=self.config.getoption("--gate"),
            )
            self.history_lines = [f"history: shard {self.shard}; `servegate merge` of all shards records the session"]
        else:
            self.record_history(session)
        try:
            self.results_path = write_results(path, session)
            self.html_path = write_html_report(load_results(self.results_path), path.with_suffix(".html"))
        except OSError as exc:  # disk full, read-only results dir: say so instead of an INTERNALERROR traceback
            self.progress(f"results NOT written: {exc}")
            self.write_failed = True
        return self.results_path

    def record_history(self, session: Session) -> None:
        """Append the session to the history and keep what the history says about it (trends, change points)."""
        url = self.config.getoption("--history-url") or default_url(self.results_dir)
        try:
            note = record_session(session, url)
        except HistoryError as exc:  # the session's results are still written; the gap in the history is loud
            self.history_lines = [f"history NOT recorded: {exc}"]
            return
        session.history = note.to_dict()
        self.history_lines = note.lines(session)


def _shard_option(config: pytest.Config) -> Shard | None:
    spec = config.getoption("--shard", None)
    try:
        return Shard.parse(spec) if spec else None
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _arm_name(result: CaseResult) -> str:
    """ "tiny-llama/.../c4[eager]" -> "eager": the arm of an A/B case result."""
    return result.case_id.rsplit("[", 1)[-1].rstrip("]")


def _absent_hardware_skips(skipped: list[Any]) -> dict[str, int]:
    """Skip reasons of cases whose hardware is not here, counted: one line for all of them, not one per file."""
    counts: dict[str, int] = {}
    for report in skipped:
        longrepr = getattr(report, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else ""
        reason = reason.removeprefix("Skipped: ")
        if " found: detected " in reason:
            counts[reason] = counts.get(reason, 0) + 1
    return counts


SESSION_KEY = pytest.StashKey[BenchSession]()
SUITE_ERRORS_KEY = pytest.StashKey[set[str]]()
CASE_PROPERTY = "servegate_case"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    bench_session = item.config.stash[SESSION_KEY]
    bench_session.current_item = item
    bench_session.pending_baselines = []
    case = getattr(getattr(item, "callspec", None), "params", {}).get("case")
    if isinstance(case, Case) and bench_session.update_baselines:
        bench_session.regression.observe(case.suite, case.id)  # another session's write meanwhile is detected
    try:
        outcome = yield
    except BaseException as exc:
        for failed, _ in bench_session.pending_baselines:
            bench_session.progress(f"[{failed.id}] baseline NOT written: the test failed")
        if isinstance(exc, (ServerStartError, ServerLostError)):  # the message says what and where the log is
            pytest.fail(str(exc), pytrace=False)
        raise
    finally:
        bench_session.current_item = None
    for pending, result in bench_session.pending_baselines:  # only a passing test becomes a baseline
        bench_session.write_baseline(pending, result)
    return outcome


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Tracebacks and captured output with secret values masked: they reach CI logs and JUnit XML."""
    report = yield
    if report.longrepr is not None:
        text = str(report.longrepr)
        masked = redact_text(text)
        if masked != text:
            report.longrepr = masked
    report.sections = [(title, redact_text(content)) for title, content in report.sections]
    return report


@pytest.fixture(scope="session")
def bench(request: pytest.FixtureRequest) -> BenchSession:
    """Runs cases (n fresh server starts each) and keeps their results for the summary and the results JSON."""
    return request.config.stash[SESSION_KEY]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    bench_session = session.config.stash[SESSION_KEY]
    bench_session.write()
    if bench_session.write_failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # measured but not kept: not a success


def pytest_report_header(config: pytest.Config) -> str:
    hw = detected()
    lines = [f"servegate: {hw.describe()}; hardware id {hw.hardware_id}"]
    bench_session = config.stash[SESSION_KEY]
    gated = config.getoption("--gate") != "off" and not bench_session.update_baselines
    if gated and not bench_session.baselines_dir.is_dir():
        lines.append(
            f"servegate: WARNING: baselines dir {bench_session.baselines_dir} does not exist: every case will be "
            "NOT COMPARED (record with --update-baselines, or point --baselines-dir at the store)"
        )
    return lines


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    absent = _absent_hardware_skips(terminalreporter.stats.get("skipped", []))
    for reason, count in absent.items():
        terminalreporter.write_line(f"servegate: {count} case{'s' if count != 1 else ''} skipped - {reason}")
    bench_session = config.stash[SESSION_KEY]
    if not bench_session.cases:
        return
    terminalreporter.section("servegate results (mean ± 95% t CI over server starts)")
    for line in render_cases(bench_session.cases).splitlines():
        terminalreporter.write_line(line)
    if bench_session.results_path is not None:
        terminalreporter.write_line(f"results JSON: {bench_session.results_path}")
    if bench_session.html_path is not None:
        terminalreporter.write_line(f"HTML report:  {bench_session.html_path}")
    for line in bench_session.history_lines:
        terminalreporter.write_line(line)
