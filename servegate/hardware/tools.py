"""Running the vendor tools and reading what they print, shared by detection and telemetry.

A missing tool, a non-zero exit or garbage output is a value (``CommandResult``, a ``why`` note, ``None``), never an
exception: detection and telemetry must not be the reason a benchmark run dies. The readers accept every shape the
tools' versions print (numbers with or without units, JSON after warning lines, amd-smi's list or ``gpu_data``).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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


CommandRunner = Callable[[Sequence[str]], CommandResult]


def run_command(argv: Sequence[str], timeout_s: float = 15.0) -> CommandResult:
    """The default runner: never raises; a hung tool counts as a failure after ``timeout_s``."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return CommandResult(False)
    except (subprocess.TimeoutExpired, OSError) as exc:
        return CommandResult(True, -1, "", f"{type(exc).__name__}: {exc}")
    return CommandResult(True, proc.returncode, proc.stdout, proc.stderr)


def number(value: Any) -> float | None:
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


_TO_GIB = {
    "b": 1 / 1024**3,
    "kb": 1 / 1024**2,
    "kib": 1 / 1024**2,
    "mb": 1 / 1024,
    "mib": 1 / 1024,
    "gb": 1.0,
    "gib": 1.0,
}


def gib(value: Any, default_unit: str = "MB") -> float | None:
    """Memory in GiB. amd-smi's "MB" are MiB (an MI300X reports 196592 MB = 192 GiB)."""
    amount = number(value)
    if amount is None:
        return None
    return amount * _TO_GIB.get((_unit(value) or default_unit).lower(), 1 / 1024)


def parse_json(text: str) -> Any:
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


def gpu_records(doc: Any) -> list[Mapping[str, Any]]:
    """amd-smi's per-GPU list: a bare list (ROCm 6.0-6.3) or ``{"gpu_data": [...]}`` (ROCm 6.4 and later)."""
    if isinstance(doc, Mapping):
        doc = doc.get("gpu_data", doc.get("gpus"))
    if not isinstance(doc, list):
        return []
    return [r for r in doc if isinstance(r, Mapping)]


def text_or_none(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip().upper() in ("", "N/A")):
        return None
    return str(value).strip()


def why(tool: str, result: CommandResult, parsed_nothing: bool = False) -> str:
    if not result.found:
        return f"{tool} not installed"
    if result.returncode != 0:
        err = (result.stderr or result.stdout).strip().splitlines()
        return f"{tool} failed (exit {result.returncode}{': ' + err[-1][:120] if err else ''})"
    return f"{tool} reported no GPU" if parsed_nothing else f"{tool} ok"


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
