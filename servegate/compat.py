"""Known-bad combinations of model × flags × hardware, decided before any server starts.

A multi-hour suite should not spend 20 minutes loading a 685B model only to die on a flag the seeds already say is
incompatible. Each :class:`Rule` is data: an id, a predicate over (server config, hardware marker, model facts), an
action and a reason that cites where the constraint comes from. ``skip`` is for combinations that fail at start-up
(ValueError, KeyError, a kernel fault); ``xfail`` is for constraints the seeds themselves call version-dependent,
so a run that starts passing is reported (XPASS) instead of silently never tried.

``check(config, marker)`` returns every violation; the plugin turns the first ``skip`` into pytest.skip and
``xfail`` into ``pytest.mark.xfail(strict=False)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from servegate.hardware import ROCM_MARKERS
from servegate.models import ModelInfo, model_info

Action = Literal["skip", "xfail"]

SEED_003 = "seed 003 (MI325X report, vLLM 0.14.1)"
SEED_004 = "seed 004 (AMD vLLM V1 tuning guide)"


@dataclass(frozen=True)
class Context:
    """What a rule looks at. ``model`` is None for a model the catalog does not know (rules needing it pass)."""

    config: Any  # servegate.config.ServerConfig (duck-typed: rules read fields with getattr)
    marker: str
    model: ModelInfo | None

    @property
    def env(self) -> dict[str, str]:
        return dict(getattr(self.config, "env", ()) or ())

    @property
    def args(self) -> list[str]:
        return [str(a) for a in getattr(self.config, "extra_args", ()) or ()]

    @property
    def rocm(self) -> bool:
        return self.marker in ROCM_MARKERS

    @property
    def mla(self) -> bool:
        return self.model is not None and self.model.attention == "mla"

    @property
    def aiter(self) -> bool:
        """VLLM_ROCM_USE_AITER is the master switch and defaults to 0 when unset (seed 003 Table 3 note a)."""
        return _on(self.env.get("VLLM_ROCM_USE_AITER"))

    @property
    def backend(self) -> str:
        return str(getattr(self.config, "attention_backend", None) or self._arg_value("--attention-backend") or "")

    @property
    def aiter_mla(self) -> bool:
        """AITER's MLA kernels are in use: selected explicitly, or auto-selected with AITER and its MLA sub-flag on."""
        if self.backend:
            return self.backend.upper() == "ROCM_AITER_MLA"
        return self.aiter and self.env.get("VLLM_ROCM_USE_AITER_MLA", "1") != "0"

    @property
    def tp(self) -> int:
        value = getattr(self.config, "tensor_parallel_size", None) or self._arg_value("--tensor-parallel-size", "-tp")
        return int(value or 1)

    def _arg_value(self, *flags: str) -> str | None:
        args = self.args
        for i, arg in enumerate(args):
            for flag in flags:
                if arg == flag and i + 1 < len(args):
                    return args[i + 1]
                if arg.startswith(flag + "="):
                    return arg.split("=", 1)[1]
        return None

    def has_flag(self, *prefixes: str) -> bool:
        return any(a == p or a.startswith(p + "=") for a in self.args for p in prefixes)

    @property
    def block_size(self) -> int | None:
        value = getattr(self.config, "block_size", None) or self._arg_value("--block-size")
        return int(value) if value is not None else None

    @property
    def kv_cache_dtype(self) -> str:
        return str(getattr(self.config, "kv_cache_dtype", None) or self._arg_value("--kv-cache-dtype") or "")

    @property
    def quantization(self) -> str:
        return str(getattr(self.config, "quantization", None) or self._arg_value("--quantization", "-q") or "")


def _on(value: str | None) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Rule:
    id: str
    action: Action
    applies: Callable[[Context], bool]
    reason: str
    source: str


@dataclass(frozen=True)
class Violation:
    action: Action
    rule_id: str
    reason: str  # one line, with its source: what the pytest skip/xfail shows

    def __str__(self) -> str:
        return f"{self.rule_id}: {self.reason}"


RULES: tuple[Rule, ...] = (
    Rule(
        "mla-block-size-1-rocm",
        "skip",
        lambda c: c.rocm and c.mla and c.block_size != 1,
        "MLA models need --block-size 1 on ROCm (set block_size: 1)",
        f"{SEED_003} §3.3, §4.4 'Block Size', Tables 3/5/11; {SEED_004} DeepSeek-V3.2 quick start",
    ),
    Rule(
        "mla-no-fp8-kv-cache-rocm",
        "skip",
        lambda c: c.rocm and c.mla and c.kv_cache_dtype.startswith("fp8"),
        "MLA cannot use --kv-cache-dtype fp8 on ROCm (the MLA backend picks fp8_ds_mla itself; fp8 is a ValueError)",
        f"{SEED_003} §4.2 'FP8 KV Cache', Table 4 notes a/d, Table 5",
    ),
    Rule(
        "mla-no-kv-offloading-rocm",
        "skip",
        lambda c: c.rocm and c.mla and c.has_flag("--kv-offloading-backend", "--kv-offloading-size"),
        "MLA cannot use KV cache offloading on ROCm (KeyError at runtime)",
        f"{SEED_003} §4.2 'CPU Offloading', Table 5",
    ),
    Rule(
        "aiter-mla-heads-per-rank",
        "xfail",
        lambda c: c.rocm and c.mla and c.aiter_mla and c.model is not None
        and c.model.heads_per_rank(c.tp) not in (16, 128),
        "the AITER MLA backend supports exactly 16 or 128 attention heads per rank (heads / TP); "
        "use another TP, TRITON_MLA or VLLM_ROCM_USE_AITER=0 (supported values may vary by AITER version)",
        f"{SEED_003} §3.3 Kimi-K2.5, §4.4 'Kimi-K2.5 TP=4 Constraint'",
    ),
    Rule(
        "aiter-mla-mxfp4-needs-cdna4",
        "skip",
        lambda c: c.marker in ("mi300x", "mi325x") and c.aiter and c.model is not None
        and c.model.aiter_mla_needs_cdna4,
        "AITER's MLA path for this model uses MXFP4, which needs CDNA 4 (MI350X/MI355X): 'MXFP4 is not available on "
        "your device' during graph capture; run with VLLM_ROCM_USE_AITER=0",
        f"{SEED_003} §3.3 Kimi-K2.5, §4.3 'Model-Specific AITER Behavior', Table 3 note b",
    ),
    Rule(
        "mxfp4-needs-mi350",
        "skip",
        lambda c: c.marker not in ("mi350x", "mi355x")
        and ("mxfp4" in c.quantization.lower() or "mxfp4" in str(getattr(c.config, "model", "")).lower()),
        "MXFP4-quantized models (AMD Quark *-MXFP4) need MI350X/MI355X (CDNA 4)",
        f"{SEED_004} 'Quantization support' (\"MXFP4 for MI350/MI355\"); {SEED_003} §4.3",
    ),
    Rule(
        "qwen3-vl-no-fp8-weights",
        "skip",
        lambda c: c.model is not None and c.model.fp8_incompatible and "fp8" in c.quantization.lower(),
        "Qwen3-VL cannot use FP8 quantization: its ViT MLP dimension 4304 is not divisible by FP8 block size 128 "
        "(ROCm and CUDA alike, vLLM #30934, #26589); serve BF16",
        f"{SEED_003} §3.3 Qwen3-VL-235B, §4.1 'Vision Encoder Constraints', Table 4 note c",
    ),
    Rule(
        "qwen3-vl-no-fp8-kv-cache",
        "xfail",
        lambda c: c.model is not None and c.model.fp8_incompatible and c.kv_cache_dtype.startswith("fp8"),
        "seed 003 lists FP8 KV cache as unusable for Qwen3-VL ('blocked by the vision encoder's FP8 "
        "incompatibility'), although GQA supports it architecturally",
        f"{SEED_003} Table 5 note a",
    ),
    Rule(
        "deepseek-moe-vskip-off",
        "skip",
        lambda c: c.marker in ("mi300x", "mi325x") and c.aiter and c.model is not None
        and c.model.family == "deepseek" and c.env.get("AITER_ENABLE_VSKIP", "1").strip().lower() not in ("0", "false"),
        "DeepSeek's AITER fused MoE on MI300X/MI325X needs AITER_ENABLE_VSKIP=0 (default on: "
        "HSA_STATUS_ERROR_MEMORY_APERTURE_VIOLATION); add env AITER_ENABLE_VSKIP: 0",
        f"{SEED_003} §3.3 DeepSeek V3.2, §4.3 'VSKIP Configuration Requirement' (AITER #1143), Table 11",
    ),
)


def check(config: Any, marker: str, model: ModelInfo | None = None, rules: tuple[Rule, ...] = RULES) -> list[Violation]:
    """Every rule ``config`` violates on ``marker``; skips first. ``model`` defaults to the catalog's entry."""
    info = model if model is not None else model_info(str(getattr(config, "model", "") or ""))
    context = Context(config, marker, info)
    found = [Violation(r.action, r.id, f"{r.reason} [{r.source}]") for r in rules if r.applies(context)]
    return sorted(found, key=lambda v: v.action != "skip")


__all__ = ["RULES", "Context", "Rule", "Violation", "check"]
