"""Hardware detection, markers, specs and telemetry, on recorded tool outputs (provenance: tests/data/hw/README.md)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from servegate.hardware import detect as detection
from servegate.hardware import specs, telemetry
from servegate.hardware.detect import HardwareInfo
from servegate.hardware.tools import CommandResult

DATA = Path(__file__).parent / "data" / "hw"


def read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


class FakeTools:
    """A runner answering from recorded files; tools not listed are 'not installed'. Records every call."""

    def __init__(self, outputs: dict[str, CommandResult | str]) -> None:
        self.outputs = outputs
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        self.calls.append(tuple(argv))
        key = " ".join(argv[:2]) if " ".join(argv[:2]) in self.outputs else argv[0]
        out = self.outputs.get(key)
        if out is None:
            return CommandResult(False)
        return out if isinstance(out, CommandResult) else CommandResult(True, 0, out, "")


def fake_root(tmp_path: Path, rocm_version: str | None = None) -> Path:
    """A root directory with this machine's recorded /proc files (and optionally /opt/rocm/.info/version)."""
    (tmp_path / "proc").mkdir()
    shutil.copy(DATA / "cpuinfo-this-machine.txt", tmp_path / "proc" / "cpuinfo")
    shutil.copy(DATA / "meminfo-this-machine.txt", tmp_path / "proc" / "meminfo")
    if rocm_version:
        (tmp_path / "opt/rocm/.info").mkdir(parents=True)
        shutil.copy(DATA / rocm_version, tmp_path / "opt/rocm/.info/version")
    return tmp_path


# -- markers and specs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "marker"),
    [
        ("AMD Instinct MI300X", "mi300x"),
        ("AMD Instinct MI300X OAM", "mi300x"),
        ("AMD Instinct MI325X", "mi325x"),
        ("AMD Instinct MI355X", "mi355x"),
        ("AMD Instinct MI350X", "mi350x"),
        ("AMD Instinct MI300A", None),  # the APU is not an MI300X
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA H100 PCIe", "h100"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA GH200 480GB", None),  # must not read as H200
        ("NVIDIA B200", "b200"),
        ("NVIDIA A100-SXM4-80GB", "a100"),
        ("NVIDIA GeForce RTX 4090", None),
    ],
)
def test_marker_for_name(name: str, marker: str | None) -> None:
    assert specs.marker_for_name(name) == marker


def test_device_id_is_the_fallback_when_the_name_is_missing() -> None:
    assert specs.marker_for_name("N/A", "0x74A1") == "mi300x"
    assert specs.marker_for_name(None, "0x1234") is None


def test_every_spec_is_a_known_marker_and_the_seed_figures_match() -> None:
    assert set(specs.SPECS) <= set(specs.KNOWN_MARKERS)
    # seed 000: "192GB HBM3", "5.3 TB/s"; seed 003 Table 1: 256 GB, 6.0 TB/s, 1,307 TFLOPS FP16; seeds 000/004: 288 GB
    assert (specs.SPECS["mi300x"].hbm_gb, specs.SPECS["mi300x"].hbm_tbps) == (192, 5.3)
    assert (specs.SPECS["mi325x"].hbm_gb, specs.SPECS["mi325x"].hbm_tbps) == (256, 6.0)
    assert round(specs.SPECS["mi325x"].fp16_tflops) == 1307
    assert specs.SPECS["mi350x"].hbm_gb == specs.SPECS["mi355x"].hbm_gb == 288
    for spec in specs.SPECS.values():  # FP8 doubles dense BF16 where the sheet gives it
        if spec.fp8_tflops:
            assert spec.fp8_tflops == pytest.approx(2 * spec.bf16_tflops, rel=0.01)
    # seed 000's roofline: 144 GB of weights / 5.3 TB/s ~ 27 ms per token
    assert 144 / (specs.SPECS["mi300x"].hbm_tbps * 1000) * 1000 == pytest.approx(27, abs=0.5)


# -- parsers -------------------------------------------------------------------------------------------------------


def test_amd_smi_static_new_shape() -> None:
    devices = detection.parse_amd_smi_static(read("amd-smi-static-mi300x-x8.json"))
    assert [d.index for d in devices] == list(range(8))
    assert {d.name for d in devices} == {"AMD Instinct MI300X"}
    assert devices[0].arch == "gfx942" and devices[0].driver == "6.16.6"
    assert devices[0].memory_gb == pytest.approx(196592 / 1024)


def test_amd_smi_static_list_shape_of_older_rocm() -> None:
    devices = detection.parse_amd_smi_static(read("amd-smi-static-mi325x-x8-list-shape.json"))
    assert len(devices) == 8
    assert devices[3].driver == "6.10.5"
    assert round(devices[0].memory_gb) == 256


def test_rocm_smi_static() -> None:
    devices = detection.parse_rocm_smi(read("rocm-smi-static-mi300x-x8.json"))
    assert len(devices) == 8  # the "system" key is not a card
    assert devices[0].memory_gb == pytest.approx(206141652992 / 1024**3)
    assert devices[0].driver == "6.7.0" and devices[0].arch == "gfx942"
    assert specs.marker_for_name(devices[0].name, devices[0].device_id) == "mi300x"


def test_nvidia_smi_query_and_banner() -> None:
    devices = detection.parse_nvidia_smi(read("nvidia-smi-query-h100-x8.csv"))
    assert len(devices) == 8
    assert devices[7].index == 7 and devices[0].arch == "sm_90"
    assert devices[0].memory_gb == pytest.approx(81559 / 1024)
    assert detection.parse_cuda_version(read("nvidia-smi-banner-h100.txt")) == "12.4"


def test_rocm_version_from_both_sources() -> None:
    assert detection.parse_rocm_version(read("amd-smi-version-rocm-7.2.txt")) == "7.2.0"
    assert detection.parse_rocm_version(read("opt-rocm-info-version-6.4.2.txt")) == "6.4.2"


@pytest.mark.parametrize("text", ["", "not json", "[]", "{}", "null", "3", "{\"gpu_data\": 5}"])
def test_garbage_is_no_devices_not_an_exception(text: str) -> None:
    assert detection.parse_amd_smi_static(text) == []
    assert detection.parse_rocm_smi(text) == []
    assert detection.parse_nvidia_smi(text) == []
    assert telemetry.parse_amd_smi_metric(text) == []


def test_cpuinfo_recorded_on_this_machine() -> None:
    name, cores = detection.parse_cpuinfo(read("cpuinfo-this-machine.txt"))
    assert name == "AMD EPYC"
    assert cores == read("cpuinfo-this-machine.txt").count("processor\t:")
    assert detection.parse_cpuinfo("processor : 0\nHardware : Neoverse-N1\n") == ("Neoverse-N1", 1)


# -- detect() --------------------------------------------------------------------------------------------------------


def test_detect_mi300x_via_amd_smi(tmp_path: Path) -> None:
    tools = FakeTools({"amd-smi static": read("amd-smi-static-mi300x-x8.json"),
                       "amd-smi version": read("amd-smi-version-rocm-7.2.txt")})
    info = detection.detect(tools, fake_root(tmp_path, "opt-rocm-info-version-6.4.2.txt"))
    assert (info.vendor, info.marker, info.count, info.arch) == ("amd", "mi300x", 8, "gfx942")
    assert info.hardware_id == "mi300x-x8"
    assert info.rocm_version == "7.2.0"  # amd-smi's answer wins over the file
    assert info.source == "amd-smi"
    assert not any(c[0] == "nvidia-smi" for c in tools.calls)  # first answer wins, no further probing


def test_detect_falls_back_to_rocm_smi_when_amd_smi_fails(tmp_path: Path) -> None:
    tools = FakeTools({"amd-smi": CommandResult(True, 1, read("amd-smi-truncated-garbage.txt"), "init failed"),
                       "rocm-smi": read("rocm-smi-static-mi300x-x8.json")})
    info = detection.detect(tools, fake_root(tmp_path, "opt-rocm-info-version-6.4.2.txt"))
    assert (info.marker, info.source, info.rocm_version) == ("mi300x", "rocm-smi", "6.4.2")
    assert any("amd-smi failed (exit 1" in n for n in info.notes)


def test_detect_h100_via_nvidia_smi(tmp_path: Path) -> None:
    tools = FakeTools({"nvidia-smi --query-gpu=" + detection.NVIDIA_QUERY: read("nvidia-smi-query-h100-x8.csv"),
                       "nvidia-smi": read("nvidia-smi-banner-h100.txt")})
    info = detection.detect(tools, fake_root(tmp_path))
    assert (info.vendor, info.marker, info.hardware_id, info.cuda_version) == ("nvidia", "h100", "h100-x8", "12.4")
    assert info.fingerprint()["arch"] == "sm_90"


def test_detect_unknown_nvidia_gpu_gets_no_marker_but_a_stable_id(tmp_path: Path) -> None:
    tools = FakeTools({"nvidia-smi --query-gpu=" + detection.NVIDIA_QUERY: read("nvidia-smi-query-gh200-x1.csv")})
    info = detection.detect(tools, fake_root(tmp_path))
    assert info.marker is None
    assert info.hardware_id == "nvidia-nvidia-gh200-480gb-x1"


def test_detect_cpu_with_no_tools_installed(tmp_path: Path) -> None:
    info = detection.detect(FakeTools({}), fake_root(tmp_path))
    assert (info.vendor, info.marker, info.name) == ("cpu", "cpu", "AMD EPYC")
    assert info.hardware_id == f"cpu-amd-epyc-{info.cpu_cores}c"
    assert info.notes == ("amd-smi not installed", "rocm-smi not installed", "nvidia-smi not installed")


def test_detect_on_this_machine_never_raises() -> None:
    info = detection.detect()
    assert info.marker in specs.KNOWN_MARKERS or info.marker is None
    assert info.hardware_id


# -- skip reasons ------------------------------------------------------------------------------------------------------


def test_skip_reason_on_a_cpu_host_names_what_was_found_and_how(tmp_path: Path) -> None:
    info = detection.detect(FakeTools({}), fake_root(tmp_path))
    reason = detection.skip_reason_for("mi300x", info)
    assert reason is not None and "\n" not in reason
    assert reason.startswith("no MI300X found: detected CPU (AMD EPYC, ")
    assert "via /proc/cpuinfo; amd-smi, rocm-smi and nvidia-smi not installed" in reason
    assert detection.skip_reason_for("cpu", info) is None


def test_skip_reason_between_gpus(tmp_path: Path) -> None:
    tools = FakeTools({"amd-smi static": read("amd-smi-static-mi300x-x8.json")})
    info = detection.detect(tools, fake_root(tmp_path))
    assert detection.skip_reason_for("mi300x", info) is None
    reason = detection.skip_reason_for("mi355x", info)
    assert reason == "no MI355X found: detected 8x AMD Instinct MI300X (gfx942, 192 GB) via amd-smi"
    assert "unknown hardware marker" in (detection.skip_reason_for("tpu", info) or "")


# -- telemetry ---------------------------------------------------------------------------------------------------------


def gpu_info(source: str) -> HardwareInfo:
    return HardwareInfo("amd", "mi300x", "AMD Instinct MI300X", "gfx942", 8, 192.0, source=source)


def test_amd_smi_metric_parse() -> None:
    rows = telemetry.parse_amd_smi_metric(read("amd-smi-metric-mi300x-x8.json"))
    assert len(rows) == 8
    gpu, watts, util, used = rows[0]
    assert (gpu, watts, util) == (0, 712.0, 100.0)
    assert used == pytest.approx(183100 / 1024)
    assert rows[5][2] == 0.0


def test_rocm_smi_and_nvidia_metric_parse() -> None:
    rocm = telemetry.parse_rocm_smi_metric(read("rocm-smi-metric-mi300x-x8.json"))
    assert rocm[0][1] == 705.0 and rocm[0][2] == 100.0 and rocm[1][1] == 131.0
    nv = telemetry.parse_nvidia_smi_metric(read("nvidia-smi-metric-h100.csv"))
    assert nv[0] == (0, 512.37, 97.0, pytest.approx(74512 / 1024))
    assert nv[1][1] is None  # "[N/A]" is missing, not zero


def wait_until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Poll for an event of the sampler's thread: on a busy machine a fixed sleep may end before it ran once."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the sampler thread did not get there"
        time.sleep(0.01)


def test_sampler_collects_from_the_detected_tool() -> None:
    tools = FakeTools({"amd-smi metric": read("amd-smi-metric-mi300x-x8.json")})
    with telemetry.TelemetrySampler(gpu_info("amd-smi"), period_s=0.01, runner=tools) as sampler:
        deadline = time.monotonic() + 5
        while len(sampler.samples) < 16 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(sampler.samples) >= 16 and not sampler.errors
    assert all(c[:2] == ("amd-smi", "metric") for c in tools.calls)
    summary = sampler.summary()
    assert summary["power_w_max"] == 712.0 and summary["tool"] == "amd-smi"
    assert 134.0 < summary["power_w_mean"] < 712.0


@pytest.mark.parametrize(
    "answer",
    [CommandResult(False), CommandResult(True, 2, "", "boom"), CommandResult(True, 0, "garbage{", ""),
     CommandResult(True, 0, read("amd-smi-truncated-garbage.txt"), "")],
)
def test_sampler_survives_missing_or_broken_tools(answer: CommandResult) -> None:
    sampler = telemetry.TelemetrySampler(gpu_info("amd-smi"), period_s=0.01, runner=lambda argv: answer)
    with sampler:
        wait_until(lambda: len(sampler.errors) >= 3)
    assert sampler.samples == []
    assert sampler.errors  # kept for the report, not raised
    assert sampler._thread is None  # stopped


def test_sampler_survives_a_runner_that_raises() -> None:
    def explode(argv: Sequence[str]) -> CommandResult:
        raise RuntimeError("driver hung")

    sampler = telemetry.TelemetrySampler(gpu_info("rocm-smi"), period_s=0.01, runner=explode)
    with sampler:
        wait_until(lambda: bool(sampler.errors))
    assert "RuntimeError: driver hung" in sampler.errors[0]
    assert threading.active_count() >= 1


def test_cpu_sampler_reads_proc_stat_deltas() -> None:
    first = read("proc-stat-this-machine.txt")
    busy, total = telemetry.parse_proc_stat(first)
    values = [int(v) for v in first.split()[1:]]
    values[0] += 300  # 300 jiffies user
    values[3] += 100  # 100 jiffies idle
    second = "cpu  " + " ".join(map(str, values))
    texts = iter([first, second])
    sampler = telemetry.TelemetrySampler(None, proc_stat=lambda: next(texts))
    assert sampler.sample_once() == []  # a rate needs two readings
    (sample,) = sampler.sample_once()
    assert sample.device == -1 and sample.power_w is None
    assert sample.util_pct == pytest.approx(75.0)
    assert telemetry.parse_proc_stat("garbage") is None and busy <= total
