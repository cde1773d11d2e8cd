"""Multi-node servers over Ray: the flags and environment vLLM gets, the wait for the whole cluster (on recorded
`ray status` outputs, see tests/data/ray/README.md) and every node in the start's facts."""

from __future__ import annotations

from pathlib import Path

import pytest

from servegate.config import ServerConfig
from servegate.hardware.tools import CommandResult
from servegate.launch.base import ServerStartError
from servegate.launch.cluster import parse_ray_status, wait_for_ray_cluster
from servegate.launch.local import LocalProcessLauncher

DATA = Path(__file__).parent / "data" / "ray"
FULL = (DATA / "ray-status-2x8gpu.txt").read_text()
HEAD_ONLY = (DATA / "ray-status-head-only.txt").read_text()

CONFIG = ServerConfig(
    model="deepseek-ai/DeepSeek-V3",
    tensor_parallel_size=8,
    pipeline_parallel_size=2,
    distributed_executor_backend="ray",
    ray_address="10.0.0.1:6379",
    startup_timeout_s=600,
)


def test_recorded_ray_status_outputs_parse() -> None:
    full = parse_ray_status(FULL)
    assert full.nodes == (
        "node_a689bb663bd4154a54614777bcc40f9c44b7dbd5c83f6cd7862b09cd",
        "node_b07cdf56b532f9dfd446b08e9ddb2f1c9f4c46ab600779999807e482",
    )
    assert (full.gpus, full.cpus) == (16.0, 256.0)
    reserved = parse_ray_status((DATA / "ray-status-2x8gpu-reserved.txt").read_text())
    assert (len(reserved.nodes), reserved.gpus) == (2, 16.0)  # the placement-group suffix does not confuse it
    with pytest.raises(ValueError, match="not `ray status` output"):
        parse_ray_status("ConnectionError: Could not find any running Ray instance.")


def test_flags_environment_and_id() -> None:
    args = CONFIG.cli_args()
    assert args[args.index("--tensor-parallel-size") + 1] == "8"
    assert args[args.index("--pipeline-parallel-size") + 1] == "2"
    assert args[args.index("--distributed-executor-backend") + 1] == "ray"
    assert LocalProcessLauncher("python").environment(CONFIG)["RAY_ADDRESS"] == "10.0.0.1:6379"
    assert CONFIG.id == "DeepSeek-V3-tp8-pp2"
    assert ServerConfig(model="m").cli_args() == ["--model", "m"]  # single-node configs are unchanged
    with pytest.raises(ValueError, match="ray_address needs distributed_executor_backend: ray"):
        ServerConfig(model="m", ray_address="10.0.0.1:6379")


class Clock:
    """Time that advances only when the launcher sleeps: the wait is tested without waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def test_the_launcher_waits_until_every_gpu_of_the_cluster_is_there() -> None:
    outputs = iter([HEAD_ONLY, HEAD_ONLY, FULL])
    calls: list[list[str]] = []
    progress: list[str] = []

    def run(argv: list[str]) -> CommandResult:
        calls.append(list(argv))
        return CommandResult(True, 0, next(outputs), "")

    clock = Clock()
    cluster = wait_for_ray_cluster(CONFIG, "/opt/venv/bin/python", progress.append, run, clock.sleep, clock)
    assert len(cluster.nodes) == 2 and len(calls) == 3
    assert calls[0][-3:] == ["status", "--address", "10.0.0.1:6379"]
    assert progress[0].startswith("DeepSeek-V3-tp8-pp2: waiting for the Ray cluster: 8 GPUs on 1 node(s), need 16")
    assert [n["node_id"] for n in cluster.node_facts()] == list(cluster.nodes)


def test_an_incomplete_cluster_fails_at_the_deadline_saying_what_it_saw() -> None:
    clock = Clock()
    with pytest.raises(ServerStartError) as info:
        wait_for_ray_cluster(
            CONFIG, "python", None, lambda argv: CommandResult(True, 0, HEAD_ONLY, ""), clock.sleep, clock
        )
    message = str(info.value)
    assert "did not reach 16 GPUs (tensor_parallel_size 8 × pipeline_parallel_size 2) within 600 s" in message
    assert "last seen: 8 GPUs on 1 node(s)" in message and "ray start --address=<head>:6379" in message
    with pytest.raises(ServerStartError, match="not found: Ray must be installed beside vLLM"):
        wait_for_ray_cluster(CONFIG, "python", None, lambda argv: CommandResult(False), clock.sleep, clock)
