"""The models the seeds serve, with the architecture facts that compat rules and roofline floors need.

A model's facts say how big it is (total and per-token active parameters: decode reads the active weights once
per step, so they set the ITL floor), how it attends (MHA / GQA / MLA: MLA has ROCm constraints, seed 003 §4.4),
its shape and how its checkpoint is quantized. They come from the model's own ``config.json`` whenever one is at
hand: a local model directory, or the Hugging Face cache a GPU host serves from (``$HF_HOME/hub``). So a
fine-tune, a renamed mirror or a new checkpoint of an MLA architecture (DeepSeek-R1, Kimi-K2-Instruct) is judged
by its architecture, never by its name. The catalog below is the fallback for hosts that hold no copy (CI,
planning a run): the seeds' models, their shapes transcribed from their config.json files or model cards.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

Attention = Literal["mha", "gqa", "mla"]


@dataclass(frozen=True)
class ModelInfo:
    """Architecture facts of one model (of its language backbone for a vision-language model)."""

    name: str
    hf_id: str | None
    total_params: float  # count
    active_params: float  # count per token (== total for dense models)
    attention: Attention
    num_heads: int
    num_kv_heads: int
    num_layers: int
    hidden_size: int
    head_dim: int
    moe: bool = False
    vision: bool = False
    family: str = ""
    native_quantization: str | None = None  # what the checkpoint ships as: fp8, mxfp4, int4, quark-mxfp4
    fp8_incompatible: bool = False  # a dimension not divisible by FP8 block-quant's 128 (seed 003 §4.1)
    aiter_mla_needs_cdna4: bool = False  # AITER's MLA path for this model uses MXFP4 (seed 003 §4.3)
    sparse_mla: bool = False  # DeepSeek sparse attention (DSA: an indexer picks index_topk tokens), V3.2
    source: str = ""

    @property
    def active_params_b(self) -> float:
        return self.active_params / 1e9

    @property
    def total_params_b(self) -> float:
        return self.total_params / 1e9

    def heads_per_rank(self, tensor_parallel_size: int) -> float:
        return self.num_heads / max(1, tensor_parallel_size)


CATALOG: tuple[ModelInfo, ...] = (
    ModelInfo(
        "Qwen2-VL-72B-Instruct", "Qwen/Qwen2-VL-72B-Instruct", 73.4e9, 73.4e9, "gqa",
        num_heads=64, num_kv_heads=8, num_layers=80, hidden_size=8192, head_dim=128, vision=True, family="qwen2-vl",
        source="seed 000 (72B, ~144 GB in BF16); shape from the model's config.json; 73.4B includes the ~0.7B ViT",
    ),
    ModelInfo(
        "gpt-oss-120b", "openai/gpt-oss-120b", 116.8e9, 5.1e9, "gqa",
        num_heads=64, num_kv_heads=8, num_layers=36, hidden_size=2880, head_dim=64, moe=True, family="gpt-oss",
        native_quantization="mxfp4",
        source="seed 002 (120B on one MI300X); counts from OpenAI's gpt-oss model card (116.8B total, 5.1B active)",
    ),
    ModelInfo(
        "Llama-3.1-405B-Instruct", "meta-llama/Llama-3.1-405B-Instruct", 405.9e9, 405.9e9, "gqa",
        num_heads=128, num_kv_heads=8, num_layers=126, hidden_size=16384, head_dim=128, family="llama",
        source="seed 003 Table 2 (405B dense, GQA); shape from the model's config.json",
    ),
    ModelInfo(
        "DeepSeek-V3.2", "deepseek-ai/DeepSeek-V3.2", 685e9, 37e9, "mla",
        num_heads=128, num_kv_heads=128, num_layers=61, hidden_size=7168, head_dim=192, moe=True, family="deepseek",
        native_quantization="fp8", sparse_mla=True,
        source="seed 003 Table 2 (685B total, ~37B active, MoE+MLA, FP8); 128 heads, 61 layers, DSA (index_topk) "
        "from config.json",
    ),
    ModelInfo(
        "Qwen3-VL-235B-A22B-Instruct", "Qwen/Qwen3-VL-235B-A22B-Instruct", 235e9, 22e9, "gqa",
        num_heads=64, num_kv_heads=4, num_layers=94, hidden_size=4096, head_dim=128, moe=True, vision=True,
        family="qwen3-vl", fp8_incompatible=True,
        source="seed 003 Table 2 (235B total, ~22B active, MoE+GQA, BF16) and §4.1 (ViT dim 4304 % 128 != 0)",
    ),
    ModelInfo(
        "Kimi-K2.5", "moonshotai/Kimi-K2.5", 1.0e12, 32e9, "mla",
        num_heads=64, num_kv_heads=64, num_layers=61, hidden_size=7168, head_dim=192, moe=True, vision=True,
        family="kimi", native_quantization="int4", aiter_mla_needs_cdna4=True,
        source="seed 003 Table 2 and §3.3 (1T total, ~32B active, 384 experts, 64 MLA heads, INT4 QAT, MoonViT)",
    ),
    # seed 003 Table 9 pins these checkpoints: DeepSeek-V3 architecture (DeepseekV3ForCausalLM, MLA + MoE)
    ModelInfo(
        "DeepSeek-V3", "deepseek-ai/DeepSeek-V3", 671e9, 37e9, "mla",
        num_heads=128, num_kv_heads=128, num_layers=61, hidden_size=7168, head_dim=192, moe=True, family="deepseek",
        native_quantization="fp8",
        source="config.json (tests/data/model-configs/DeepSeek-V3): 128 heads, kv_lora_rank 512, FP8 block quant; "
        "671B total / 37B active per DeepSeek's model card",
    ),
    ModelInfo(
        "DeepSeek-V3-0324", "deepseek-ai/DeepSeek-V3-0324", 671e9, 37e9, "mla",
        num_heads=128, num_kv_heads=128, num_layers=61, hidden_size=7168, head_dim=192, moe=True, family="deepseek",
        native_quantization="fp8", source="seed 003 Table 9; same architecture as DeepSeek-V3 (model card)",
    ),
    ModelInfo(
        "DeepSeek-R1", "deepseek-ai/DeepSeek-R1", 671e9, 37e9, "mla",
        num_heads=128, num_kv_heads=128, num_layers=61, hidden_size=7168, head_dim=192, moe=True, family="deepseek",
        native_quantization="fp8", source="seed 004's DP examples; DeepSeek-V3 architecture (model card)",
    ),
    ModelInfo(
        "Kimi-K2-Instruct", "moonshotai/Kimi-K2-Instruct", 1.0e12, 32e9, "mla",
        num_heads=64, num_kv_heads=64, num_layers=61, hidden_size=7168, head_dim=192, moe=True, family="kimi",
        native_quantization="fp8",
        source="seed 003 Table 9; Moonshot's model card: DeepseekV3 architecture, 61 layers, 64 MLA heads, "
        "384 experts (8 + 1 shared), 1T total / 32B active, FP8 block-quantized weights",
    ),
)

_ALIASES: dict[str, str] = {
    "qwen2-vl-72b": "Qwen2-VL-72B-Instruct",
    "gpt-oss-120b": "gpt-oss-120b",
    "llama-3.1-405b": "Llama-3.1-405B-Instruct",
    "meta-llama-3.1-405b-instruct": "Llama-3.1-405B-Instruct",
    "deepseek-v3.2": "DeepSeek-V3.2",
    "deepseek-v3.2-exp": "DeepSeek-V3.2",
    "qwen3-vl-235b": "Qwen3-VL-235B-A22B-Instruct",
    "qwen3-vl-235b-a22b": "Qwen3-VL-235B-A22B-Instruct",
    "kimi-k2.5": "Kimi-K2.5",
    "deepseek-v3": "DeepSeek-V3",
    "deepseek-r1": "DeepSeek-R1",
    "kimi-k2": "Kimi-K2-Instruct",
}

_BY_KEY: dict[str, ModelInfo] = {}
for _m in CATALOG:
    _BY_KEY[_m.name.lower()] = _m
    if _m.hf_id:
        _BY_KEY[_m.hf_id.lower()] = _m
for _alias, _name in _ALIASES.items():
    _BY_KEY[_alias] = _BY_KEY[_name.lower()]


def model_info(name_or_path: str) -> ModelInfo | None:
    """The model's facts from its config.json (local directory, else the Hugging Face cache), else the catalog.

    Returns None for an unknown model: callers (compat, roofline) then skip what needs the facts.
    """
    if not name_or_path:
        return None
    config_path = _config_json(name_or_path)
    if config_path is not None:
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        info = from_config(config, name=Path(name_or_path).name)
        return replace(info, hf_id=None if Path(name_or_path).is_dir() else name_or_path, source=str(config_path))
    return _catalog_entry(name_or_path)


def _config_json(name_or_path: str) -> Path | None:
    """A local directory's config.json, or the newest cached snapshot's of a Hugging Face id (no network)."""
    path = Path(name_or_path)
    if (path / "config.json").is_file():
        return path / "config.json"
    if name_or_path.count("/") != 1 or path.is_absolute():
        return None
    hf_home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    hub = Path(os.environ.get("HF_HUB_CACHE") or hf_home / "hub")
    snapshots = hub / ("models--" + name_or_path.replace("/", "--")) / "snapshots"
    found = sorted(snapshots.glob("*/config.json"), key=lambda p: p.stat().st_mtime) if snapshots.is_dir() else []
    return found[-1] if found else None


def _catalog_entry(name_or_path: str) -> ModelInfo | None:
    key = name_or_path.strip().rstrip("/").lower()
    if key in _BY_KEY:
        return _BY_KEY[key]
    last = key.rsplit("/", 1)[-1]
    return _BY_KEY.get(last)


def _get(config: dict[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        if config.get(name) is not None:
            return config[name]
    return default


def from_config(config: dict[str, Any], name: str = "") -> ModelInfo:
    """ModelInfo from a Hugging Face ``config.json`` (llama-style dense, Mixtral/Qwen-MoE, DeepSeek-style MLA+MoE).

    Parameter counts follow the weight shapes: embeddings, attention projections, gated MLP (3 matrices), norms and
    an untied LM head. Vision towers are not counted (``vision`` is set when the config has one).
    """
    vision = "vision_config" in config
    text = config.get("text_config") or config.get("language_config") or config
    quant = config.get("quantization_config") or text.get("quantization_config")
    hidden = int(_get(text, "hidden_size", "d_model"))
    layers = int(_get(text, "num_hidden_layers", "n_layers"))
    heads = int(_get(text, "num_attention_heads", "n_heads"))
    kv_heads = int(_get(text, "num_key_value_heads", default=heads))
    vocab = int(_get(text, "vocab_size", default=0))
    inter = int(_get(text, "intermediate_size", default=4 * hidden))
    mla = text.get("kv_lora_rank") is not None

    if mla:
        nope, rope = int(text["qk_nope_head_dim"]), int(text["qk_rope_head_dim"])
        v_dim, kv_rank = int(text["v_head_dim"]), int(text["kv_lora_rank"])
        q_rank = text.get("q_lora_rank")
        q = hidden * q_rank + q_rank + q_rank * heads * (nope + rope) if q_rank else hidden * heads * (nope + rope)
        attn = q + hidden * (kv_rank + rope) + kv_rank + kv_rank * heads * (nope + v_dim) + heads * v_dim * hidden
        head_dim = nope + rope
        attention: Attention = "mla"
    else:
        head_dim = int(_get(text, "head_dim", default=hidden // heads))
        attn = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
        attention = "gqa" if kv_heads < heads else "mha"

    experts = int(_get(text, "n_routed_experts", "num_local_experts", "num_experts", default=0) or 0)
    top_k = int(_get(text, "num_experts_per_tok", "moe_top_k", default=0) or 0)
    shared = int(_get(text, "n_shared_experts", default=0) or 0)
    moe_inter = int(_get(text, "moe_intermediate_size", default=inter))
    dense_layers = int(_get(text, "first_k_dense_replace", default=0)) if experts else layers
    moe_layers = layers - dense_layers

    dense_mlp = 3 * hidden * inter
    expert_mlp = 3 * hidden * moe_inter
    moe_total = experts * expert_mlp + shared * expert_mlp + hidden * experts  # + router
    moe_active = top_k * expert_mlp + shared * expert_mlp + hidden * experts
    norms = 2 * hidden
    embed = vocab * hidden
    head = 0 if text.get("tie_word_embeddings", config.get("tie_word_embeddings", False)) else vocab * hidden
    common = embed + head + hidden + layers * (attn + norms) + dense_layers * dense_mlp
    total = common + moe_layers * moe_total
    active = common + moe_layers * moe_active
    return ModelInfo(
        name=name or str(_get(config, "_name_or_path", "model_type", default="model")),
        hf_id=None,
        total_params=float(total),
        active_params=float(active),
        attention=attention,
        num_heads=heads,
        num_kv_heads=kv_heads,
        num_layers=layers,
        hidden_size=hidden,
        head_dim=head_dim,
        moe=experts > 0,
        vision=vision,
        family=str(text.get("model_type", "")),
        native_quantization=checkpoint_quantization(quant),
        fp8_incompatible=_fp8_block_incompatible(config),
        # seed 003 §4.3: AITER's MLA path takes an MXFP4 route for Kimi-K2.5, an MLA model with INT4 (QAT) weights
        aiter_mla_needs_cdna4=attention == "mla" and checkpoint_quantization(quant) == "int4",
        sparse_mla=attention == "mla" and text.get("index_topk") is not None,
        source="computed from config.json",
    )


def _fp8_block_incompatible(config: dict[str, Any]) -> bool:
    """An MLP width not divisible by FP8 block quantization's 128, in the language model or the vision tower
    (seed 003 §4.1: Qwen3-VL's ViT intermediate size 4304)."""
    sections = [config.get("text_config") or config, config.get("vision_config") or {}]
    widths = [int(s[k]) for s in sections for k in ("intermediate_size", "moe_intermediate_size") if s.get(k)]
    return any(w % 128 for w in widths)


def checkpoint_quantization(quantization_config: dict[str, Any] | None) -> str | None:
    """How a checkpoint's weights are stored, from its ``quantization_config``: fp8, mxfp4 (OpenAI's gpt-oss
    format), quark-mxfp4 (AMD Quark's OCP MXFP4), int4 / int8 (compressed-tensors, AWQ, GPTQ), or the method name."""
    if not quantization_config:
        return None
    method = str(quantization_config.get("quant_method", "")).lower()
    if method == "quark":
        text = json.dumps(quantization_config).lower()
        return "quark-mxfp4" if "fp4" in text else "quark"
    if method in ("awq", "gptq", "awq_marlin", "gptq_marlin"):
        return f"int{int(quantization_config.get('bits', 4))}"
    if method == "compressed-tensors":
        groups = quantization_config.get("config_groups") or {}
        bits = {int((g.get("weights") or {}).get("num_bits", 0)) for g in groups.values() if isinstance(g, dict)}
        kinds = {str((g.get("weights") or {}).get("type", "int")) for g in groups.values() if isinstance(g, dict)}
        if len(bits) == 1 and kinds <= {"int"}:
            return f"int{bits.pop()}"
        return "compressed-tensors"
    return method or None


__all__ = ["CATALOG", "ModelInfo", "checkpoint_quantization", "from_config", "model_info"]
