"""The launcher contract: start a vLLM server for a ServerConfig, hand back where it listens, always stop it.

Every launcher is a context manager factory so that the code which starts a server is the code which stops it, on
every exit path (exception, KeyboardInterrupt, pytest failure).
"""

from __future__ import annotations

import contextlib
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from servegate.config import ServerConfig
from servegate.redact import redact_text


class ServerStartError(RuntimeError):
    """The server did not become healthy: it exited, or the deadline passed. The message carries the log's tail."""


class ServerLostError(RuntimeError):
    """A healthy server stopped answering while the run still needed it (crash, OOM kill, container gone).

    Raised where a request could not be *counted* (prompt preparation, warmup); requests of a measured level that
    fail because the server died are counted as errors of that level instead.
    """


@dataclass
class StartupFacts:
    """What the server's own log says about its start (None where the log did not say)."""

    vllm_version: str | None = None
    engine_init_s: float | None = None
    kv_cache_tokens: int | None = None
    max_concurrency: float | None = None
    attention_backend: str | None = None
    model_load_s: float | None = None
    compile_s: float | None = None
    time_to_ready_s: float | None = None  # measured by the launcher: process start -> /health 200
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ServerHandle:
    """A running server as the load generator and the report see it."""

    config: ServerConfig
    base_url: str
    log_path: Path | None
    facts: StartupFacts
    pid: int | None = None
    container_id: str | None = None

    def is_alive(self) -> bool:
        """Whether the server still serves. Our own process that has exited is dead at once; otherwise /health
        decides, with a few tries, because a server saturated by the load may answer it slowly."""
        if self.pid is not None and not process_running(self.pid):
            return False
        return any(probe(self.base_url + "/health", timeout=5.0) for _ in range(3))

    def lost(self, phase: str, cause: BaseException) -> ServerLostError:
        """The error to raise when ``phase`` failed because this server is gone: what, when, and its log."""
        return ServerLostError(
            redact_text(
                f"server {self.base_url} stopped answering during {phase}: {type(cause).__name__}: {cause}; "
                f"/health does not answer either.\nfull log: {self.log_path}\n--- last lines ---\n"
                f"{log_tail(self.log_path)}"
            )
        )


class Launcher(Protocol):
    def start(self, config: ServerConfig, log_dir: Path) -> contextlib.AbstractContextManager[ServerHandle]: ...


def process_running(pid: int) -> bool:
    """Running and not a zombie (a killed child stays a zombie until its parent reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def probe(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers 200. Any error (refused, reset, timeout, non-200) is False."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def log_tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


def wait_healthy(
    health_url: str,
    deadline_s: float,
    still_running: Callable[[], bool],
    describe: Callable[[], str],
    on_tick: Callable[[float], None] | None = None,
    interval_s: float = 0.5,
) -> float:
    """Poll ``health_url`` until 200; return the seconds waited.

    Raises ServerStartError as soon as ``still_running()`` is False (no point waiting for a dead server) or when
    the deadline passes. ``describe()`` supplies the context for the message (command, log path, log tail).
    """
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        if probe(health_url, timeout=min(2.0, interval_s * 4)):
            return elapsed
        if not still_running():
            raise ServerStartError(f"server exited during start-up after {elapsed:.0f} s.\n{describe()}")
        if elapsed > deadline_s:
            raise ServerStartError(f"server not healthy after {deadline_s:.0f} s (deadline).\n{describe()}")
        if on_tick is not None:
            on_tick(elapsed)
        time.sleep(interval_s)


def health_ticker(on_progress: Callable[[str], None] | None, what: str) -> Callable[[float], None] | None:
    """A wait_healthy tick that reports every 15 s: a server start takes minutes and must show it is alive."""
    if on_progress is None:
        return None
    last = [0.0]

    def tick(elapsed: float) -> None:
        if elapsed - last[0] >= 15.0:
            last[0] = elapsed
            on_progress(f"{what} ({elapsed:.0f} s)")

    return tick
