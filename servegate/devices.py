"""Which GPUs (or CPU cores) each pytest-xdist worker's servers may use, so ``-n N`` never shares a device.

pytest-xdist tells every worker its name (``PYTEST_XDIST_WORKER=gw0, gw1, …``) and the worker count
(``PYTEST_XDIST_WORKER_COUNT``). The visible devices are split into equal, fixed blocks, one per worker: worker *k*
owns devices ``[k·B, (k+1)·B)`` with ``B = devices // workers``, and a server with tensor-parallel size TP uses the
first TP devices of its worker's block. Fixed blocks (rather than "the next TP free ones") mean no coordination
between workers is needed and two workers can never overlap, whatever TP each of their cases uses. A case whose TP
does not fit in its worker's block is an error before any server starts: ``workers × TP`` must not exceed the
visible devices.

Which variable:

* ROCm: ``HIP_VISIBLE_DEVICES`` is what vLLM's ROCm platform reads, and it copies it into ``CUDA_VISIBLE_DEVICES``
  (which torch on ROCm also honours) — we set both to the same value so they can never disagree. We do **not** set
  ``ROCR_VISIBLE_DEVICES``: it acts below HIP (HIP indices are positions within the ROCR-visible set) and Ray
  refuses to start when it is set. If the runner already restricts devices with ``ROCR_VISIBLE_DEVICES`` (e.g. a
  CI runner that owns GPUs 4–7), the ids we hand out are positions 0..n-1 inside that set, which is exactly how
  HIP interprets ``HIP_VISIBLE_DEVICES``.
* CUDA: ``CUDA_VISIBLE_DEVICES``.
* Already-set ``HIP_VISIBLE_DEVICES`` / ``CUDA_VISIBLE_DEVICES`` (say ``2,3,6,7``) are respected: workers split
  that list, not ``range(count)``.
* CPU: optionally a disjoint core range per worker for ``VLLM_CPU_OMP_THREADS_BIND``. Caveat: on a small machine
  (2 cores here) two workers' servers and clients still share memory bandwidth, caches and the cores running the
  load clients, so timings under ``-n`` measure contention; use ``-n`` on the CPU to check the plumbing, not to
  produce baselines.

Docker servers get the whole ``/dev/kfd`` + ``/dev/dri`` passthrough; the same environment variables, passed into
the container, restrict HIP inside it to the worker's devices.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

ROCM_VARS = ("HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")
CUDA_VARS = ("CUDA_VISIBLE_DEVICES",)
CPU_BIND_VAR = "VLLM_CPU_OMP_THREADS_BIND"
_WORKER = re.compile(r"^gw(\d+)$")


class DeviceError(RuntimeError):
    """The requested parallelism does not fit the visible devices; the message says what to change."""


@dataclass(frozen=True)
class Worker:
    """This process's place among the xdist workers: index 0 of 1 when not running under xdist."""

    index: int
    count: int
    name: str = "main"

    @property
    def is_xdist(self) -> bool:
        return self.name != "main"


@dataclass(frozen=True)
class Assignment:
    """The devices one server of one worker may use, and the environment that restricts it to them."""

    worker: Worker
    devices: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for the progress output: which worker got which devices."""
        shown = ", ".join(f"{k}={v}" for k, v in self.env.items()) or "no restriction"
        return f"worker {self.worker.name} ({self.worker.index + 1}/{self.worker.count}): {shown}"


def current_worker(env: Mapping[str, str] | None = None) -> Worker:
    """The xdist worker from ``PYTEST_XDIST_WORKER`` / ``PYTEST_XDIST_WORKER_COUNT``; (0, 1) outside xdist."""
    env = os.environ if env is None else env
    name = env.get("PYTEST_XDIST_WORKER")
    if not name:
        return Worker(0, 1)
    m = _WORKER.match(name)
    if m is None:
        raise DeviceError(f"PYTEST_XDIST_WORKER={name!r} is not of the form gw<N>; cannot assign devices")
    try:
        count = int(env.get("PYTEST_XDIST_WORKER_COUNT", ""))
    except ValueError:
        raise DeviceError(f"{name}: PYTEST_XDIST_WORKER_COUNT is missing or not an integer") from None
    index = int(m.group(1))
    if count < 1 or index >= count:
        raise DeviceError(f"{name}: worker index {index} outside PYTEST_XDIST_WORKER_COUNT={count}")
    return Worker(index, count, name)


def visible_device_ids(vendor: str, count: int, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The device ids this process may hand out: an existing HIP/CUDA_VISIBLE_DEVICES list, else 0..count-1.

    For ROCm, ``HIP_VISIBLE_DEVICES`` wins over ``CUDA_VISIBLE_DEVICES`` (as in vLLM). ``ROCR_VISIBLE_DEVICES``
    only shrinks the set that HIP numbers from 0, so with it set the ids are positions 0..len-1 of its list.
    """
    env = os.environ if env is None else env
    names = ROCM_VARS if vendor == "amd" else CUDA_VARS
    for name in names:
        value = env.get(name)
        if value is not None and value.strip():
            return tuple(part.strip() for part in value.split(",") if part.strip())
    if vendor == "amd" and env.get("ROCR_VISIBLE_DEVICES", "").strip():
        count = len([p for p in env["ROCR_VISIBLE_DEVICES"].split(",") if p.strip()])
    return tuple(str(i) for i in range(count))


def assign(devices: Sequence[str], worker: Worker, tensor_parallel_size: int, vendor: str) -> Assignment:
    """The first ``tensor_parallel_size`` devices of the worker's fixed block, and the env that selects them.

    Raises DeviceError when ``worker.count × tensor_parallel_size`` exceeds the visible devices, naming both
    numbers and the largest ``-n`` that fits.
    """
    if tensor_parallel_size < 1:
        raise DeviceError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
    n = len(devices)
    if worker.count * tensor_parallel_size > n:
        fits = n // tensor_parallel_size
        where = f"pytest-xdist -n {worker.count}" if worker.is_xdist or worker.count > 1 else "one server"
        hint = f"use -n {fits} or fewer" if fits >= 1 else "this machine cannot run this config"
        raise DeviceError(
            f"{where} × tensor_parallel_size {tensor_parallel_size} needs {worker.count * tensor_parallel_size} "
            f"GPUs but {n} are visible ({', '.join(devices) or 'none'}); {hint}"
        )
    block = n // worker.count
    start = worker.index * block
    chosen = tuple(devices[start : start + tensor_parallel_size])
    value = ",".join(chosen)
    names = ROCM_VARS if vendor == "amd" else CUDA_VARS
    return Assignment(worker, chosen, {name: value for name in names})


def cpu_cores(worker: Worker, cores: Sequence[int] | None = None) -> tuple[int, ...]:
    """A disjoint, contiguous share of this process's CPU cores for the worker (at least one core each).

    Raises DeviceError when there are more workers than cores: two OpenMP engines bound to one core would
    serialize each other and every timing would be meaningless.
    """
    available = sorted(cores if cores is not None else os.sched_getaffinity(0))
    if worker.count > len(available):
        raise DeviceError(
            f"pytest-xdist -n {worker.count} on {len(available)} CPU cores: each worker's vLLM needs a core "
            f"of its own; use -n {len(available)} or fewer"
        )
    block = len(available) // worker.count
    return tuple(available[worker.index * block : (worker.index + 1) * block])


def cpu_bind_env(worker: Worker, cores: Sequence[int] | None = None) -> dict[str, str]:
    """``VLLM_CPU_OMP_THREADS_BIND`` for the worker's cores (empty outside xdist: vLLM's own default is best)."""
    if worker.count == 1:
        return {}
    return {CPU_BIND_VAR: _ranges(cpu_cores(worker, cores))}


def _ranges(cores: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"`` (the list syntax vLLM's CPU backend and taskset accept)."""
    out: list[str] = []
    run: list[int] = []
    for c in sorted(cores):
        if run and c != run[-1] + 1:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(c)
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def server_env(
    vendor: str,
    device_count: int,
    tensor_parallel_size: int = 1,
    env: Mapping[str, str] | None = None,
    cpu_cores_available: Sequence[int] | None = None,
) -> dict[str, str]:
    """The environment overlay for one server started by this worker: GPU ids on AMD/NVIDIA, a core range on
    the CPU under xdist, nothing to add when a single process owns the whole machine and nothing is set.

    ``vendor`` is ``HardwareInfo.vendor`` (``amd``, ``nvidia``, ``cpu``) and ``device_count`` its ``count``.
    """
    env = os.environ if env is None else env
    worker = current_worker(env)
    if vendor not in ("amd", "nvidia"):
        return cpu_bind_env(worker, cpu_cores_available)
    devices = visible_device_ids(vendor, device_count, env)
    return assign(devices, worker, tensor_parallel_size, vendor).env
