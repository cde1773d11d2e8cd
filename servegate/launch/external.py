"""Attach to a vLLM server someone else started (``--vllm-url``): check it, never start or stop it.

Only loopback URLs are accepted (127.0.0.0/8, ::1, localhost): the project's rule is that servers bind 127.0.0.1
and no other address is a benchmark target. Before the first request the server must answer /health with 200 and
list the configured model in /v1/models — benchmarking a different model than the suite names would store a
baseline under the wrong id, which is worse than failing. /version fills the vLLM version into the startup facts.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from servegate.config import ServerConfig
from servegate.launch.base import ServerHandle, ServerStartError, StartupFacts


class NotLoopbackError(ValueError):
    """The URL names a host other than this machine's loopback."""


def normalize_url(url: str, allow_remote: bool = False) -> str:
    """``http://127.0.0.1:8000/v1/`` -> ``http://127.0.0.1:8000``; refuses non-loopback hosts unless allowed."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--vllm-url must be http(s)://HOST:PORT, got {url!r}")
    if not allow_remote and not is_loopback(parts.hostname):
        raise NotLoopbackError(
            f"refusing --vllm-url {url}: servegate only targets servers on this machine's loopback "
            f"(127.0.0.1, ::1, localhost); {parts.hostname!r} is not one"
        )
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return f"{parts.scheme}://{parts.netloc}{path}"


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _get_json(url: str, timeout: float) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return 0, str(exc)
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, None


class ExternalLauncher:
    """``start(config, log_dir)`` verifies the running server at ``url`` (or ``config.url``) and yields a handle."""

    def __init__(self, url: str | None = None, *, allow_remote: bool = False, timeout_s: float = 5.0) -> None:
        self.allow_remote = allow_remote
        self.timeout_s = timeout_s
        self.url = normalize_url(url, allow_remote) if url else None

    def base_url(self, config: ServerConfig) -> str:
        if self.url:
            return self.url
        if not config.url:
            raise ServerStartError(f"{config.id}: the external launcher needs a URL (--vllm-url or suite key 'url')")
        return normalize_url(config.url, self.allow_remote)

    def check(self, config: ServerConfig) -> StartupFacts:
        """/health must be 200 and /v1/models must serve ``config.model_name``; /version is read when present."""
        base = self.base_url(config)
        status, detail = _get_json(base + "/health", self.timeout_s)
        if status != 200:
            why = f"HTTP {status}" if status else f"unreachable ({detail})"
            raise ServerStartError(f"no healthy vLLM at {base}: GET /health -> {why}")
        status, models = _get_json(base + "/v1/models", self.timeout_s)
        served = [m.get("id") for m in (models or {}).get("data", []) if isinstance(m, dict)] if status == 200 else []
        if config.model_name not in served:
            raise ServerStartError(
                f"{base} does not serve {config.model_name!r} (GET /v1/models -> {served or f'HTTP {status}'}); "
                "point --vllm-url at the right server or set the suite's model/served_model_name to match"
            )
        _, version = _get_json(base + "/version", self.timeout_s)
        facts = StartupFacts(vllm_version=version.get("version") if isinstance(version, dict) else None)
        facts.extra.update({"launcher": "external", "url": base, "served_models": served})
        return facts

    @contextlib.contextmanager
    def start(self, config: ServerConfig, log_dir: Path) -> Iterator[ServerHandle]:
        facts = self.check(config)
        yield ServerHandle(config, self.base_url(config), None, facts)
        # no stop: servegate did not start this server, so it is not servegate's to stop


__all__ = ["ExternalLauncher", "NotLoopbackError", "is_loopback", "normalize_url"]
