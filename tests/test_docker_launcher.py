"""DockerLauncher: the command line against seed 000's recipe, and the stop path on every exit, with no docker daemon.

The runner is injected: it records each docker command and, for ``docker run``, starts a tiny HTTP server on the
published loopback port to play the container, so the whole lifecycle (run, wait healthy, yield, stop, rm) runs.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from servegate.config import ServerConfig, normalize_env
from servegate.hardware.tools import CommandResult
from servegate.launch.base import ServerStartError
from servegate.launch.docker import ROCM_DEVICE_FLAGS, DockerLauncher, container_name

ROOT = Path(__file__).resolve().parents[1]

# Seed 000, "Reproduce This", step 2 — the ROCm passthrough flags servegate must keep:
#   docker run -d --name vllm-qwen2-vl-72b --network host --ipc=host --device=/dev/kfd --device=/dev/dri
#     --group-add video --group-add render -v /mnt/models:/mnt/models:rw -e HF_HOME=/mnt/models/huggingface
#     -e VLLM_USE_TRITON_FLASH_ATTN=1 vllm/vllm-openai-rocm:v0.20.1 --model Qwen/Qwen2-VL-72B-Instruct
#     --dtype bfloat16 --gpu-memory-utilization 0.92 --max-model-len 16384 --max-num-seqs 64
#     --max-num-batched-tokens 8192 --enable-chunked-prefill --port 8000
SEED_000_PASSTHROUGH = ["--ipc=host", "--device=/dev/kfd", "--device=/dev/dri", "--group-add video",
                        "--group-add render"]

QWEN2_VL = ServerConfig(
    model="Qwen/Qwen2-VL-72B-Instruct", dtype="bfloat16", max_model_len=16384, max_num_seqs=64,
    max_num_batched_tokens=8192, extra_args=("--gpu-memory-utilization", "0.92", "--enable-chunked-prefill"),
    env=normalize_env({"VLLM_USE_TRITON_FLASH_ATTN": 1}), launcher="docker", image="vllm/vllm-openai-rocm:v0.20.1",
    startup_timeout_s=10,
)


def flags_text(cmd: list[str]) -> str:
    return " ".join(cmd)


def test_rocm_command_keeps_seed_000_passthrough_and_publishes_on_loopback_only() -> None:
    cmd = DockerLauncher(gpu="rocm", hf_home="/mnt/models/huggingface").command(QWEN2_VL, 41234)
    text = flags_text(cmd)
    for flag in SEED_000_PASSTHROUGH:
        assert flag in text
    for flag in ("--security-opt seccomp=unconfined", "--cap-add SYS_PTRACE", "--shm-size 16g"):
        assert flag in text
    assert "--network" not in cmd  # host networking would bind the server on every interface
    assert cmd[cmd.index("-p") + 1] == "127.0.0.1:41234:8000"
    assert "-v /mnt/models/huggingface:/root/.cache/huggingface" in text
    assert "-e VLLM_USE_TRITON_FLASH_ATTN=1" in text and "-e VLLM_NO_USAGE_STATS=1" in text
    # the vLLM part: image, then `serve <model>` and the seed's flags
    image_at = cmd.index("vllm/vllm-openai-rocm:v0.20.1")
    assert cmd[image_at - 2 : image_at] == ["--entrypoint", "vllm"]
    assert cmd[image_at + 1 : image_at + 3] == ["serve", "Qwen/Qwen2-VL-72B-Instruct"]
    tail = flags_text(cmd[image_at:])
    for flag in ("--dtype bfloat16", "--gpu-memory-utilization 0.92", "--max-model-len 16384", "--max-num-seqs 64",
                 "--max-num-batched-tokens 8192", "--enable-chunked-prefill", "--port 8000"):
        assert flag in tail
    assert "--model" not in cmd[image_at:]
    assert cmd[cmd.index("--name") + 1] == container_name(QWEN2_VL, 41234)
    assert cmd[cmd.index("--name") + 1].startswith("servegate-Qwen2-VL-72B-Instruct-bfloat16")


def test_device_selection_rocm_and_cuda() -> None:
    rocm = DockerLauncher(gpu="rocm", devices=[2, 3]).command(QWEN2_VL, 1)
    assert "HIP_VISIBLE_DEVICES=2,3" in rocm
    assert "--gpus" not in rocm
    cuda = DockerLauncher(gpu="cuda", devices=[0, 1]).command(QWEN2_VL, 1)
    assert cuda[cuda.index("--gpus") + 1] == '"device=0,1"'
    assert not set(ROCM_DEVICE_FLAGS) & {"--device=/dev/kfd"} & set(cuda)
    assert DockerLauncher(gpu="cuda").command(QWEN2_VL, 1)[cuda.index("--gpus") + 1] == "all"


def test_secrets_are_passed_by_name_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnopqrstuvwxyz123456")
    config = QWEN2_VL.with_overrides(env={"WANDB_API_KEY": "s3cr3t-value", "VLLM_ROCM_USE_AITER": 1})
    launcher = DockerLauncher(gpu="rocm")
    cmd = launcher.command(config, 1)
    text = flags_text(cmd)
    assert "hf_abcdefghijklmnopqrstuvwxyz123456" not in text and "s3cr3t-value" not in text
    assert cmd[cmd.index("HF_TOKEN") - 1] == "-e"
    assert cmd[cmd.index("WANDB_API_KEY") - 1] == "-e"
    assert launcher.environment_flags(config)[1] == {"WANDB_API_KEY": "s3cr3t-value"}


def test_local_model_directory_is_mounted_read_only_and_rewritten() -> None:
    tiny = str(ROOT / "datasets" / "tiny-llama")
    config = ServerConfig(model=tiny, load_format="dummy", image="vllm/vllm-openai:latest")
    cmd = DockerLauncher(gpu="cpu").command(config, 5)
    assert f"{Path(tiny).resolve()}:/models/tiny-llama:ro" in cmd
    assert cmd[cmd.index("serve") + 1] == "/models/tiny-llama"
    assert tiny not in cmd[cmd.index("serve") :]
    assert "HF_HUB_OFFLINE=1" in cmd


def test_no_image_is_a_clear_error() -> None:
    with pytest.raises(ServerStartError, match="needs an image"):
        DockerLauncher(gpu="rocm").command(QWEN2_VL.with_overrides(image=None), 1)


# -- lifecycle with a fake docker --------------------------------------------------------------------------------


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class FakeDocker:
    """Plays the docker CLI: `run` starts a health server on the published port (unless ``healthy`` is False)."""

    def __init__(self, healthy: bool = True, run_ok: bool = True, stop_ok: bool = True) -> None:
        self.healthy, self.run_ok, self.stop_ok = healthy, run_ok, stop_ok
        self.calls: list[list[str]] = []
        self.server: http.server.HTTPServer | None = None
        self.running = False

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        argv = list(argv)
        self.calls.append(argv)
        verb = argv[1]
        if verb == "run":
            if not self.run_ok:
                return CommandResult(True, 125, "", "docker: Error response from daemon: pull access denied")
            self.running = True
            if self.healthy:
                port = int(argv[argv.index("-p") + 1].split(":")[1])
                self.server = http.server.HTTPServer(("127.0.0.1", port), _Health)
                threading.Thread(target=self.server.serve_forever, daemon=True).start()
            return CommandResult(True, 0, "f" * 64 + "\n", "")
        if verb == "inspect":
            return CommandResult(True, 0, "true\n" if self.running and self.healthy else "false\n", "")
        if verb == "image":
            return CommandResult(True, 0, "vllm/vllm-openai-rocm@sha256:" + "ab" * 32 + "\n", "")
        if verb == "stop":
            self._shutdown()
            return CommandResult(True, 0 if self.stop_ok else 1, "", "" if self.stop_ok else "timeout")
        if verb in ("kill", "rm"):
            self._shutdown()
            return CommandResult(True, 0, "", "")
        return CommandResult(True, 1, "", f"unexpected {argv}")

    def _shutdown(self) -> None:
        self.running = False
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def verbs(self) -> list[str]:
        return [c[1] for c in self.calls if c[1] != "inspect"]


class FakeLogs:
    def __init__(self, argv: list[str], stdout: Any = None, **kw: Any) -> None:
        self.argv = argv
        stdout.write(b"INFO 03-03 10:00:00 api_server.py:1 vLLM API server version 0.20.1\n")
        self.terminated = False

    def terminate(self) -> None:
        self.terminated = True

    def wait(self, timeout: float | None = None) -> int:
        return 0


def launcher(fake: FakeDocker) -> DockerLauncher:
    return DockerLauncher(gpu="rocm", runner=fake, popen=FakeLogs, health_interval_s=0.05)


def test_start_yields_a_handle_records_the_digest_and_removes_the_container(tmp_path: Path) -> None:
    fake = FakeDocker()
    with launcher(fake).start(QWEN2_VL, tmp_path) as handle:
        assert handle.is_alive()
        assert handle.base_url.startswith("http://127.0.0.1:")
        assert handle.container_id == "f" * 64
        assert handle.facts.extra["image_digest"] == "vllm/vllm-openai-rocm@sha256:" + "ab" * 32
        assert handle.facts.time_to_ready_s is not None
    assert fake.verbs() == ["run", "image", "stop", "rm"]
    stop = next(c for c in fake.calls if c[1] == "stop")
    assert stop[2:4] == ["-t", "30"] and stop[4].startswith("servegate-")
    assert not handle.is_alive()
    assert handle.log_path.read_text().startswith("$ docker run")


def test_an_exception_in_the_body_still_stops_the_container(tmp_path: Path) -> None:
    fake = FakeDocker()
    with pytest.raises(RuntimeError, match="benchmark blew up"), launcher(fake).start(QWEN2_VL, tmp_path):
        raise RuntimeError("benchmark blew up")
    assert fake.verbs()[-2:] == ["stop", "rm"]


def test_a_container_that_exits_during_startup_is_reported_and_removed(tmp_path: Path) -> None:
    fake = FakeDocker(healthy=False)
    with pytest.raises(ServerStartError, match="exited during start-up"), launcher(fake).start(QWEN2_VL, tmp_path):
        pytest.fail("must not yield")
    assert fake.verbs() == ["run", "stop", "rm"]


def test_a_failed_docker_run_cleans_up_and_says_why(tmp_path: Path) -> None:
    fake = FakeDocker(run_ok=False)
    with pytest.raises(ServerStartError, match="pull access denied"), launcher(fake).start(QWEN2_VL, tmp_path):
        pytest.fail("must not yield")
    assert fake.verbs() == ["run", "stop", "rm"]


def test_a_failed_stop_escalates_to_kill_then_rm(tmp_path: Path) -> None:
    fake = FakeDocker(stop_ok=False)
    with launcher(fake).start(QWEN2_VL, tmp_path):
        pass
    assert fake.verbs()[-3:] == ["stop", "kill", "rm"]
