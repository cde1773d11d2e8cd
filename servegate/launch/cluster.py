"""Multi-node servers: vLLM over a Ray cluster (tensor parallel × pipeline parallel across nodes).

vLLM's own multi-node path: ``ray start --head`` on one node, ``ray start --address=<head>:6379`` on the others,
then ``vllm serve ... --tensor-parallel-size T --pipeline-parallel-size P --distributed-executor-backend ray`` on
the head. If vLLM starts before every worker has joined it waits for a placement group and times out much later
with a message about resources; so the launcher first waits until ``ray status`` shows the T × P GPUs the config
needs, says how many it sees while waiting, and records every node of the cluster in the start's facts (and so in
the results and the history).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from servegate.config import ServerConfig
from servegate.hardware.tools import CommandResult, CommandRunner, run_command
from servegate.launch.base import ServerStartError

CLUSTER_POLL_S = 5.0

_NODE = re.compile(r"^\s*\d+\s+(node_[0-9a-f]+)\s*$")
_RESOURCE = re.compile(r"^\s*([\d.]+)\s*/\s*([\d.]+)\s+(CPU|GPU)\b")


@dataclass(frozen=True)
class RayCluster:
    """What ``ray status`` says: the active nodes and the cluster's total CPUs and GPUs."""

    nodes: tuple[str, ...]
    gpus: float
    cpus: float

    def node_facts(self) -> list[dict[str, object]]:
        """The nodes as start facts (``cluster_nodes``), one entry per node."""
        return [{"node_id": node, "address": None, "resources": {}} for node in self.nodes]


def parse_ray_status(text: str) -> RayCluster:
    """Parse ``ray status`` (Ray's autoscaler summary). Raises ValueError when ``text`` is not one."""
    if "Node status" not in text or "Resources" not in text:
        raise ValueError(f"not `ray status` output: {text.strip()[:200]!r}")
    nodes: list[str] = []
    totals = {"CPU": 0.0, "GPU": 0.0}
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.endswith(":") and not stripped.startswith("("):
            section = stripped[:-1]
            continue
        if section == "Active" and (match := _NODE.match(line)):
            nodes.append(match[1])
        elif section == "Usage" and (match := _RESOURCE.match(line)):
            totals[match[3]] = float(match[2])
    return RayCluster(tuple(nodes), totals["GPU"], totals["CPU"])


def ray_command(python: str, address: str) -> list[str]:
    """``ray status`` of the Ray installed beside vLLM's interpreter (the console script in the same bin dir)."""
    beside = Path(python).parent / "ray"
    return [str(beside) if beside.exists() else "ray", "status", "--address", address]


def wait_for_ray_cluster(
    config: ServerConfig,
    python: str,
    on_progress: Callable[[str], None] | None = None,
    run: CommandRunner = run_command,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RayCluster:
    """Poll ``ray status`` until the cluster has the config's T × P GPUs; raise ServerStartError with what was
    seen at the deadline (``startup_timeout_s``)."""
    needed = config.tensor_parallel_size * config.pipeline_parallel_size
    address = config.ray_address or "auto"
    argv = ray_command(python, address)
    start = clock()
    seen = "nothing"
    while True:
        result: CommandResult = run(argv)
        if not result.found:
            raise ServerStartError(f"{config.id}: `{argv[0]}` not found: Ray must be installed beside vLLM")
        if result.ok:
            try:
                cluster = parse_ray_status(result.stdout)
            except ValueError as exc:
                raise ServerStartError(f"{config.id}: {' '.join(argv)}: {exc}") from exc
            if cluster.gpus >= needed:
                return cluster
            seen = f"{cluster.gpus:g} GPUs on {len(cluster.nodes)} node(s)"
        else:
            seen = f"`{' '.join(argv)}` failed ({result.returncode}): {result.stderr.strip()[-300:]}"
        elapsed = clock() - start
        if elapsed > config.startup_timeout_s:
            raise ServerStartError(
                f"{config.id}: the Ray cluster at {address} did not reach {needed} GPUs "
                f"(tensor_parallel_size {config.tensor_parallel_size} × pipeline_parallel_size "
                f"{config.pipeline_parallel_size}) within {config.startup_timeout_s:.0f} s; last seen: {seen}. "
                "Start the workers with `ray start --address=<head>:6379`."
            )
        if on_progress is not None:
            on_progress(f"{config.id}: waiting for the Ray cluster: {seen}, need {needed} GPUs ({elapsed:.0f} s)")
        sleep(CLUSTER_POLL_S)


def cluster_env(config: ServerConfig) -> dict[str, str]:
    """The environment vLLM needs to join the cluster rather than start a Ray of its own."""
    return {"RAY_ADDRESS": config.ray_address} if config.ray_address else {}


def uses_ray(config: ServerConfig) -> bool:
    return config.distributed_executor_backend == "ray"

