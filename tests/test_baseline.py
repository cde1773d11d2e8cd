"""The baseline store: file layout, atomic round trip with secrets masked, precise errors, fingerprint checks."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from servegate.baseline import (
    SCHEMA_VERSION,
    Baseline,
    BaselineError,
    Fingerprint,
    baseline_path,
    blocking_mismatch,
    find_baseline,
    fingerprint_mismatch,
    load_baseline,
    save_baseline,
)
from servegate.hardware import HardwareInfo

MI300X = HardwareInfo("amd", "mi300x", "AMD Instinct MI300X", "gfx942", 8, 192.0, "6.8.5", "6.3.1", source="amd-smi")
FP = Fingerprint(
    hardware_id="mi300x-x8",
    hardware_name="AMD Instinct MI300X",
    hardware_arch="gfx942",
    device_count=8,
    driver="6.8.5",
    rocm_version="6.3.1",
    vllm_version="0.14.1",
    model="meta-llama/Llama-3.1-405B-Instruct-FP8",
    servegate_version="0.1.0",
)


def _baseline(**changes: object) -> Baseline:
    b = Baseline(
        hardware_id="mi300x-x8",
        suite="serving",
        config_id="mi300x/llama-405b-fp8/c8-in128-out64",
        values={"output_throughput": [1000.0, 1010.5, 995.0], "itl_median_ms": [12.0, math.nan, 12.5]},
        server={"model": "x", "env": {"HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyz123456", "VLLM_USE_AITER": "1"}},
        load={"concurrency": 8},
        fingerprint=FP,
    )
    return replace(b, **changes)


def test_path_layout_matches_the_plugin_and_is_file_safe(tmp_path: Path) -> None:
    p = baseline_path(tmp_path, "cpu-amd-epyc-2c", "serving", "cpu/tiny-llama/c8-in128-out64")
    assert p == tmp_path / "cpu-amd-epyc-2c" / "serving" / "tiny-llama" / "c8-in128-out64.json"
    sweep = baseline_path(tmp_path, "h", "s", "cpu/tiny/sweep/r4")
    assert sweep.name == "sweep_r4.json" and sweep.parent.name == "tiny"
    evil = baseline_path(tmp_path, "h", "s", "cpu/..\\x/a b")
    assert evil.is_relative_to(tmp_path) and " " not in evil.name
    with pytest.raises(ValueError, match="cannot be a file name"):
        baseline_path(tmp_path, "h", "s", "cpu/../x")
    with pytest.raises(ValueError, match="<hardware>/<server>/<load>"):
        baseline_path(tmp_path, "h", "s", "no-slashes")


def test_round_trip_keeps_per_start_values_and_masks_secrets(tmp_path: Path) -> None:
    path = save_baseline(tmp_path, _baseline())
    text = path.read_text()
    assert "hf_abcdefghijklmnopqrstuvwxyz" not in text and '"HF_TOKEN": "***"' in text
    assert "NaN" not in text  # strict JSON: a missing value is null
    loaded = load_baseline(path)
    assert loaded.values["output_throughput"] == [1000.0, 1010.5, 995.0]
    assert math.isnan(loaded.values["itl_median_ms"][1])
    assert loaded.fingerprint == FP and loaded.schema_version == SCHEMA_VERSION
    assert loaded.server["env"]["VLLM_USE_AITER"] == "1"
    assert find_baseline(tmp_path, "mi300x-x8", "serving", "mi300x/llama-405b-fp8/c8-in128-out64") == loaded
    assert find_baseline(tmp_path, "mi300x-x8", "serving", "mi300x/other/c1-in1-out1") is None
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def _corrupt(tmp_path: Path, mutate) -> Path:
    path = save_baseline(tmp_path, _baseline())
    doc = json.loads(path.read_text())
    mutate(doc)
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("values"), "missing key 'values'"),
        (lambda d: d.update(values=[1, 2]), "key 'values' must be an object, got list"),
        (lambda d: d["values"].update(ttft_median_ms="fast"), r"values\['ttft_median_ms'\] must be a list"),
        (lambda d: d["values"]["output_throughput"].__setitem__(1, "x"), r"values\['output_throughput'\]\[1\]"),
        (lambda d: d.update(schema_version=99), "schema_version 99 is not supported"),
        (lambda d: d.update(schema_version=True), "key 'schema_version' must be an integer, got boolean"),
        (lambda d: d["fingerprint"].pop("hardware_id"), "fingerprint.hardware_id"),
        (lambda d: d["fingerprint"].update(device_count="8"), "fingerprint.device_count' must be an integer"),
        (lambda d: d.update(hardware_id="h100-x1"), "differs from hardware_id"),
    ],
)
def test_invalid_files_say_what_and_where(tmp_path: Path, mutate, message: str) -> None:
    path = _corrupt(tmp_path, mutate)
    with pytest.raises(BaselineError, match=message) as info:
        load_baseline(path)
    assert str(path) in str(info.value)


def test_corrupted_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text('{\n  "schema_version": 1,\n  "suite" "x"\n}\n')
    with pytest.raises(BaselineError, match=r"not valid JSON: .* line 3 column 11") as info:
        load_baseline(path)
    assert str(path) in str(info.value)
    with pytest.raises(BaselineError, match="no baseline file"):
        load_baseline(tmp_path / "absent.json")


def test_unknown_fingerprint_fields_from_a_newer_servegate_are_tolerated(tmp_path: Path) -> None:
    path = _corrupt(tmp_path, lambda d: d["fingerprint"].update(numa_nodes=2))
    assert load_baseline(path).fingerprint == FP


def test_fingerprint_collect_and_mismatches() -> None:
    from fixtures.servers import tiny_server_config
    from servegate.launch.base import StartupFacts

    server = tiny_server_config(extra_args=("--revision", "abc123"))
    fp = Fingerprint.collect(MI300X, server, StartupFacts(vllm_version="0.14.1", extra={"image_digest": "sha256:1"}))
    assert (fp.hardware_id, fp.device_count, fp.rocm_version) == ("mi300x-x8", 8, "6.3.1")
    assert (fp.vllm_version, fp.image_digest, fp.model, fp.model_revision) == (
        "0.14.1",
        "sha256:1",
        "tiny-llama",
        "abc123",
    )
    newer = replace(fp, vllm_version="0.15.0")
    assert fingerprint_mismatch(fp, newer) == ["vllm_version: 0.14.1 vs 0.15.0"]
    assert fingerprint_mismatch(fp, fp) == []
    assert blocking_mismatch(fp, newer) is None  # a vLLM upgrade is what the gate is for
    h100 = replace(fp, hardware_id="h100-x8", hardware_name="NVIDIA H100", hardware_arch="sm_90")
    assert blocking_mismatch(fp, h100) == (
        "baseline from other hardware mi300x-x8 (8x AMD Instinct MI300X) vs h100-x8 (8x NVIDIA H100)"
    )
    assert "another model" in (blocking_mismatch(fp, replace(fp, model="other")) or "")
