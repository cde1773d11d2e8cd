"""Start vLLM in a container (ROCm or CUDA image), publish it on loopback only, and always remove the container.

The ``docker run`` line follows seed 000's ROCm recipe (``--device=/dev/kfd --device=/dev/dri --group-add video
--group-add render --ipc=host``, HF cache on the host) with three deliberate differences:

* no ``--network host``: the container's port 8000 is published as ``-p 127.0.0.1:PORT:8000`` so the server is
  reachable from this machine only (the project rule: servers bind 127.0.0.1, nothing else is a target);
* ``--shm-size 16g``, ``--security-opt seccomp=unconfined --cap-add SYS_PTRACE`` as in AMD's ROCm vLLM docker
  instructions (seed 000 suggests ``--shm-size 8g`` for cross-process errors; seed 004 wants /dev/shm sized for RCCL);
* secrets (HF_TOKEN, ...) are passed by *name* (``-e HF_TOKEN``) so docker copies them from our environment and they
  never appear in the command line we log.

The image digest is recorded into the startup facts (design.md: the fingerprint carries it). Stopping is
``docker stop -t 30``, then ``docker kill`` if that failed, then ``docker rm -f``, on every exit path.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal

from servegate.config import ServerConfig
from servegate.hardware.detect import detected
from servegate.hardware.specs import ROCM_MARKERS
from servegate.hardware.tools import CommandResult, run_command
from servegate.launch.base import ServerHandle, ServerStartError, health_ticker, log_tail, wait_healthy
from servegate.launch.local import QUIET_ENV, free_port
from servegate.launch.logparse import parse_startup_log
from servegate.redact import is_secret_name, redact_text

GpuKind = Literal["rocm", "cuda", "cpu"]
CONTAINER_PORT = 8000
CONTAINER_HF_CACHE = "/root/.cache/huggingface"
CONTAINER_MODELS = "/models"
STOP_TIMEOUT_S = 30
DEFAULT_SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
ROCM_DEVICE_FLAGS = (
    "--device=/dev/kfd",
    "--device=/dev/dri",
    "--group-add", "video",
    "--group-add", "render",
    "--security-opt", "seccomp=unconfined",
    "--cap-add", "SYS_PTRACE",
)


def _docker_runner(argv: Sequence[str]) -> CommandResult:
    return run_command(argv, timeout_s=STOP_TIMEOUT_S + 60)


def container_name(config: ServerConfig, port: int) -> str:
    """``servegate-<config id>-<port>``, restricted to what docker accepts; secret env values never enter the name.

    (ServerConfig.id spells every env value, so ``WANDB_API_KEY=...`` would otherwise land in ``docker ps``.)
    """
    env = {k: ("redacted" if is_secret_name(k) else v) for k, v in config.env}
    safe_id = config.with_overrides(env=env).id if env else config.id
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", f"servegate-{safe_id}-{port}")[:200]


class DockerLauncher:
    """``start(config, log_dir)`` runs ``config.image`` (or ``image``) with vLLM on a loopback-published port."""

    def __init__(
        self,
        image: str | None = None,
        gpu: GpuKind | None = None,
        devices: Sequence[int] | None = None,
        hf_home: str | None = None,
        shm_size: str = "16g",
        docker: str = "docker",
        runner: Callable[[Sequence[str]], CommandResult] = _docker_runner,
        popen: Callable[..., Any] = subprocess.Popen,
        secret_env: Sequence[str] = DEFAULT_SECRET_ENV,
        on_progress: Callable[[str], None] | None = None,
        health_interval_s: float = 1.0,
    ) -> None:
        self.image = image
        self._gpu = gpu
        self.devices = list(devices) if devices is not None else None
        self.hf_home = hf_home or os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
        self.shm_size = shm_size
        self.docker = docker
        self.runner = runner
        self.popen = popen
        self.secret_env = tuple(secret_env)
        self.on_progress = on_progress
        self.health_interval_s = health_interval_s

    @property
    def gpu(self) -> GpuKind:
        """The passthrough flavour; detected from the host when not given (amd -> rocm, nvidia -> cuda)."""
        if self._gpu is None:
            hw = detected()
            self._gpu = "rocm" if hw.vendor == "amd" or hw.marker in ROCM_MARKERS else (
                "cuda" if hw.vendor == "nvidia" else "cpu"
            )
        return self._gpu

    # -- the command line -------------------------------------------------------------------------------------------

    def _model_mount(self, config: ServerConfig) -> tuple[list[str], dict[str, str]]:
        """A local model directory is mounted read-only at /models/<name>; returns (-v flags, host -> container)."""
        flags: list[str] = []
        mapping: dict[str, str] = {}
        for path in (config.model, config.tokenizer):
            if path and Path(path).is_dir() and path not in mapping:
                inside = f"{CONTAINER_MODELS}/{Path(path).resolve().name}"
                mapping[path] = inside
                flags += ["-v", f"{Path(path).resolve()}:{inside}:ro"]
        return flags, mapping

    def environment_flags(self, config: ServerConfig) -> tuple[list[str], dict[str, str]]:
        """``-e`` flags and the values docker must find in *its* environment for secrets passed by name."""
        flags: list[str] = []
        secrets: dict[str, str] = {}
        env = dict(QUIET_ENV)
        env.update(config.env_dict)
        if self.gpu == "rocm" and self.devices is not None:
            env["HIP_VISIBLE_DEVICES"] = ",".join(str(d) for d in self.devices)
        if Path(config.model).is_dir():
            env.setdefault("HF_HUB_OFFLINE", "1")
        for key, value in sorted(env.items()):
            if is_secret_name(key):
                flags += ["-e", key]
                secrets[key] = value
            else:
                flags += ["-e", f"{key}={value}"]
        for key in self.secret_env:
            if key in os.environ and key not in env:
                flags += ["-e", key]  # by name: docker copies the value from its own environment
        return flags, secrets

    def command(self, config: ServerConfig, port: int, name: str | None = None) -> list[str]:
        image = config.image or self.image
        if not image:
            raise ServerStartError(f"{config.id}: the docker launcher needs an image (suite key 'image')")
        cmd = [self.docker, "run", "-d", "--name", name or container_name(config, port)]
        cmd += ["--ipc=host", "--shm-size", self.shm_size]
        if self.gpu == "rocm":
            cmd += list(ROCM_DEVICE_FLAGS)
        elif self.gpu == "cuda":
            which = ",".join(str(d) for d in self.devices) if self.devices is not None else None
            cmd += ["--gpus", f'"device={which}"' if which is not None else "all"]
        cmd += ["-p", f"127.0.0.1:{port}:{CONTAINER_PORT}"]
        cmd += ["-v", f"{self.hf_home}:{CONTAINER_HF_CACHE}"]
        mounts, mapping = self._model_mount(config)
        cmd += mounts
        env_flags, _ = self.environment_flags(config)
        cmd += env_flags
        args = [mapping.get(a, a) for a in config.cli_args()]
        model = args[1] if args[:1] == ["--model"] else mapping.get(config.model, config.model)
        rest = args[2:] if args[:1] == ["--model"] else args
        # inside the container vLLM listens on all of *its* interfaces; only the loopback publish reaches it
        cmd += ["--entrypoint", "vllm", image, "serve", model, *rest]
        cmd += ["--host", "0.0.0.0", "--port", str(CONTAINER_PORT)]
        return cmd

    # -- lifecycle ----------------------------------------------------------------------------------------------------

    def image_digest(self, image: str) -> str | None:
        """``repo@sha256:...`` of the local image, or None (a locally built image has no RepoDigests)."""
        result = self.runner([self.docker, "image", "inspect", "--format", "{{index .RepoDigests 0}}", image])
        text = result.stdout.strip()
        return text if result.ok and "@sha256:" in text else None

    def is_running(self, name: str) -> bool:
        result = self.runner([self.docker, "inspect", "--format", "{{.State.Running}}", name])
        return result.ok and result.stdout.strip().lower() == "true"

    def stop(self, name: str) -> list[str]:
        """docker stop -t 30; docker kill if that failed; docker rm -f always. Returns what failed (for the log)."""
        problems = []
        stopped = self.runner([self.docker, "stop", "-t", str(STOP_TIMEOUT_S), name])
        if not stopped.ok:
            problems.append(f"docker stop: {stopped.stderr.strip()[:200]}")
            killed = self.runner([self.docker, "kill", name])
            if not killed.ok:
                problems.append(f"docker kill: {killed.stderr.strip()[:200]}")
        removed = self.runner([self.docker, "rm", "-f", name])
        if not removed.ok:
            problems.append(f"docker rm -f: {removed.stderr.strip()[:200]}")
        return problems

    def _follow_logs(self, name: str, log: IO[bytes]) -> Any:
        try:
            return self.popen(
                [self.docker, "logs", "-f", name], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        except OSError:
            return None

    @contextlib.contextmanager
    def start(self, config: ServerConfig, log_dir: Path) -> Iterator[ServerHandle]:
        log_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        name = container_name(config, port)
        log_path = log_dir / f"{config.id}-{time.strftime('%Y%m%d-%H%M%S')}-p{port}.log"
        cmd = self.command(config, port, name)
        image = config.image or self.image or ""
        _, secrets = self.environment_flags(config)
        with open(log_path, "ab") as log:
            log.write(redact_text("$ " + " ".join(cmd) + "\n").encode())
            log.flush()
            t0 = time.monotonic()
            result = self._run_with_secrets(cmd, secrets)
            if not result.ok:
                log.write(f"docker run failed: {result.stderr}\n".encode())
                self.stop(name)  # a half-created container (name taken, pull failed) must not linger
                raise ServerStartError(
                    f"{config.id}: docker run failed (exit {result.returncode}): {result.stderr.strip()[-500:]}\n"
                    f"log: {log_path}"
                )
            container_id = result.stdout.strip()[:64] or None
            follower = self._follow_logs(name, log)
            try:
                wait_healthy(
                    f"http://127.0.0.1:{port}/health",
                    deadline_s=config.startup_timeout_s,
                    still_running=lambda: self.is_running(name),
                    describe=lambda: redact_text(f"container {name}; full log: {log_path}\n{log_tail(log_path)}"),
                    on_tick=self._tick(config),
                    interval_s=self.health_interval_s,
                )
                ready_s = time.monotonic() - t0
                facts = parse_startup_log(log_path.read_text(encoding="utf-8", errors="replace").splitlines())
                facts.time_to_ready_s = ready_s
                facts.extra.update(
                    {"launcher": "docker", "image": image, "image_digest": self.image_digest(image),
                     "container_name": name, "gpu_passthrough": self.gpu}
                )
                yield ServerHandle(config, f"http://127.0.0.1:{port}", log_path, facts, container_id=container_id)
            finally:
                problems = self.stop(name)
                if follower is not None:
                    with contextlib.suppress(Exception):
                        follower.terminate()
                        follower.wait(timeout=10)
                if problems:
                    log.write(("servegate: cleanup problems: " + "; ".join(problems) + "\n").encode())

    def _run_with_secrets(self, cmd: list[str], secrets: dict[str, str]) -> CommandResult:
        """docker run with secret values in docker's environment only (never in argv)."""
        if not secrets:
            return self.runner(cmd)
        saved = {k: os.environ.get(k) for k in secrets}
        os.environ.update(secrets)
        try:
            return self.runner(cmd)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _tick(self, config: ServerConfig) -> Callable[[float], None] | None:
        return health_ticker(self.on_progress, f"{config.id}: waiting for the container's /health")


__all__ = ["ROCM_DEVICE_FLAGS", "DockerLauncher", "container_name"]
