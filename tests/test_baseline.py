"""The baseline store: file layout, atomic round trip with secrets masked, precise errors, fingerprint checks."""

from __future__ import annotations

import json
import math
import multiprocessing
from dataclasses import replace
from pathlib import Path

import pytest

from servegate.baseline import (
    SCHEMA_VERSION,
    Baseline,
    BaselineConflict,
    BaselineError,
    Fingerprint,
    baseline_path,
    blocking_mismatch,
    config_diff,
    config_hash,
    effective_config,
    find_baseline,
    fingerprint_mismatch,
    load_baseline,
    refusal_reasons,
    save_baseline,
)
from servegate.config import LoadConfig, ServerConfig
from servegate.gate import DEFAULT_GATED_METRICS
from servegate.hardware.detect import HardwareInfo, detected
from servegate.regression import BaselineRefused, RegressionGate
from servegate.runner import CaseResult
from servegate.stats import Verdict
from servegate.testing.fakes import fake_start

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
        (lambda d: d.update(schema_version=True), "schema_version True is not supported"),
        (lambda d: d.update(schema_version=1), "schema_version 1 is not supported .* re-record it"),
        (lambda d: d.pop("config_hash"), "missing key 'config_hash'"),
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


# ---------------------------------------------------------------------------------------------------------------
# What may become a baseline, configuration identity, concurrent writers
# ---------------------------------------------------------------------------------------------------------------


HERE = detected().hardware_id  # the gate fingerprints this machine


def _result(n: int = 3, **summary: object) -> CaseResult:
    server, load = ServerConfig(model="m"), LoadConfig(concurrency=1, num_requests=4)
    return CaseResult("cpu/m/c1-in128-out64", server, load, [fake_start(i, 1 + 0.01 * i, **summary) for i in range(n)])


def test_a_good_run_may_become_a_baseline() -> None:
    assert refusal_reasons(_result(), DEFAULT_GATED_METRICS) == []


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (_result(n=1), "1 server start(s); a baseline needs at least 2"),
        (_result(n=0), "no measured values"),
        (_result(success_rate=0.0), "start 1 level c1 is FAILING: success 0% < 95%"),
        (_result(success_rate=0.94), "is FAILING: success 94%"),
        (_result(client_bound=True, client_bound_reason="send lag"), "start 1 level c1 is CLIENT-BOUND: send lag"),
        (_result(output_throughput=math.nan), "output_throughput has non-finite values"),
        (_result(request_throughput=math.inf), "request_throughput has non-finite values"),
    ],
    ids=["one-start", "no-start", "failing", "failing-94", "client-bound", "nan", "inf"],
)
def test_bad_runs_are_refused_with_the_reason(result: CaseResult, reason: str) -> None:
    assert any(reason in r for r in refusal_reasons(result, DEFAULT_GATED_METRICS)), refusal_reasons(
        result, DEFAULT_GATED_METRICS
    )


def test_refused_run_keeps_the_old_baseline_and_force_is_recorded(tmp_path: Path) -> None:
    gate = RegressionGate(tmp_path, HERE)
    good = gate.record("serving", "cpu/m/c1-in128-out64", _result())
    before = good.read_bytes()
    with pytest.raises(BaselineRefused, match=r"success 0% < 95%.*--force-baseline") as info:
        gate.record("serving", "cpu/m/c1-in128-out64", _result(success_rate=0.0))
    assert info.value.path == good and good.read_bytes() == before
    gate.record("serving", "cpu/m/c1-in128-out64", _result(n=1), force=True)
    forced = load_baseline(good)
    assert forced.forced is not None and "1 server start(s)" in forced.forced


def test_identity_hash_and_diff_cover_what_changes_the_numbers(tmp_path: Path) -> None:
    server = ServerConfig(model="/some/checkout/datasets/tiny-llama", max_model_len=2048, env=(("HF_TOKEN", "x" * 9),))
    load = LoadConfig(concurrency=8, num_requests=64)
    gate = RegressionGate(tmp_path, HERE)
    result = CaseResult("cpu/tiny-llama/c8-in128-out64", server, load, _result().starts)
    stored = load_baseline(gate.record("serving", result.case_id, result))
    assert stored.server["model"] == "tiny-llama"  # the checkout's location is not part of the identity
    assert "x" * 9 not in json.dumps(stored.server)
    assert config_diff(stored, server, load) == []
    moved = replace(server, model="/elsewhere/datasets/tiny-llama", startup_timeout_s=5.0)
    assert config_diff(stored, moved, load) == []
    changes = {
        "load.num_requests: 64 → 32": (server, load.scaled(0.5)),
        "load.temperature: 0.0 → 0.7": (server, replace(load, temperature=0.7)),
        "load.endpoint: \"completions\" → \"chat\"": (server, replace(load, endpoint="chat")),
        "server.max_model_len: 2048 → 4096": (replace(server, max_model_len=4096), load),
        'server.load_format: none → "dummy"': (replace(server, load_format="dummy"), load),
        'server.image: none → "rocm/vllm:1"': (replace(server, image="rocm/vllm:1"), load),
        'server.extra_args: [] → ["--seed", "1"]': (replace(server, extra_args=("--seed", "1")), load),
        'server.env: {"HF_TOKEN": "***"} → {"HF_TOKEN": "***", "VLLM_X": "1"}': (
            replace(server, env=(("HF_TOKEN", "x" * 9), ("VLLM_X", "1"))),
            load,
        ),
    }
    for expected, (srv, ld) in changes.items():
        assert [str(change) for change in config_diff(stored, srv, ld)] == [expected]
        current = effective_config(srv, ld)
        assert config_hash(current["server"], current["load"]) != stored.config_hash


def test_gate_does_not_compare_another_configuration(tmp_path: Path) -> None:
    gate = RegressionGate(tmp_path, HERE)
    base = _result()
    gate.record("serving", base.case_id, base)
    quick = CaseResult(base.case_id, base.server, base.load.scaled(0.5), [fake_start(i, 40.0) for i in range(3)])
    rows = gate.check("serving", base.case_id, quick)
    assert [r.verdict for r in rows] == [Verdict.NOT_COMPARED]
    assert "another configuration: load.num_requests: 4 → 2" in rows[0].reason


def test_hand_edited_settings_do_not_match_the_hash(tmp_path: Path) -> None:
    path = _corrupt(tmp_path, lambda d: d["load"].update(concurrency=64))
    with pytest.raises(BaselineError, match="config_hash does not match"):
        load_baseline(path)


def test_second_writer_loses_and_says_so(tmp_path: Path) -> None:
    first, second = RegressionGate(tmp_path, HERE), RegressionGate(tmp_path, HERE)
    case_id = "cpu/m/c1-in128-out64"
    first.observe("serving", case_id)
    second.observe("serving", case_id)  # both sessions start while no baseline exists
    path = first.record("serving", case_id, _result())
    written = path.read_bytes()
    with pytest.raises(BaselineConflict, match=r"another session wrote this baseline .* after no baseline existed"):
        second.record("serving", case_id, _result())
    assert path.read_bytes() == written
    second.observe("serving", case_id)  # a new session that has read the current file may replace it
    second.record("serving", case_id, _result(n=4))
    assert len(load_baseline(path).values["output_throughput"]) == 4


def test_concurrent_writers_in_processes_exactly_one_wins(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        outcomes = pool.map(_race, [str(tmp_path)] * 4)
    assert sorted(outcomes) == ["conflict"] * 3 + ["written"], outcomes


def _race(root: str) -> str:
    gate = RegressionGate(Path(root), HERE)
    gate.read_digests[gate.path_for("serving", "cpu/m/c1-in128-out64")] = None  # all read "no baseline yet"
    try:
        gate.record("serving", "cpu/m/c1-in128-out64", _result())
    except BaselineConflict:
        return "conflict"
    return "written"
