"""Compat rules against the seeds' own configurations (which must pass) and their documented failures (which must not).

Each known-good config below is a seed's deployment (seed 003 Tables 3/11, seed 004's quick start); each bad one is
the same config with exactly the change the seed says breaks it, so a rule that is too wide or too narrow fails here.
Also the model catalog, whose counts are cross-checked against parameter counts computed from published configs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from servegate import compat
from servegate.config import ServerConfig, normalize_env
from servegate.models import CATALOG, from_config, model_info

ROOT = Path(__file__).resolve().parents[1]


def cfg(model: str, **kw: object) -> ServerConfig:
    env = kw.pop("env", None)
    return ServerConfig(model=model, env=normalize_env(env), **kw)  # type: ignore[arg-type]


# seed 003 Table 11 / Table 3 deployments on MI325X, and seed 004's DeepSeek-V3.2 quick start
DEEPSEEK = cfg("deepseek-ai/DeepSeek-V3.2", quantization="fp8", block_size=1, tensor_parallel_size=8,
               env={"VLLM_ROCM_USE_AITER": 1, "AITER_ENABLE_VSKIP": 0})
KIMI = cfg("moonshotai/Kimi-K2.5", block_size=1, tensor_parallel_size=4,
           env={"VLLM_ROCM_USE_AITER": 0, "VLLM_USE_TRITON_FLASH_ATTN": 0})
LLAMA = cfg("meta-llama/Llama-3.1-405B-Instruct", quantization="fp8", max_model_len=32768, tensor_parallel_size=8,
            env={"VLLM_ROCM_USE_AITER": 1})
QWEN3VL = cfg("Qwen/Qwen3-VL-235B-A22B-Instruct", tensor_parallel_size=8,
              extra_args=("--kv-offloading-backend", "native", "--kv-offloading-size", "64"),
              env={"VLLM_ROCM_USE_AITER": 1, "VLLM_USE_TRITON_FLASH_ATTN": 0})
GPT_OSS = cfg("openai/gpt-oss-120b", env={"VLLM_ROCM_USE_AITER": 1, "VLLM_USE_AITER_UNIFIED_ATTENTION": 1,
                                          "VLLM_ROCM_USE_AITER_MHA": 0})  # seed 002 on MI300X


def ids(config: ServerConfig, marker: str) -> list[str]:
    return [v.rule_id for v in compat.check(config, marker)]


@pytest.mark.parametrize("marker", ["mi300x", "mi325x"])
@pytest.mark.parametrize("config", [DEEPSEEK, KIMI, LLAMA, QWEN3VL, GPT_OSS], ids=lambda c: c.label)
def test_the_seeds_working_deployments_pass(config: ServerConfig, marker: str) -> None:
    assert compat.check(config, marker) == []


@pytest.mark.parametrize(
    ("config", "rule", "action"),
    [
        (DEEPSEEK.with_overrides(block_size=16), "mla-block-size-1-rocm", "skip"),
        (DEEPSEEK.with_overrides(block_size=None), "mla-block-size-1-rocm", "skip"),
        (DEEPSEEK.with_overrides(kv_cache_dtype="fp8"), "mla-no-fp8-kv-cache-rocm", "skip"),
        (DEEPSEEK.with_overrides(extra_args=("--kv-offloading-backend", "native")), "mla-no-kv-offloading-rocm",
         "skip"),
        (DEEPSEEK.with_overrides(env={"VLLM_ROCM_USE_AITER": 1}), "deepseek-moe-vskip-off", "skip"),
        (DEEPSEEK.with_overrides(env={"VLLM_ROCM_USE_AITER": 1, "AITER_ENABLE_VSKIP": 1}), "deepseek-moe-vskip-off",
         "skip"),
        # Kimi with AITER on: 64 heads / TP 8 = 8 per rank (not 16/128), and the MXFP4 path needs CDNA 4
        (KIMI.with_overrides(tensor_parallel_size=8, env={"VLLM_ROCM_USE_AITER": 1}), "aiter-mla-heads-per-rank",
         "xfail"),
        (KIMI.with_overrides(env={"VLLM_ROCM_USE_AITER": 1}), "aiter-mla-mxfp4-needs-cdna4", "skip"),
        (QWEN3VL.with_overrides(quantization="fp8"), "qwen3-vl-no-fp8-weights", "skip"),
        (QWEN3VL.with_overrides(quantization="ptpc_fp8"), "qwen3-vl-no-fp8-weights", "skip"),
        (QWEN3VL.with_overrides(kv_cache_dtype="fp8_e4m3"), "qwen3-vl-no-fp8-kv-cache", "xfail"),
        (cfg("amd/Llama-3.3-70B-Instruct-MXFP4-Preview"), "mxfp4-needs-mi350", "skip"),
    ],
)
def test_each_documented_failure_is_caught_on_mi325x(config: ServerConfig, rule: str, action: str) -> None:
    found = {v.rule_id: v for v in compat.check(config, "mi325x")}
    assert rule in found
    assert found[rule].action == action
    assert "seed 00" in found[rule].reason  # every reason cites its seed


def test_kimi_heads_rule_follows_heads_over_tp() -> None:
    aiter_on = {"VLLM_ROCM_USE_AITER": 1}
    # TP 4 -> 16 heads per rank: the heads rule is satisfied (the MXFP4 rule still applies on CDNA 3)
    assert "aiter-mla-heads-per-rank" not in ids(KIMI.with_overrides(env=aiter_on), "mi325x")
    assert "aiter-mla-heads-per-rank" in ids(KIMI.with_overrides(env=aiter_on, tensor_parallel_size=2), "mi325x")
    # on MI355X (CDNA 4) the MXFP4 path exists, so only the heads rule can object
    assert ids(KIMI.with_overrides(env=aiter_on, tensor_parallel_size=8), "mi355x") == ["aiter-mla-heads-per-rank"]
    assert ids(KIMI.with_overrides(env=aiter_on), "mi355x") == []
    # TRITON_MLA is not AITER's MLA backend: no heads constraint even with AITER on elsewhere
    triton = KIMI.with_overrides(env=aiter_on, tensor_parallel_size=8, attention_backend="TRITON_MLA")
    assert "aiter-mla-heads-per-rank" not in ids(triton, "mi355x")


def test_rocm_only_rules_do_not_fire_on_cuda() -> None:
    bad_on_rocm = DEEPSEEK.with_overrides(block_size=64, env={"VLLM_ROCM_USE_AITER": 1})
    assert ids(bad_on_rocm, "h100") == []  # FlashMLA uses block size 64 on NVIDIA (seed 003 §4.4)
    assert ids(QWEN3VL.with_overrides(quantization="fp8"), "h100") == ["qwen3-vl-no-fp8-weights"]  # model-level


def test_vskip_is_a_cdna3_rule_and_mxfp4_runs_on_cdna4() -> None:
    assert ids(DEEPSEEK.with_overrides(env={"VLLM_ROCM_USE_AITER": 1}), "mi355x") == []
    assert ids(cfg("amd/Llama-3.3-70B-Instruct-MXFP4-Preview"), "mi355x") == []
    assert ids(cfg("amd/Llama-3.3-70B-Instruct-MXFP4-Preview"), "mi300x") == ["mxfp4-needs-mi350"]


def test_gpt_oss_native_mxfp4_weights_do_not_trigger_the_mxfp4_rule() -> None:
    """seed 002 serves gpt-oss-120b (MXFP4 MoE weights) on MI300X: only explicit MXFP4 quantization is CDNA 4."""
    assert model_info("openai/gpt-oss-120b").native_quantization == "mxfp4"
    assert compat.check(GPT_OSS, "mi300x") == []


def test_unknown_models_pass_and_skips_sort_first() -> None:
    assert compat.check(cfg("some-org/unknown-7b", block_size=16, kv_cache_dtype="fp8"), "mi300x") == []
    both = KIMI.with_overrides(tensor_parallel_size=8, env={"VLLM_ROCM_USE_AITER": 1})
    actions = [v.action for v in compat.check(both, "mi325x")]
    assert actions == sorted(actions, key=lambda a: a != "skip") and actions[0] == "skip"


def test_flags_given_as_extra_args_count_too() -> None:
    via_args = DEEPSEEK.with_overrides(block_size=None, extra_args=("--block-size", "1", "--kv-cache-dtype=fp8"))
    assert ids(via_args, "mi300x") == ["mla-no-fp8-kv-cache-rocm"]


def test_every_suite_server_on_rocm_passes_the_rules() -> None:
    """The project's own GPU suite files must not ask for a combination the seeds call broken."""
    from servegate.suite import discover

    for case in discover(ROOT / "suites"):
        if case.hardware in ("mi300x", "mi325x", "mi350x", "mi355x"):
            assert [v for v in compat.check(case.server, case.hardware) if v.action == "skip"] == [], case.id


# -- the catalog -----------------------------------------------------------------------------------------------------


def test_catalog_lookups() -> None:
    for entry in CATALOG:
        assert model_info(entry.hf_id) is entry
        assert model_info(entry.hf_id.upper()) is entry
        assert entry.active_params <= entry.total_params
        assert (entry.attention == "mla") == (entry.family in ("deepseek", "kimi"))
    assert model_info("deepseek-v3.2").num_heads == 128
    assert model_info("/mnt/models/Qwen2-VL-72B-Instruct") is model_info("Qwen/Qwen2-VL-72B-Instruct")
    assert model_info("nobody/nothing") is None and model_info("") is None


def test_catalog_agrees_with_counts_computed_from_published_configs() -> None:
    """config.json values of DeepSeek-V3 and Llama-3.1-405B; the formula must land on the published totals."""
    deepseek_v3 = {
        "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048, "num_hidden_layers": 61,
        "first_k_dense_replace": 3, "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8,
        "num_attention_heads": 128, "num_key_value_heads": 128, "q_lora_rank": 1536, "kv_lora_rank": 512,
        "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "vocab_size": 129280,
        "model_type": "deepseek_v3",
    }
    info = from_config(deepseek_v3)
    assert info.attention == "mla" and info.moe
    assert info.total_params == pytest.approx(671e9, rel=0.01)  # DeepSeek-V3: 671B (685B with the MTP module)
    assert info.active_params == pytest.approx(model_info("DeepSeek-V3.2").active_params, rel=0.03)
    llama = {"hidden_size": 16384, "intermediate_size": 53248, "num_hidden_layers": 126, "num_attention_heads": 128,
             "num_key_value_heads": 8, "vocab_size": 128256}
    computed = from_config(llama)
    assert computed.total_params == pytest.approx(model_info("meta-llama/Llama-3.1-405B-Instruct").total_params,
                                                  rel=0.005)
    assert computed.attention == "gqa"


def test_tiny_model_from_its_config() -> None:
    info = model_info(str(ROOT / "datasets" / "tiny-llama"))
    assert info is not None and info.attention == "gqa" and not info.moe
    h, v, inter, layers = 256, 656, 768, 4
    per_layer = 2 * h * 4 * 64 + 2 * h * 2 * 64 + 3 * h * inter + 2 * h
    assert info.total_params == 2 * v * h + layers * per_layer + h  # untied embeddings and head, final norm
