"""xdist worker -> GPU (or CPU core) assignment: disjoint blocks, TP honoured, clear errors when it cannot fit.

The xdist environment is given explicitly (the variables pytest-xdist sets), plus one real ``-n 2`` run whose
workers report what they computed, so the parsing is checked against what xdist actually exports.
"""

from __future__ import annotations

import itertools
import json

import pytest

from servegate.devices import (
    CPU_BIND_VAR,
    DeviceError,
    Worker,
    assign,
    cpu_bind_env,
    cpu_cores,
    current_worker,
    server_env,
    visible_device_ids,
)

pytest_plugins = ["pytester"]


def xdist(index: int, count: int) -> dict[str, str]:
    return {"PYTEST_XDIST_WORKER": f"gw{index}", "PYTEST_XDIST_WORKER_COUNT": str(count)}


def test_worker_from_the_xdist_environment() -> None:
    assert current_worker({}) == Worker(0, 1)
    assert current_worker(xdist(3, 4)) == Worker(3, 4, "gw3")
    with pytest.raises(DeviceError, match="not of the form gw<N>"):
        current_worker({"PYTEST_XDIST_WORKER": "master", "PYTEST_XDIST_WORKER_COUNT": "2"})
    with pytest.raises(DeviceError, match="outside PYTEST_XDIST_WORKER_COUNT=2"):
        current_worker(xdist(2, 2))
    with pytest.raises(DeviceError, match="missing or not an integer"):
        current_worker({"PYTEST_XDIST_WORKER": "gw0"})


@pytest.mark.parametrize(
    ("workers", "tp", "devices"), [(1, 8, 8), (2, 4, 8), (4, 2, 8), (8, 1, 8), (3, 2, 8), (2, 1, 3)]
)
def test_blocks_are_disjoint_and_sized_by_tp(workers: int, tp: int, devices: int) -> None:
    ids = tuple(str(i) for i in range(devices))
    chosen = [assign(ids, Worker(k, workers, f"gw{k}"), tp, "amd").devices for k in range(workers)]
    assert all(len(c) == tp for c in chosen)
    flat = list(itertools.chain.from_iterable(chosen))
    assert len(flat) == len(set(flat)), f"workers share a device: {chosen}"


def test_different_tp_per_case_never_overlaps_another_worker() -> None:
    """A worker's cases may have TP 1, 2 or 4; with fixed blocks no TP of one worker reaches the next block."""
    ids = tuple(str(i) for i in range(8))
    for tp_a, tp_b in itertools.product((1, 2, 4), repeat=2):
        a = set(assign(ids, Worker(0, 2, "gw0"), tp_a, "amd").devices)
        b = set(assign(ids, Worker(1, 2, "gw1"), tp_b, "amd").devices)
        assert not a & b


def test_rocm_sets_hip_and_cuda_to_the_same_value_and_not_rocr() -> None:
    env = server_env("amd", 8, tensor_parallel_size=2, env=xdist(1, 4))
    assert env == {"HIP_VISIBLE_DEVICES": "2,3", "CUDA_VISIBLE_DEVICES": "2,3"}
    assert server_env("nvidia", 8, tensor_parallel_size=4, env=xdist(1, 2)) == {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}


def test_a_runner_restriction_is_split_not_overridden() -> None:
    env = {**xdist(1, 2), "HIP_VISIBLE_DEVICES": "4,5,6,7"}
    assert server_env("amd", 8, env=env)["HIP_VISIBLE_DEVICES"] == "6"
    # ROCR_VISIBLE_DEVICES renumbers what HIP sees from 0: split positions, keep ROCR as it is
    env = {**xdist(1, 2), "ROCR_VISIBLE_DEVICES": "4,5,6,7"}
    assert visible_device_ids("amd", 8, env) == ("0", "1", "2", "3")
    assert server_env("amd", 8, tensor_parallel_size=2, env=env)["HIP_VISIBLE_DEVICES"] == "2,3"
    assert "ROCR_VISIBLE_DEVICES" not in server_env("amd", 8, env=env)


def test_too_many_workers_for_the_devices_is_a_clear_error() -> None:
    with pytest.raises(DeviceError) as err:
        server_env("amd", 8, tensor_parallel_size=4, env=xdist(0, 4))
    msg = str(err.value)
    assert "pytest-xdist -n 4 × tensor_parallel_size 4 needs 16 GPUs but 8 are visible" in msg
    assert "use -n 2 or fewer" in msg
    with pytest.raises(DeviceError, match="cannot run this config"):
        server_env("nvidia", 2, tensor_parallel_size=4, env={})


def test_cpu_cores_split_per_worker() -> None:
    assert cpu_cores(Worker(0, 2, "gw0"), [0, 1, 2, 3]) == (0, 1)
    assert cpu_cores(Worker(1, 2, "gw1"), [0, 1, 2, 3]) == (2, 3)
    assert cpu_bind_env(Worker(1, 2, "gw1"), [0, 1]) == {CPU_BIND_VAR: "1"}
    assert cpu_bind_env(Worker(0, 2, "gw0"), [0, 1, 2, 5]) == {CPU_BIND_VAR: "0-1"}
    assert cpu_bind_env(Worker(0, 1), [0, 1]) == {}  # one process owns the machine: vLLM's default binding
    with pytest.raises(DeviceError, match="-n 3 on 2 CPU cores"):
        cpu_cores(Worker(0, 3, "gw0"), [0, 1])
    assert server_env("cpu", 1, env=xdist(1, 2), cpu_cores_available=[0, 1]) == {CPU_BIND_VAR: "1"}


def test_real_xdist_workers_get_disjoint_gpus(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import json, os, pytest
        from servegate.devices import server_env

        @pytest.mark.parametrize("i", range(4))
        def test_report(i, tmp_path_factory):
            env = server_env("amd", 8, tensor_parallel_size=2)
            out = tmp_path_factory.getbasetemp().parent.parent / f"{os.environ['PYTEST_XDIST_WORKER']}-{i}.json"
            out.write_text(json.dumps(env))
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "--basetemp", str(pytester.path / "t"))
    result.assert_outcomes(passed=4)
    seen: dict[str, str] = {}
    for path in pytester.path.glob("gw*-*.json"):
        seen.setdefault(path.name.split("-")[0], json.loads(path.read_text())["HIP_VISIBLE_DEVICES"])
    assert sorted(seen) == ["gw0", "gw1"], list(pytester.path.iterdir())
    assert seen["gw0"] == "0,1" and seen["gw1"] == "4,5"
