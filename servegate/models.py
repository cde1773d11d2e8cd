"""The models the seeds serve, with the architecture facts that compat rules and roofline floors need.

A catalog entry says how big a model is (total and per-token active parameters: decode reads the active weights once
per step, so they set the ITL floor), how it attends (MHA / GQA / MLA: MLA has ROCm constraints, seed 003 §4.4)
and its shape. ``model_info`` resolves a Hugging Face id, a short name, or a local directory; for a local directory
the parameter count is computed from its ``config.json`` so the project's tiny model needs no catalog entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
    native_quantization: str | None = None  # what the checkpoint ships as: fp8, mxfp4, int4-qat
    fp8_incompatible: bool = False  # a dimension not divisible by FP8 block-quant's 128 (seed 003 §4.1)
    aiter_mla_needs_cdna4: bool = False  # AITER's MLA path for this model uses MXFP4 (seed 003 §4.3)
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
        native_quantization="fp8",
        source="seed 003 Table 2 (685B total, ~37B active, MoE+MLA, FP8); 128 heads, 61 layers from config.json",
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
        family="kimi", native_quantization="int4-qat", aiter_mla_needs_cdna4=True,
        source="seed 003 Table 2 and §3.3 (1T total, ~32B active, 384 experts, 64 MLA heads, INT4 QAT, MoonViT)",
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
}

_BY_KEY: dict[str, ModelInfo] = {}
for _m in CATALOG:
    _BY_KEY[_m.name.lower()] = _m
    if _m.hf_id:
        _BY_KEY[_m.hf_id.lower()] = _m
for _alias, _name in _ALIASES.items():
    _BY_KEY[_alias] = _BY_KEY[_name.lower()]


def model_info(name_or_path: str) -> ModelInfo | None:
    """Catalog entry for an HF id / short name / alias, or facts computed from a local directory's config.json.

    Returns None for an unknown model: callers (compat, roofline) then skip what needs the facts.
    """
    if not name_or_path:
        return None
    path = Path(name_or_path)
    if (path / "config.json").is_file():
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return from_config(config, name=path.name)
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
        source="computed from config.json",
    )


__all__ = ["CATALOG", "ModelInfo", "from_config", "model_info"]
