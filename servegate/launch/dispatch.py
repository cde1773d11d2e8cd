"""Pick the launcher a ServerConfig asks for (local process, docker, external URL), so a suite file decides.

``--vllm-url`` overrides every config: the suite then measures a server someone else started and manages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from servegate.config import ServerConfig
from servegate.launch.base import ServerHandle
from servegate.launch.docker import DockerLauncher
from servegate.launch.external import ExternalLauncher
from servegate.launch.local import LocalProcessLauncher


class DispatchLauncher:
    def __init__(
        self,
        vllm_python: str | None = None,
        vllm_url: str | None = None,
        devices: Sequence[int] | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        self.vllm_python = vllm_python
        self.vllm_url = vllm_url
        self.devices = devices
        self.on_progress = on_progress

    @contextlib.contextmanager
    def start(self, config: ServerConfig, log_dir: Path) -> Iterator[ServerHandle]:
        if self.vllm_url or config.launcher == "external":
            launcher = ExternalLauncher(self.vllm_url or config.url)
        elif config.launcher == "docker":
            launcher = DockerLauncher(image=config.image, devices=self.devices, on_progress=self.on_progress)
        else:
            launcher = LocalProcessLauncher(python=self.vllm_python, on_progress=self.on_progress)
        with launcher.start(config, log_dir) as server:
            yield server
