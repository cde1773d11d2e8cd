"""Energy per level from recorded amd-smi / nvidia-smi metric outputs (tests/data/hw/README.md: provenance)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from servegate.energy import energy_result, meter, power_per_tick
from servegate.hardware.detect import HardwareInfo
from servegate.hardware.telemetry import TelemetrySample, TelemetrySampler
from servegate.hardware.tools import CommandResult

HW = Path(__file__).parent / "data" / "hw"
MI300X = HardwareInfo("amd", "mi300x", "AMD Instinct MI300X", "gfx942", 8, 192.0, source="amd-smi")
H100 = HardwareInfo("nvidia", "h100", "NVIDIA H100 80GB HBM3", "9.0", 8, 80.0, source="nvidia-smi")
CPU = HardwareInfo("cpu", "cpu", "AMD EPYC", None, 1, 8.0, source="/proc/cpuinfo")


class Recorded:
    """Answers every metric command with a recorded file; counts the calls so a test can wait for ticks."""

    def __init__(self, name: str) -> None:
        self.text = (HW / name).read_text()
        self.calls = 0
        self.ticked = threading.Event()

    def __call__(self, argv, timeout_s: float = 15.0) -> CommandResult:
        self.calls += 1
        if self.calls >= 2:
            self.ticked.set()
        return CommandResult(True, 0, self.text, "")


def test_amd_smi_recording_gives_power_joules_and_tokens_per_joule() -> None:
    runner = Recorded("amd-smi-metric-mi300x-x8.json")
    sampler = TelemetrySampler(MI300X, period_s=0.05, runner=runner)
    with meter(MI300X, sampler) as power:
        assert runner.ticked.wait(30)
    result = power.result(output_tokens=10_000)
    assert result["status"] == "measured" and result["tool"] == "amd-smi" and result["devices"] == 8
    assert result["power_mean_w"] == 2 * 712 + 6 * 134  # the recording: two loaded GPUs, six idle; every tick alike
    assert result["power_peak_w"] >= result["power_mean_w"]
    assert result["energy_j"] == pytest.approx(result["power_mean_w"] * power.seconds)
    assert result["tokens_per_joule"] == pytest.approx(10_000 / result["energy_j"])
    assert result["joules_per_output_token"] == pytest.approx(1 / result["tokens_per_joule"])


def test_nvidia_recording_with_a_missing_reading_drops_that_tick_instead_of_counting_zero_watts() -> None:
    samples = [TelemetrySample(0.0, 0, 700.0), TelemetrySample(0.0, 1, None),
               TelemetrySample(1.0, 0, 690.0), TelemetrySample(1.0, 1, 650.0)]
    assert power_per_tick(samples) == [(1.0, 1340.0)]
    runner = Recorded("nvidia-smi-metric-h100.csv")  # GPU 1 prints [N/A] for power on every tick
    with meter(H100, TelemetrySampler(H100, period_s=0.05, runner=runner)) as power:
        assert runner.ticked.wait(30)
    assert power.result(100)["status"].startswith("not measured: nvidia-smi gave no power readings")


def test_cpu_is_not_measured_and_says_so() -> None:
    with meter(CPU) as power:
        pass
    result = power.result(1000)
    assert result == {"status": f"not measured: no GPU power meter on cpu ({CPU.describe()})"}


def test_no_tokens_no_per_token_figures() -> None:
    out = energy_result([TelemetrySample(0.0, 0, 500.0)], 2.0, 0, "amd-smi")
    assert out["energy_j"] == 1000.0 and "tokens_per_joule" not in out
