"""What each target GPU is called and what it can do on paper: the pytest hardware markers, their labels and the
data-sheet figures the roofline floors come from. Pure data and name matching; nothing here runs a tool."""

from __future__ import annotations

import re
from dataclasses import dataclass

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


# One row per part, as the data sheets read.
# fmt: off
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
# fmt: on


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
