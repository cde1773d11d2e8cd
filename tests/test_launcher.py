"""Launcher mechanics with scripted child processes: death during start, deadline, process-group stop.

These scripts stand in for nothing that is measured: they exercise the lifecycle code paths that a real vLLM
cannot be made to take on demand (see tests/test_vllm_integration.py for the real server).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fixtures.processes import wait_gone
from servegate.config import ServerConfig
from servegate.launch.base import ServerStartError, process_running
from servegate.launch.local import LocalProcessLauncher
from servegate.testing.fakes import ScriptLauncher

CONFIG = ServerConfig(model="fake-model", startup_timeout_s=5.0)

HEALTHY_WITH_CHILD = """
import http.server, os, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("CHILD_PID", child.pid, flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
print("GPU KV cache size: 4,096 tokens", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_exit_during_start_raises_with_log_tail(tmp_path: Path) -> None:
    launcher = ScriptLauncher("import sys; print('ValueError: unrecognized arguments: --bogus'); sys.exit(2)")
    with pytest.raises(ServerStartError) as err, launcher.start(CONFIG, tmp_path):
        pass
    msg = str(err.value)
    assert "exited during start-up" in msg
    assert "exit code 2" in msg
    assert "unrecognized arguments: --bogus" in msg  # the log's tail is in the message
    assert str(tmp_path) in msg  # and where the whole log is


def test_deadline_raises_and_kills(tmp_path: Path) -> None:
    launcher = ScriptLauncher("import time; print('loading...', flush=True); time.sleep(600)")
    t = time.monotonic()
    with (
        pytest.raises(ServerStartError, match="not healthy after 1 s"),
        launcher.start(CONFIG.with_overrides(startup_timeout_s=1.0), tmp_path),
    ):
        pass
    assert time.monotonic() - t < 30
    log = next(tmp_path.glob("*.log")).read_text()
    assert "loading..." in log


def test_whole_group_stopped_on_normal_exit_and_on_exception(tmp_path: Path) -> None:
    launcher = ScriptLauncher(HEALTHY_WITH_CHILD)
    with launcher.start(CONFIG, tmp_path) as server:
        assert server.is_alive()
        assert server.facts.kv_cache_tokens == 4096
        assert server.facts.time_to_ready_s is not None
        leader = server.pid
        child = int(
            next(line for line in server.log_path.read_text().splitlines() if line.startswith("CHILD_PID")).split()[1]
        )
        assert process_running(child)
    assert wait_gone(leader) and wait_gone(child), "server or its child outlived the context"

    with pytest.raises(RuntimeError, match="test failure"), launcher.start(CONFIG, tmp_path) as server:
        leader = server.pid
        raise RuntimeError("test failure")
    assert wait_gone(leader)


def test_keyboard_interrupt_stops_the_server(tmp_path: Path) -> None:
    launcher = ScriptLauncher(HEALTHY_WITH_CHILD)
    with pytest.raises(KeyboardInterrupt), launcher.start(CONFIG, tmp_path) as server:
        leader = server.pid
        raise KeyboardInterrupt
    assert wait_gone(leader)


def test_command_and_environment() -> None:
    launcher = LocalProcessLauncher(python="/usr/bin/python3")
    config = ServerConfig(model="m", dtype="bfloat16", env=(("VLLM_ROCM_USE_AITER", "1"),), extra_args=("--x",))
    cmd = launcher.command(config, 8123)
    assert cmd[:3] == ["/usr/bin/python3", "-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[-4:] == ["--host", "127.0.0.1", "--port", "8123"]  # loopback only
    assert "--dtype" in cmd and "--x" in cmd
    env = launcher.environment(config)
    assert env["VLLM_ROCM_USE_AITER"] == "1" and env["VLLM_NO_USAGE_STATS"] == "1"
