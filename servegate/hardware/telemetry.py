"""What the hardware does while a server is measured: power, utilization and VRAM, sampled on a thread.

The tool asked is the one detection used (amd-smi, rocm-smi, nvidia-smi); on the CPU, whole-machine utilization from
/proc/stat. The metric parsers are pure, so recorded outputs test the GPU paths without a GPU.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servegate.hardware.detect import HardwareInfo
from servegate.hardware.tools import CommandRunner, gib, gpu_records, number, parse_json, read_text, run_command, why


@dataclass(frozen=True)
class TelemetrySample:
    """One reading of one device; a field is None when the tool did not report it."""

    t_s: float  # seconds since the sampler started
    device: int  # GPU index; -1 for the CPU as a whole
    power_w: float | None = None
    util_pct: float | None = None
    vram_used_gb: float | None = None


def parse_amd_smi_metric(text: str) -> list[tuple[int, float | None, float | None, float | None]]:
    """``amd-smi metric --power --usage --mem-usage --json`` -> (gpu, power W, gfx util %, VRAM used GiB) rows."""
    rows = []
    for i, rec in enumerate(gpu_records(parse_json(text))):
        power = rec.get("power") if isinstance(rec.get("power"), Mapping) else {}
        usage = rec.get("usage") if isinstance(rec.get("usage"), Mapping) else {}
        mem = rec.get("mem_usage") if isinstance(rec.get("mem_usage"), Mapping) else {}
        watts = number(power.get("socket_power", power.get("average_socket_power", power.get("current_socket_power"))))
        util = number(usage.get("gfx_activity"))
        used = gib(mem.get("used_vram"))
        rows.append((int(number(rec.get("gpu")) or i), watts, util, used))
    return rows


def parse_rocm_smi_metric(text: str) -> list[tuple[int, float | None, float | None, float | None]]:
    """``rocm-smi --showpower --showuse --showmeminfo vram --json``; MI300 prints socket power, older GPUs average."""
    doc = parse_json(text)
    rows = []
    if not isinstance(doc, Mapping):
        return rows
    for key, card in doc.items():
        match = re.fullmatch(r"card(\d+)", str(key))
        if not match or not isinstance(card, Mapping):
            continue
        watts = number(card.get("Current Socket Graphics Package Power (W)"))
        if watts is None:
            watts = number(card.get("Average Graphics Package Power (W)"))
        used = number(card.get("VRAM Total Used Memory (B)"))
        rows.append((int(match.group(1)), watts, number(card.get("GPU use (%)")), used / 1024**3 if used else None))
    return rows


NVIDIA_METRIC_QUERY = "index,power.draw,utilization.gpu,memory.used"


def parse_nvidia_smi_metric(text: str) -> list[tuple[int, float | None, float | None, float | None]]:
    """``nvidia-smi --query-gpu=index,power.draw,utilization.gpu,memory.used --format=csv,noheader,nounits``."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 4 or not cells[0].isdigit():
            continue
        used = number(cells[3])
        rows.append((int(cells[0]), number(cells[1]), number(cells[2]), used / 1024 if used is not None else None))
    return rows


def parse_proc_stat(text: str) -> tuple[int, int] | None:
    """(busy, total) jiffies from the first line of /proc/stat; CPU utilization is the ratio of two deltas."""
    match = re.match(r"cpu\s+([\d\s]+)", text)
    if not match:
        return None
    values = [int(v) for v in match.group(1).split()]
    if len(values) < 4:
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


_METRIC_COMMANDS: dict[str, tuple[tuple[str, ...], Callable[[str], list]]] = {
    "amd-smi": (("amd-smi", "metric", "--power", "--usage", "--mem-usage", "--json"), parse_amd_smi_metric),
    "rocm-smi": (("rocm-smi", "--showpower", "--showuse", "--showmeminfo", "vram", "--json"), parse_rocm_smi_metric),
    "nvidia-smi": (
        ("nvidia-smi", f"--query-gpu={NVIDIA_METRIC_QUERY}", "--format=csv,noheader,nounits"),
        parse_nvidia_smi_metric,
    ),
}


class TelemetrySampler:
    """Samples power, utilization and VRAM every ``period_s`` on a background thread while a server is measured.

    Use as a context manager (``with TelemetrySampler(hw) as t: ...``; then ``t.samples``). On the CPU it records
    whole-machine CPU utilization from /proc/stat. Any failure of a tool — missing, non-zero exit, garbage — is kept
    in ``errors`` and the next tick tries again; nothing here raises into the benchmark.
    """

    def __init__(
        self,
        hardware: HardwareInfo | None = None,
        period_s: float = 1.0,
        runner: CommandRunner = run_command,
        proc_stat: Callable[[], str] | None = None,
        max_errors: int = 20,
    ) -> None:
        self.hardware = hardware
        self.period_s = period_s
        self.runner = runner
        self.proc_stat = proc_stat or (lambda: read_text(Path("/proc/stat")))
        self.max_errors = max_errors
        self.samples: list[TelemetrySample] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._last_stat: tuple[int, int] | None = None

    @property
    def tool(self) -> str | None:
        """The tool this sampler asks: the one detection used; None means CPU (/proc/stat)."""
        if self.hardware is None or self.hardware.vendor == "cpu":
            return None
        return self.hardware.source if self.hardware.source in _METRIC_COMMANDS else None

    def sample_once(self) -> list[TelemetrySample]:
        """One reading of every device (also what the thread calls). Never raises."""
        t = time.monotonic() - self._t0
        try:
            if self.tool is None:
                return self._cpu_sample(t)
            argv, parse = _METRIC_COMMANDS[self.tool]
            result = self.runner(argv)
            if not result.ok:
                self._error(why(self.tool, result))
                return []
            rows = parse(result.stdout)
            if not rows:
                self._error(f"{self.tool}: no readings in output: {result.stdout[:80]!r}")
            return [TelemetrySample(t, dev, w, u, v) for dev, w, u, v in rows]
        except Exception as exc:  # a telemetry bug must never end a benchmark
            self._error(f"{type(exc).__name__}: {exc}")
            return []

    def _cpu_sample(self, t: float) -> list[TelemetrySample]:
        stat = parse_proc_stat(self.proc_stat())
        if stat is None:
            return []
        previous, self._last_stat = self._last_stat, stat
        if previous is None or stat[1] <= previous[1]:
            return []
        util = 100.0 * (stat[0] - previous[0]) / (stat[1] - previous[1])
        return [TelemetrySample(t, -1, None, round(util, 2), None)]

    def _error(self, message: str) -> None:
        if len(self.errors) < self.max_errors:
            self.errors.append(message)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.extend(self.sample_once())
            self._stop.wait(self.period_s)

    def start(self) -> TelemetrySampler:
        if self._thread is not None:
            return self
        self._t0 = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="servegate-telemetry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[TelemetrySample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.period_s * 2))
            self._thread = None
        return self.samples

    def __enter__(self) -> TelemetrySampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def summary(self) -> dict[str, Any]:
        """Mean and max per metric over all samples (power summed over devices per tick would double-count time)."""
        out: dict[str, Any] = {"samples": len(self.samples), "errors": len(self.errors), "tool": self.tool or "cpu"}
        for name in ("power_w", "util_pct", "vram_used_gb"):
            values = [v for s in self.samples if (v := getattr(s, name)) is not None]
            if values:
                out[f"{name}_mean"] = sum(values) / len(values)
                out[f"{name}_max"] = max(values)
        return out


@contextlib.contextmanager
def telemetry(hardware: HardwareInfo | None = None, period_s: float = 1.0) -> Iterator[TelemetrySampler]:
    """``with telemetry(hw) as t:`` — a sampler that is stopped on every exit path."""
    sampler = TelemetrySampler(hardware, period_s)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()
