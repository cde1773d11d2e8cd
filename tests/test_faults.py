"""Faults a run can meet that need no real vLLM to produce: each must give a clear message, leave no process
behind and corrupt no file. (The faults only real vLLM can produce are in tests/test_faults_vllm.py; load-client
stream faults are in tests/test_client_faults.py and tests/test_sse_fuzz.py.)

Scripted child processes stand in for the server where the launcher's own code paths are under test (port races,
dead processes, secrets in a log); they measure nothing.
"""

from __future__ import annotations

import errno
import http.server
import json
import os
import re
import signal
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import servegate.launch.local as local
from fixtures.processes import wait_gone
from servegate.baseline import atomic_write_text
from servegate.config import LoadConfig, ServerConfig
from servegate.launch.base import ServerStartError
from servegate.launch.local import LocalProcessLauncher, listener_in_group, probable_cause
from servegate.record import Session
from servegate.results import case_record, session_record, write_results
from servegate.runner import CaseResult
from servegate.suite import SuiteError, load_suite_file
from servegate.testing.fakes import FAKE_GATED_MODULE, FAKE_SUITE_MODULE, ScriptLauncher, fake_start

pytest_plugins = ["pytester"]

FAKE_TOKEN = "hf_" + "Zq7" * 12  # token-shaped, never a real credential

HEALTHY = """
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
print("token seen by the server:", os.environ.get("HF_TOKEN"), flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


CONFIG = ServerConfig(model="fake-model", name="fake", startup_timeout_s=20.0)


@pytest.fixture
def impostor() -> Iterator[int]:
    """Another HTTP server answering 200 on every path: what a sibling xdist worker's vLLM looks like."""

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------------------------------
# Launcher: model path missing, port taken, dead server, secrets in the log
# ---------------------------------------------------------------------------------------------------------------


def test_missing_model_path_fails_before_any_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_spawn(*args: object, **kwargs: object) -> None:
        raise AssertionError("a server process was started for a model path that does not exist")

    monkeypatch.setattr(local.subprocess, "Popen", no_spawn)
    missing = tmp_path / "no-such-model"
    with pytest.raises(ServerStartError) as err, LocalProcessLauncher().start(CONFIG.with_overrides(model=str(missing)),
                                                                           tmp_path / "logs"):
        pass
    assert str(err.value).startswith(f"model path {missing} does not exist (no server was started)")
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())


def test_hf_ids_are_not_mistaken_for_paths(tmp_path: Path) -> None:
    local._check_local_model("Qwen/Qwen2-VL-72B-Instruct")  # no exception: vLLM resolves ids
    with pytest.raises(ServerStartError, match="does not exist"):
        local._check_local_model("./missing-model-dir")


def test_port_taken_by_another_server_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 impostor: int) -> None:
    """free_port() handed out a port that another server then took (the xdist race): /health answers, but not
    from our process. The launcher must notice, let our process fail to bind, and retry on a fresh port."""
    ports = iter([impostor])
    real_free_port = local.free_port
    monkeypatch.setattr(local, "free_port", lambda: next(ports, None) or real_free_port())
    progress: list[str] = []
    launcher = ScriptLauncher(HEALTHY)
    launcher.on_progress = progress.append
    with launcher.start(CONFIG, tmp_path) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        assert port != impostor, "the handle points at the other server"
        assert listener_in_group(port, server.pid) is True
    first = next(p for p in tmp_path.glob("*.log") if p.name.endswith(f"-p{impostor}.log"))
    assert "Address already in use" in first.read_text()
    assert any(f"port {impostor} was taken meanwhile; retrying" in line for line in progress)


def test_port_taken_on_every_attempt_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, impostor: int) -> None:
    monkeypatch.setattr(local, "free_port", lambda: impostor)
    progress: list[str] = []
    launcher = ScriptLauncher(HEALTHY)
    launcher.on_progress = progress.append
    with pytest.raises(ServerStartError) as err, launcher.start(CONFIG, tmp_path):
        pass
    msg = str(err.value)
    assert f"port {impostor} answers /health but is not served by process group" in msg
    assert "Address already in use" in msg and "full log:" in msg
    assert sum("retrying on another port" in line for line in progress) == local.PORT_RETRIES - 1


def test_server_killed_inside_the_context_stops_cleanly(tmp_path: Path) -> None:
    """SIGKILL of the server while a run holds it: leaving the context must not raise on the dead process."""
    with ScriptLauncher(HEALTHY).start(CONFIG, tmp_path) as server:
        os.kill(server.pid, signal.SIGKILL)
        assert wait_gone(server.pid)
        assert not server.is_alive()
    # no exception from the stop path; and nothing of the group is left
    assert local._group_pids(server.pid) == []


def test_probable_cause_puts_the_reason_first() -> None:
    usage = "usage: api_server.py [-h]\n" + "  [--flag FLAG]\n" * 30
    assert probable_cause(usage + "api_server.py: error: unrecognized arguments: --bogus") == (
        "api_server.py: error: unrecognized arguments: --bogus"
    )
    tb = 'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n    raise OSError(e)\nOSError: nope\n'
    assert probable_cause(tb) == "OSError: nope"
    assert probable_cause("INFO all fine\nINFO still fine") is None
    pydantic = (
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig\n"
        "  Value error, Invalid repository ID or local directory specified: '/m'.\n"
        " [type=value_error, input_value=ArgsKwargs((), {'model': '/m'}), input_type=ArgsKwargs]\n"
        "    For further information visit https://errors.pydantic.dev/2.14/v/value_error"
    )
    assert probable_cause(pydantic) == "Value error, Invalid repository ID or local directory specified: '/m'."
    engine = "(EngineCore pid=12) ERROR 11-23 08:00:00 [core.py:9] EngineCore failed to start.\nINFO shutting down"
    assert probable_cause(engine) == "(EngineCore pid=12) ERROR 11-23 08:00:00 [core.py:9] EngineCore failed to start."


def test_exit_during_start_message_leads_with_the_cause(tmp_path: Path) -> None:
    script = "import sys\nprint('usage: x\\n' * 50)\nprint('api_server.py: error: unrecognized arguments: --bogus')\n"
    script += "sys.exit(2)"
    with pytest.raises(ServerStartError) as err, ScriptLauncher(script).start(CONFIG, tmp_path):
        pass
    lines = str(err.value).splitlines()
    assert lines[0].startswith("server exited during start-up")
    assert lines[1] == "cause: api_server.py: error: unrecognized arguments: --bogus"
    assert "exit code 2" in lines[2] and "full log:" in lines[2]


@pytest.mark.parametrize("healthy", [True, False], ids=["after-a-run", "failed-start"])
def test_a_token_the_server_prints_is_masked_in_log_and_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, healthy: bool
) -> None:
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    script = HEALTHY if healthy else "import os, sys\nprint('HF_TOKEN=' + os.environ['HF_TOKEN'])\nsys.exit(1)"
    launcher = ScriptLauncher(script)
    if healthy:
        with launcher.start(CONFIG, tmp_path) as server:
            assert server.is_alive()
    else:
        with pytest.raises(ServerStartError) as err, launcher.start(CONFIG, tmp_path):
            pass
        assert FAKE_TOKEN not in str(err.value) and "HF_TOKEN=***" in str(err.value)
    logs = list(tmp_path.glob("*.log"))
    assert logs, "the server log is kept"
    for log in logs:
        text = log.read_text()
        assert FAKE_TOKEN not in text
        assert "***" in text  # the token line is there, masked
    assert not list(tmp_path.glob(".*.tmp")), "the masking rewrite left a temp file"


# ---------------------------------------------------------------------------------------------------------------
# Suite files: invalid YAML, unknown keys, unknown hardware marker
# ---------------------------------------------------------------------------------------------------------------

SERVERS = "servers: [{model: m}]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hardware: cpu\nsuites: {s: [1,\n", ["not valid YAML", "line 3"]),
        ("hardwre: cpu\n", ["unknown key(s) hardwre", "allowed: defaults, description, hardware, suites"]),
        (f"hardware: cpu\nsuites: {{s: {{restart: 2, {SERVERS}, loads: [{{}}]}}}}",
         ["suites.s: unknown key(s) restart", "allowed: arms, description, gate, loads"]),
        ("hardware: cpu\nsuites: {s: {servers: [{model: m, tensor_paralel_size: 2}], loads: [{}]}}",
         ["suites.s.servers[0]: unknown key(s) tensor_paralel_size", "tensor_parallel_size"]),
        (f"hardware: cpu\nsuites: {{s: {{{SERVERS}, loads: [{{concurency: 2}}]}}}}",
         ["suites.s.loads[0]: unknown key(s) concurency", "concurrency"]),
        (f"hardware: cpu\nsuites: {{s: {{{SERVERS}, loads: [{{profile: burst}}]}}}}",
         ["suites.s.loads[0].profile: 'burst' is not one of synchronous, concurrent"]),
        (f"hardware: cpu\nsuites: {{s: {{{SERVERS}, loads: [{{num_requests: lots}}]}}}}",
         ["suites.s.loads[0].num_requests: got 'lots' (str); expected a valid integer"]),
        (f"hardware: mi999x\nsuites: {{s: {{{SERVERS}, loads: [{{}}]}}}}",
         ["hardware: 'mi999x' is not a known marker; allowed: cpu, mi300x, mi325x"]),
        ("- just\n- a list\n", ["expected a mapping with keys"]),
    ],
    ids=["yaml", "top-key", "suite-key", "server-key", "load-key", "profile", "type", "marker", "not-mapping"],
)
def test_invalid_suite_files_name_file_key_and_allowed_values(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError) as err:
        load_suite_file(path)
    msg = str(err.value)
    assert msg.startswith(str(path)), msg
    for fragment in expected:
        assert fragment in msg, msg


CONFTEST = 'pytest_plugins = ["servegate.pytest.plugin"]\n'


def make_project(pytester: pytest.Pytester, hardware: str = "cpu") -> None:
    pytester.makeconftest(CONFTEST)
    suites = pytester.mkdir("suites")
    (suites / "serving.yaml").write_text(
        textwrap.dedent(
            f"""
            hardware: {hardware}
            suites:
              serving:
                restarts: 2
                servers: [{{model: some/model}}]
                loads: [{{concurrency: 1, num_requests: 4}}, {{concurrency: 2, num_requests: 4}}]
            """
        )
    )
    (suites / "test_serving.py").write_text(FAKE_SUITE_MODULE)


def test_unknown_marker_in_a_suite_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    make_project(pytester, hardware="mi999x")
    result = pytester.runpytest_subprocess("suites", "--strict-markers", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # after collection, without a collection traceback
    result.stderr.fnmatch_lines(["*serving.yaml: hardware: 'mi999x' is not a known marker; allowed: cpu, mi300x*"])
    assert "passed" not in result.stdout.str() and "Traceback" not in result.stdout.str()


def test_known_markers_are_registered_for_strict_markers(pytester: pytest.Pytester) -> None:
    make_project(pytester, hardware="mi300x")
    result = pytester.runpytest_subprocess("suites", "--strict-markers", "-m", "mi300x", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)  # absent hardware: skipped with a reason, not an unknown-marker error


# ---------------------------------------------------------------------------------------------------------------
# Baselines: corrupted JSON, baseline from other hardware (through the plugin, as the user sees them)
# ---------------------------------------------------------------------------------------------------------------

# as BenchSession.run() ends: baseline or gate, record, fail on the gate's verdict
GATED_MODULE = FAKE_SUITE_MODULE.replace("bench.record(case, result)", "bench.conclude(case, result)")


def test_corrupted_and_foreign_baselines(pytester: pytest.Pytester) -> None:
    make_project(pytester)
    (pytester.path / "suites" / "test_serving.py").write_text(GATED_MODULE)
    args = ("suites", "-m", "cpu", "-p", "no:cacheprovider", "--baselines-dir", "baselines")
    pytester.runpytest_subprocess(*args, "--update-baselines").assert_outcomes(passed=2)
    files = sorted((pytester.path / "baselines").rglob("*.json"))
    assert len(files) == 2, files
    corrupted, foreign = files
    corrupted_text = corrupted.read_text()[:120]  # a truncated write from some other tool
    corrupted.write_text(corrupted_text)
    doc = json.loads(foreign.read_text())
    doc["fingerprint"].update(hardware_name="AMD Instinct MI300X", hardware_arch="gfx942", device_count=8)
    foreign.write_text(json.dumps(doc))
    foreign_text = foreign.read_text()

    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert f"{corrupted}: not valid JSON:" in out and "re-record it with --update-baselines" in out
    assert corrupted.read_text() == corrupted_text, "the corrupted baseline was modified"
    assert foreign.read_text() == foreign_text

    strict = pytester.runpytest_subprocess(*args, "--gate", "strict")
    strict.assert_outcomes(failed=2)
    strict.stdout.fnmatch_lines(["*not compared: baseline from other hardware * vs *"])


# ---------------------------------------------------------------------------------------------------------------
# Disk full while writing results and baselines
# ---------------------------------------------------------------------------------------------------------------


def _enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _HalfWriter:
    """A file whose write() stores half the text, then fails like a full disk: a partial temp file exists."""

    def __init__(self, fh: object) -> None:
        self.fh = fh

    def __enter__(self) -> _HalfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()  # type: ignore[attr-defined]

    def write(self, text: str) -> int:
        self.fh.write(text[: len(text) // 2])  # type: ignore[attr-defined]
        self.fh.flush()  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> object:
        return getattr(self.fh, name)


@pytest.mark.parametrize("where", ["fsync", "write"])
def test_disk_full_leaves_old_results_intact_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    path = tmp_path / "results" / "results-x.json"
    write_results(path, _session("old"))
    old = path.read_text()
    import servegate.baseline as baseline_module

    if where == "fsync":
        monkeypatch.setattr(baseline_module.os, "fsync", _enospc)
    else:
        real_fdopen = os.fdopen
        monkeypatch.setattr(baseline_module.os, "fdopen", lambda *a, **k: _HalfWriter(real_fdopen(*a, **k)))
    with pytest.raises(OSError) as err:
        write_results(path, _session("new-" + "x" * 10_000))
    monkeypatch.undo()
    assert err.value.errno == errno.ENOSPC
    assert str(path) in str(err.value) and "No space left on device" in str(err.value)
    assert "previous file there is intact" in str(err.value)
    assert path.read_text() == old
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name], "a temp file was left behind"


def test_disk_full_on_a_baseline_keeps_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "b" / "x.json"
    atomic_write_text(path, '{"old": true}\n')
    monkeypatch.setattr("servegate.baseline.os.fsync", _enospc)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(path, '{"new": true}\n')
    monkeypatch.undo()
    assert path.read_text() == '{"old": true}\n'
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


# ---------------------------------------------------------------------------------------------------------------
# HF token in the results JSON
# ---------------------------------------------------------------------------------------------------------------


def _session(case_id: str, server: ServerConfig | None = None, **summary: object) -> Session:
    """A session of one case with one hand-made start."""
    result = CaseResult(case_id, server or ServerConfig(model="m"), LoadConfig(), [fake_start(0, 1.0, **summary)])
    return session_record([case_record(case_id, "faults", "cpu", result)], {"argv": []})


def test_token_masked_everywhere_in_the_results_json(tmp_path: Path) -> None:
    server = ServerConfig(model="m", env=(("HF_TOKEN", FAKE_TOKEN),), extra_args=("--api-key", "plain-secret-value"))
    session = _session("x", server, first_errors=[f"401 Unauthorized for token {FAKE_TOKEN}"])
    session.environment = {"argv": ["--hf-token", FAKE_TOKEN], "HF_TOKEN": FAKE_TOKEN}
    path = write_results(tmp_path / "r.json", session)
    text = path.read_text()
    assert FAKE_TOKEN not in text and "plain-secret-value" not in text
    back = json.loads(text)  # still valid JSON
    assert back["cases"][0]["server"]["env"]["HF_TOKEN"] == "***"



# ---------------------------------------------------------------------------------------------------------------
# Baselines that cannot be poisoned: through the plugin, as `pytest --update-baselines` users meet them
# ---------------------------------------------------------------------------------------------------------------

ONE_CASE_SUITE = """
hardware: cpu
suites:
  serving:
    restarts: 3
    servers: [{model: some/model}]
    loads: [{concurrency: 1, num_requests: 8}]
"""


@pytest.fixture
def gated_project(pytester: pytest.Pytester) -> Path:
    """One case whose test body records a hand-made run of the kind FAKE_RUN names; returns the baselines root."""
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\n")
    suites = pytester.mkdir("suites")
    (suites / "serving.yaml").write_text(ONE_CASE_SUITE)
    (suites / "test_serving.py").write_text(FAKE_GATED_MODULE)
    return pytester.path / "baselines"


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, kind: str, *args: str) -> pytest.RunResult:
    monkeypatch.setenv("FAKE_RUN", kind)
    return pytester.runpytest_inprocess("suites", "-p", "no:cacheprovider", *args)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("failing", "start 1 level c1 is FAILING: success 0% < 95%"),
        ("client-bound", "start 1 level c1 is CLIENT-BOUND: send lag 900 ms"),
        ("one-start", "1 server start(s); a baseline needs at least 2"),
        ("nan", "output_throughput has non-finite values"),
    ],
)
def test_a_bad_run_never_replaces_a_good_baseline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, gated_project: Path, kind: str, reason: str
) -> None:
    _run(pytester, monkeypatch, "good", "--update-baselines").assert_outcomes(passed=1)
    (path,) = gated_project.rglob("*.json")
    good = path.read_bytes()
    refused = _run(pytester, monkeypatch, kind, "--update-baselines")
    refused.assert_outcomes(failed=1)
    out = refused.stdout.str()
    assert f"baseline NOT written to {path} (the previous one, if any, is kept)" in out and reason in out, out
    assert "--force-baseline" in out
    assert path.read_bytes() == good
    if kind == "failing":  # the kept baseline still catches a 40x slower run
        _run(pytester, monkeypatch, "slow").assert_outcomes(failed=1)


def test_a_run_whose_own_checks_fail_is_not_recorded(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, gated_project: Path
) -> None:
    monkeypatch.setenv("FAKE_BODY_FAILS", "1")
    result = _run(pytester, monkeypatch, "good", "--update-baselines")
    result.assert_outcomes(failed=1)
    assert "baseline NOT written: the test failed" in result.stdout.str()
    assert not list(gated_project.rglob("*.json"))


def test_force_baseline_records_and_says_so_in_the_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, gated_project: Path
) -> None:
    _run(pytester, monkeypatch, "one-start", "--update-baselines", "--force-baseline").assert_outcomes(passed=1)
    (path,) = gated_project.rglob("*.json")
    assert json.loads(path.read_text())["forced"] == "forced despite: 1 server start(s); a baseline needs at least 2"


def test_another_intensity_is_not_compared_fails_and_lists_the_fields(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, gated_project: Path
) -> None:
    """A baseline measured under other settings cannot be compared; under the default gate that fails the session
    (an option must not switch the gate off while the session stays green), with the settings that differ."""
    _run(pytester, monkeypatch, "good", "--update-baselines").assert_outcomes(passed=1)
    for mode in ("default", "strict"):
        quick = _run(pytester, monkeypatch, "slow", "--intensity", "quick", "--gate", mode)
        quick.assert_outcomes(failed=1)
        quick.stdout.fnmatch_lines(
            ["*not compared: the baseline was measured under another configuration: load.num_requests: 8 → 4*"]
        )
    results = sorted((pytester.path / "results").glob("results-*.json"))
    (row,) = json.loads(results[-1].read_text())["cases"][0]["gate"]
    assert row["config_diff"] == {"load.num_requests": {"baseline": 8, "current": 4}}
    _run(pytester, monkeypatch, "slow", "--intensity", "quick", "--gate", "off").assert_outcomes(passed=1)
    _run(pytester, monkeypatch, "good").assert_outcomes(passed=1)  # the baseline's own settings: compared, OK


def test_unwritable_results_after_a_full_run_fail_the_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, gated_project: Path
) -> None:
    import servegate.pytest.plugin

    monkeypatch.setattr(servegate.pytest.plugin, "write_results", _enospc)
    result = _run(pytester, monkeypatch, "good", "--gate", "off")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*results NOT written: *No space left on device*"])


def test_a_hung_load_level_keeps_printing_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    from servegate.launch.base import ServerHandle, StartupFacts
    from servegate.load import measure as measure_module
    from servegate.testing.stub_server import StubConfig, StubServer

    monkeypatch.setattr(measure_module, "HEARTBEAT_S", 0.2)
    monkeypatch.setattr(measure_module, "build_requests", lambda tok, load, n, salt=0: ["hi"] * n)  # no /tokenize
    lines: list[str] = []
    load = LoadConfig(num_requests=2, concurrency=2, request_timeout_s=1.5, warmup_requests=0,
                      client_check=False, scrape_metrics=False, prompt_tokens=8, output_tokens=4)
    with StubServer(StubConfig(fault="hang")) as stub:
        handle = ServerHandle(ServerConfig(model="stub"), stub.base_url, None, StartupFacts())
        result = measure_module.measure(handle, load, lines.append)
    beats = [line for line in lines if "still running after" in line]
    assert len(beats) >= 3, lines  # 1.5 s of silence from the server, a line every 0.2 s
    assert re.fullmatch(r"c2: still running after \d+ s, 0/2 requests done", beats[0].strip()), beats
    assert [r.outcome for r in result.levels[0].run.records] == ["timeout", "timeout"]
