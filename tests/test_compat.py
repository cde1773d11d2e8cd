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
from servegate.models import CATALOG, checkpoint_quantization, from_config, model_info

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


SEED_VLLM = "0.14.1"  # seed 003's vLLM: its deployments must pass the rules of their own version


def ids(config: ServerConfig, marker: str, version: str = SEED_VLLM) -> list[str]:
    return [v.rule_id for v in compat.check(config, marker, vllm_version=version)]


@pytest.mark.parametrize("marker", ["mi300x", "mi325x"])
@pytest.mark.parametrize("config", [DEEPSEEK, KIMI, LLAMA, QWEN3VL, GPT_OSS], ids=lambda c: c.label)
def test_the_seeds_working_deployments_pass_on_their_vllm(config: ServerConfig, marker: str) -> None:
    assert compat.check(config, marker, vllm_version=SEED_VLLM) == []


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
        (QWEN3VL.with_overrides(quantization="fp8"), "fp8-block-quant-dims", "skip"),
        (QWEN3VL.with_overrides(quantization="ptpc_fp8"), "fp8-block-quant-dims", "skip"),
        (QWEN3VL.with_overrides(kv_cache_dtype="fp8_e4m3"), "fp8-kv-cache-with-fp8-incompatible-model", "xfail"),
        (LLAMA.with_overrides(quantization="mxfp4"), "quark-mxfp4-needs-cdna4", "skip"),
    ],
)
def test_each_documented_failure_is_caught_on_mi325x(config: ServerConfig, rule: str, action: str) -> None:
    found = {v.rule_id: v for v in compat.check(config, "mi325x", vllm_version=SEED_VLLM)}
    assert rule in found
    assert found[rule].action == action
    assert "seed 00" in found[rule].reason  # every reason cites its seed
    assert "holds for vLLM" in found[rule].reason


def test_block_size_rules_follow_the_vllm_version_and_the_mla_backend() -> None:
    """0.14.1 (seed 003): MLA on ROCm needs block size 1. 0.20.1: AITER MLA takes any block size, but with AITER
    off only TRITON_MLA is left and it takes multiples of 16, so seed 003's Kimi-K2.5 line cannot start there."""
    assert ids(KIMI, "mi325x", "0.20.1") == ["triton-mla-block-size-16-rocm"]
    assert ids(KIMI.with_overrides(block_size=None), "mi325x", "0.20.1") == []
    assert ids(KIMI.with_overrides(block_size=None), "mi325x", SEED_VLLM) == ["mla-block-size-1-rocm"]
    v3 = DEEPSEEK.with_overrides(model="deepseek-ai/DeepSeek-V3")  # dense MLA (V3.2 adds sparse attention)
    aiter_mla_off = v3.with_overrides(env={"VLLM_ROCM_USE_AITER": 1, "VLLM_ROCM_USE_AITER_MLA": 0,
                                           "AITER_ENABLE_VSKIP": 0})
    assert ids(aiter_mla_off, "mi325x", "0.20.1") == ["triton-mla-block-size-16-rocm"]
    assert ids(v3, "mi325x", "0.20.1") == []  # AITER MLA with block size 1: fine on both versions
    assert ids(v3.with_overrides(block_size=64), "mi325x", "0.20.1") == []


def test_sparse_mla_needs_aiter_and_block_size_1_on_current_vllm() -> None:
    """DeepSeek-V3.2's DSA has one ROCm backend in 0.20.1, ROCM_AITER_MLA_SPARSE, taking block size 1 only."""
    assert ids(DEEPSEEK, "mi325x", "0.20.1") == []
    assert ids(DEEPSEEK.with_overrides(block_size=64), "mi325x", "0.20.1") == ["sparse-mla-aiter-block-size-1-rocm"]
    aiter_off = DEEPSEEK.with_overrides(env={"VLLM_ROCM_USE_AITER": 0})
    assert ids(aiter_off, "mi325x", "0.20.1") == ["sparse-mla-aiter-block-size-1-rocm"]
    assert ids(DEEPSEEK.with_overrides(block_size=64), "h100", "0.20.1") == []


def test_the_version_comes_from_the_image_tag() -> None:
    assert compat.vllm_version_of(KIMI.with_overrides(image="vllm/vllm-openai-rocm:v0.20.1")) == "0.20.1"
    assert compat.vllm_version_of(KIMI.with_overrides(image="rocm/vllm-dev:nightly")) is None
    pinned_old = KIMI.with_overrides(block_size=None, image="vllm/vllm-openai-rocm:v0.14.1")
    assert [v.rule_id for v in compat.check(pinned_old, "mi325x")] == ["mla-block-size-1-rocm"]


def test_kimi_heads_rule_follows_heads_over_tp_per_version() -> None:
    aiter_on = {"VLLM_ROCM_USE_AITER": 1}
    # TP 4 -> 16 heads per rank: the heads rule is satisfied (the MXFP4 rule still applies on CDNA 3)
    assert "aiter-mla-heads-per-rank" not in ids(KIMI.with_overrides(env=aiter_on), "mi325x")
    assert "aiter-mla-heads-per-rank" in ids(KIMI.with_overrides(env=aiter_on, tensor_parallel_size=2), "mi325x")
    # 0.20.1 pads to 16 heads: multiples and divisors of 16 per rank both work (32 at TP 2, 8 at TP 8), 64/3 not
    for tp in (2, 8):
        assert "aiter-mla-heads-per-rank" not in ids(KIMI.with_overrides(env=aiter_on, tensor_parallel_size=tp),
                                                     "mi355x", "0.20.1")
    assert ids(KIMI.with_overrides(env=aiter_on, tensor_parallel_size=3), "mi355x", "0.20.1") == [
        "aiter-mla-heads-per-rank"
    ]
    # on MI355X (CDNA 4) the MXFP4 path exists, so only the heads rule can object
    assert ids(KIMI.with_overrides(env=aiter_on, tensor_parallel_size=8), "mi355x") == ["aiter-mla-heads-per-rank"]
    assert ids(KIMI.with_overrides(env=aiter_on), "mi355x") == []
    # TRITON_MLA is not AITER's MLA backend, named by flag or by --attention-config: no heads constraint
    triton = KIMI.with_overrides(env=aiter_on, tensor_parallel_size=8, attention_backend="TRITON_MLA")
    assert "aiter-mla-heads-per-rank" not in ids(triton, "mi355x")
    via_ac = KIMI.with_overrides(env=aiter_on, tensor_parallel_size=8, extra_args=("-ac", '{"backend": "TRITON_MLA"}'))
    assert "aiter-mla-heads-per-rank" not in ids(via_ac, "mi355x")


def test_mxfp4_rule_reads_the_aiter_mla_switch() -> None:
    """AITER on but its MLA kernels off (VLLM_ROCM_USE_AITER_MLA=0) does not take the MXFP4 MLA path."""
    mla_off = KIMI.with_overrides(block_size=None, env={"VLLM_ROCM_USE_AITER": 1, "VLLM_ROCM_USE_AITER_MLA": 0})
    assert "aiter-mla-mxfp4-needs-cdna4" not in ids(mla_off, "mi325x", "0.20.1")


def test_rules_the_seeds_add_for_current_vllm() -> None:
    steps = LLAMA.with_overrides(extra_args=("--num-scheduler-steps", "15"))
    assert ids(steps, "mi325x", "0.20.1") == ["num-scheduler-steps-removed"]
    awq = cfg("some/llama-awq", quantization="awq")
    assert ids(awq, "mi300x") == ["awq-rocm-triton-kernels"]
    assert ids(awq.with_overrides(env={"VLLM_USE_TRITON_AWQ": 1}), "mi300x") == []
    assert ids(awq, "h100") == []
    dp = DEEPSEEK.with_overrides(extra_args=("--data-parallel-size", "8"))
    assert ids(dp, "mi300x") == ["data-parallel-rocm-all2all"]
    dp_ok = dp.with_overrides(
        env={**dict(DEEPSEEK.env), "VLLM_ALL2ALL_BACKEND": "allgather_reducescatter"},
        extra_args=("--data-parallel-size", "8", "--disable-nccl-for-dp-synchronization"),
    )
    assert ids(dp_ok, "mi300x") == []


def test_rocm_only_rules_do_not_fire_on_cuda() -> None:
    bad_on_rocm = DEEPSEEK.with_overrides(block_size=64, env={"VLLM_ROCM_USE_AITER": 1})
    assert ids(bad_on_rocm, "h100") == []  # FlashMLA uses block size 64 on NVIDIA (seed 003 §4.4)
    assert ids(QWEN3VL.with_overrides(quantization="fp8"), "h100") == ["fp8-block-quant-dims"]  # model-level
    assert ids(LLAMA.with_overrides(quantization="mxfp4"), "h100") == []  # B200/H100 run MXFP4


def test_vskip_is_a_cdna3_rule_and_mxfp4_runs_on_cdna4() -> None:
    assert ids(DEEPSEEK.with_overrides(env={"VLLM_ROCM_USE_AITER": 1}), "mi355x") == []
    assert ids(LLAMA.with_overrides(quantization="mxfp4"), "mi355x") == []


# -- facts from config.json, not names -------------------------------------------------------------------------------

MODEL_CONFIGS = ROOT / "tests" / "data" / "model-configs"


def test_a_checkpoint_is_judged_by_its_config_json_not_its_name(tmp_path: Path, monkeypatch) -> None:
    """A DeepSeek-V3-architecture checkpoint under a name no catalog knows, found in the Hugging Face cache as a GPU
    host has it: MLA (kv_lora_rank), 128 heads, FP8 weights (quantization_config), so the MLA rules apply."""
    snapshot = tmp_path / "hub" / "models--someone--renamed-finetune" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text((MODEL_CONFIGS / "DeepSeek-V3" / "config.json").read_text())
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    info = model_info("someone/renamed-finetune")
    assert info is not None and info.attention == "mla" and info.moe and info.num_heads == 128
    assert info.native_quantization == "fp8" and info.source.endswith("config.json")
    renamed = DEEPSEEK.with_overrides(model="someone/renamed-finetune", block_size=None)
    assert ids(renamed, "mi325x") == ["mla-block-size-1-rocm"]
    assert ids(renamed.with_overrides(kv_cache_dtype="fp8"), "mi325x", "0.20.1") == ["mla-no-fp8-kv-cache-rocm"]


def test_the_seeds_pinned_checkpoints_are_mla() -> None:
    """seed 003 Table 9 pins DeepSeek-V3-0324 and Kimi-K2-Instruct; seed 004 serves DeepSeek-R1."""
    for name in ("deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3-0324", "moonshotai/Kimi-K2-Instruct"):
        info = model_info(name)
        assert info is not None and info.attention == "mla" and info.moe, name
        assert "mla-block-size-1-rocm" in ids(cfg(name, tensor_parallel_size=8), "mi300x")
    shipped = model_info(str(MODEL_CONFIGS / "DeepSeek-V3"))
    catalog = model_info("deepseek-ai/DeepSeek-V3")
    assert shipped is not None and catalog is not None
    assert (shipped.num_heads, shipped.num_layers, shipped.attention) == (catalog.num_heads, catalog.num_layers, "mla")
    assert shipped.total_params == pytest.approx(catalog.total_params, rel=0.01)


@pytest.mark.parametrize(
    ("quantization_config", "expected"),
    [
        ({"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8"}, "fp8"),
        # gpt-oss-120b's block as published in its config.json
        ({"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens",
                                     "lm_head"], "quant_method": "mxfp4"}, "mxfp4"),
        ({"quant_method": "compressed-tensors",
          "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "int", "group_size": 32}}}}, "int4"),
        ({"quant_method": "quark", "global_quant_config": {"weight": {"dtype": "fp4", "qscheme": "per_group"}}},
         "quark-mxfp4"),
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, "int4"),
        (None, None),
    ],
)
def test_checkpoint_quantization(quantization_config: dict | None, expected: str | None) -> None:
    assert checkpoint_quantization(quantization_config) == expected


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
