"""Pick the launcher a ServerConfig asks for (local process, docker, external URL), so a suite file decides.

``--vllm-url`` overrides every config: the suite then measures a server someone else started and manages. Under
pytest-xdist each worker's servers get that worker's share of the GPUs (or CPU cores), see servegate.devices.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from servegate.config import ServerConfig
from servegate.devices import server_env
from servegate.hardware.detect import detected
from servegate.launch.base import ServerHandle
from servegate.launch.docker import DockerLauncher
from servegate.launch.external import ExternalLauncher
from servegate.launch.local import LocalProcessLauncher


class DispatchLauncher:
    def __init__(
        self,
        vllm_python: str | None = None,
        vllm_url: str | None = None,
        launcher: str | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        self.vllm_python = vllm_python
        self.vllm_url = vllm_url
        self.launcher = launcher  # overrides every config's launcher (e.g. "local" inside the vLLM container)
        self.on_progress = on_progress

    @contextlib.contextmanager
    def start(self, config: ServerConfig, log_dir: Path) -> Iterator[ServerHandle]:
        hw = detected()
        device_env = server_env(hw.vendor, hw.count, config.tensor_parallel_size)  # this xdist worker's share
        kind = self.launcher or config.launcher
        if self.vllm_url or kind == "external":
            launcher = ExternalLauncher(self.vllm_url or config.url)
        elif kind == "docker":
            ids = device_env.get("HIP_VISIBLE_DEVICES") or device_env.get("CUDA_VISIBLE_DEVICES")
            devices = [int(x) for x in ids.split(",")] if ids else None
            launcher = DockerLauncher(image=config.image, devices=devices, on_progress=self.on_progress)
        else:
            launcher = LocalProcessLauncher(self.vllm_python, self.on_progress, device_env)
        with launcher.start(config, log_dir) as server:
            yield server
