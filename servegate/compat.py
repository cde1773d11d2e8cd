"""Known-bad combinations of model × flags × hardware × vLLM version, decided before any server starts.

A multi-hour suite should not spend 20 minutes loading a 685B model only to die on a flag the seeds already say is
incompatible. Each :class:`Rule` is data: an id, a predicate over (server config, hardware marker, model facts), an
action and a reason that cites where the constraint comes from. ``skip`` is for combinations that fail at start-up
(ValueError, KeyError, a kernel fault); ``xfail`` is for constraints the seeds themselves call version-dependent,
so a run that starts passing is reported (XPASS) instead of silently never tried.

Rules read the model's architecture (``servegate.models``: its config.json when one is at hand), never its name, and
each states the vLLM versions it holds for (a PEP 440 specifier): seed 003 measured vLLM 0.14.1 (0.16 nightly for
Kimi-K2.5); the 0.20.1 rules are read from that release's source. The version comes from the image tag
(``vllm/vllm-openai-rocm:v0.20.1``); when it cannot be known, the suites' pinned version is assumed.

``check(config, marker)`` returns every violation; the plugin turns the first ``skip`` into pytest.skip and
``xfail`` into ``pytest.mark.xfail(strict=False)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from servegate.hardware.specs import ROCM_MARKERS
from servegate.models import ModelInfo, model_info

Action = Literal["skip", "xfail"]

SEED_003 = "seed 003 (MI325X report, vLLM 0.14.1)"
SEED_004 = "seed 004 (AMD vLLM V1 tuning guide)"
VLLM_0_20_1 = "vLLM 0.20.1 source"
ASSUMED_VLLM_VERSION = "0.20.1"  # the version the shipped GPU suites' images pin (tests/test_preflight.py)
CDNA4 = ("mi350x", "mi355x")


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
    def sparse_mla(self) -> bool:
        return self.model is not None and self.model.sparse_mla

    @property
    def aiter(self) -> bool:
        """VLLM_ROCM_USE_AITER is the master switch and defaults to 0 when unset (seed 003 Table 3 note a)."""
        return _on(self.env.get("VLLM_ROCM_USE_AITER"))

    @property
    def backend(self) -> str:
        return str(
            getattr(self.config, "attention_backend", None)
            or self._arg_value("--attention-backend")
            or self.attention_config_backend
        )

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

    @property
    def weights(self) -> str:
        """How the served weights are quantized: the --quantization flag, else the checkpoint's own format."""
        native = self.model.native_quantization if self.model is not None else None
        return (self.quantization or native or "").lower()

    @property
    def attention_config_backend(self) -> str:
        """``-ac/--attention-config '{"backend": ...}'`` (vLLM 0.20+) names the backend too."""
        raw = self._arg_value("--attention-config", "-ac") or ""
        match = re.search(r'"backend"\s*:\s*"([A-Za-z0-9_]+)"', raw)
        return match.group(1) if match else ""

    @property
    def data_parallel(self) -> int:
        return int(self._arg_value("--data-parallel-size", "-dp") or 1)


def _on(value: str | None) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Rule:
    id: str
    action: Action
    applies: Callable[[Context], bool]
    reason: str
    source: str
    # PEP 440 specifier of the vLLM versions the rule holds for. Seed 003's observations (vLLM 0.14.1) that 0.20.1's
    # source does not contradict are ">=0.14"; "" is for facts of the hardware or the checkpoint, not of vLLM.
    versions: str = ""

    def holds_for(self, vllm_version: str) -> bool:
        try:
            return Version(vllm_version) in SpecifierSet(self.versions, prereleases=True)
        except InvalidVersion:
            return True


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
        versions="<0.20",
    ),
    Rule(
        "triton-mla-block-size-16-rocm",
        "skip",
        lambda c: c.rocm and c.mla and not c.sparse_mla and not c.aiter_mla and c.block_size is not None
        and c.block_size % 16 != 0,
        "without AITER's MLA kernels (VLLM_ROCM_USE_AITER=0 or VLLM_ROCM_USE_AITER_MLA=0) the only MLA backend on "
        "ROCm is TRITON_MLA, which takes block sizes in multiples of 16: drop block_size (or use 16, 64); "
        "ROCM_AITER_MLA takes any block size, 1 included",
        f"{VLLM_0_20_1}: platforms/rocm.py backend priorities, v1/attention/backends/mla/triton_mla.py "
        "(MultipleOf(16)) and rocm_aiter_mla.py (MultipleOf(1)); seed 003 Table 11 gave block size 1 for 0.16",
        versions=">=0.20",
    ),
    Rule(
        "sparse-mla-aiter-block-size-1-rocm",
        "skip",
        lambda c: c.rocm and c.sparse_mla and (c.block_size != 1 or not c.aiter),
        "DeepSeek sparse attention (DSA) on ROCm has one backend, ROCM_AITER_MLA_SPARSE: it needs AITER on "
        "(VLLM_ROCM_USE_AITER=1) and block size 1 exactly",
        f"{VLLM_0_20_1}: platforms/rocm.py (use_sparse -> ROCM_AITER_MLA_SPARSE only), "
        "v1/attention/backends/mla/rocm_aiter_mla_sparse.py (kernel block sizes [1]); seed 003 Table 11",
        versions=">=0.20",
    ),
    Rule(
        "mla-no-fp8-kv-cache-rocm",
        "skip",
        lambda c: c.rocm and c.mla and c.kv_cache_dtype.startswith("fp8"),
        "MLA cannot use --kv-cache-dtype fp8 on ROCm (the MLA backend picks fp8_ds_mla itself; fp8 is a ValueError)",
        f"{SEED_003} §4.2 'FP8 KV Cache', Table 4 notes a/d, Table 5",
        versions=">=0.14",
    ),
    Rule(
        "mla-no-kv-offloading-rocm",
        "skip",
        lambda c: c.rocm and c.mla and c.has_flag("--kv-offloading-backend", "--kv-offloading-size"),
        "MLA cannot use KV cache offloading on ROCm (KeyError at runtime)",
        f"{SEED_003} §4.2 'CPU Offloading', Table 5",
        versions=">=0.14",
    ),
    Rule(
        "aiter-mla-heads-per-rank",
        "xfail",
        lambda c: c.rocm and c.mla and c.aiter_mla and c.model is not None
        and c.model.heads_per_rank(c.tp) not in (16, 128),
        "the AITER MLA backend supports exactly 16 or 128 attention heads per rank (heads / TP); "
        "use another TP, TRITON_MLA or VLLM_ROCM_USE_AITER=0 (supported values may vary by AITER version)",
        f"{SEED_003} §3.3 Kimi-K2.5, §4.4 'Kimi-K2.5 TP=4 Constraint'",
        versions="<0.20",
    ),
    Rule(
        "aiter-mla-heads-per-rank",
        "xfail",
        lambda c: c.rocm and c.mla and c.aiter_mla and c.model is not None
        and not _multiple_or_divisor_of_16(c.model.heads_per_rank(c.tp)),
        "the AITER MLA backend takes heads per rank (heads / TP) that are multiples or divisors of 16; "
        "use another TP or TRITON_MLA",
        f"{VLLM_0_20_1}: v1/attention/backends/mla/rocm_aiter_mla.py head-count check; {SEED_003} §4.4",
        versions=">=0.20",
    ),
    Rule(
        "aiter-mla-mxfp4-needs-cdna4",
        "skip",
        lambda c: c.marker in ("mi300x", "mi325x") and c.aiter_mla and c.model is not None
        and c.model.aiter_mla_needs_cdna4,
        "AITER's MLA path for this model (MLA with INT4 weights) uses MXFP4, which needs CDNA 4 (MI350X/MI355X): "
        "'MXFP4 is not available on your device' during graph capture; run with VLLM_ROCM_USE_AITER=0 "
        "(or VLLM_ROCM_USE_AITER_MLA=0)",
        f"{SEED_003} §3.3 Kimi-K2.5, §4.3 'Model-Specific AITER Behavior', Table 3 note b",
    ),
    Rule(
        "quark-mxfp4-needs-cdna4",
        "skip",
        lambda c: c.rocm and c.marker not in CDNA4 and c.weights in ("quark-mxfp4", "mxfp4") and (
            c.weights == "quark-mxfp4" or c.quantization.lower() == "mxfp4"
        ),
        "AMD Quark MXFP4 checkpoints (and --quantization mxfp4) need MI350X/MI355X (CDNA 4) on ROCm; "
        "gpt-oss's own MXFP4 MoE weights are not affected (seed 002 serves them on MI300X)",
        f"{SEED_004} 'Quantization support' (\"MXFP4 for MI350/MI355\"); {SEED_003} §4.3",
    ),
    Rule(
        "fp8-block-quant-dims",
        "skip",
        lambda c: c.model is not None and c.model.fp8_incompatible and "fp8" in c.quantization.lower(),
        "FP8 quantization needs MLP widths divisible by the FP8 block size 128; this model has one that is not "
        "(Qwen3-VL's ViT: 4304; vLLM #30934, #26589): serve BF16",
        f"{SEED_003} §3.3 Qwen3-VL-235B, §4.1 'Vision Encoder Constraints', Table 4 note c",
        versions=">=0.14",
    ),
    Rule(
        "fp8-kv-cache-with-fp8-incompatible-model",
        "xfail",
        lambda c: c.model is not None and c.model.fp8_incompatible and c.model.vision
        and c.kv_cache_dtype.startswith("fp8"),
        "seed 003 lists FP8 KV cache as unusable for Qwen3-VL ('blocked by the vision encoder's FP8 "
        "incompatibility'), although GQA supports it architecturally",
        f"{SEED_003} Table 5 note a",
        versions=">=0.14",
    ),
    Rule(
        "deepseek-moe-vskip-off",
        "skip",
        lambda c: c.marker in ("mi300x", "mi325x") and c.aiter and c.mla and c.model is not None and c.model.moe
        and c.env.get("AITER_ENABLE_VSKIP", "1").strip().lower() not in ("0", "false"),
        "the DeepSeek-V3 architecture's (MLA + MoE) AITER fused MoE on MI300X/MI325X needs AITER_ENABLE_VSKIP=0 "
        "(default on: HSA_STATUS_ERROR_MEMORY_APERTURE_VIOLATION); add env AITER_ENABLE_VSKIP: 0",
        f"{SEED_003} §3.3 DeepSeek V3.2, §4.3 'VSKIP Configuration Requirement' (AITER #1143), Table 11",
        versions=">=0.14",
    ),
    Rule(
        "num-scheduler-steps-removed",
        "skip",
        lambda c: c.has_flag("--num-scheduler-steps"),
        "--num-scheduler-steps no longer exists in vLLM V1 (the server exits with 'unrecognized arguments'); "
        "--async-scheduling replaces it",
        f"{SEED_004} 'Scheduling' (\"--async-scheduling (replaces deprecated num_scheduler_steps)\"); "
        f"{SEED_003} Table 6 used it",
        versions=">=0.20",
    ),
    Rule(
        "awq-rocm-triton-kernels",
        "xfail",
        lambda c: c.rocm and c.weights.startswith(("awq", "int4")) and c.quantization.lower().startswith("awq")
        and c.env.get("VLLM_USE_TRITON_AWQ") != "1",
        "AWQ on ROCm runs on Triton kernels: set env VLLM_USE_TRITON_AWQ: 1",
        f"{SEED_004} 'AWQ' (VLLM_USE_TRITON_AWQ=1 to enable Triton-based AWQ kernels on ROCm)",
        versions=">=0.14",
    ),
    Rule(
        "data-parallel-rocm-all2all",
        "xfail",
        lambda c: c.rocm and c.data_parallel > 1 and (
            c.env.get("VLLM_ALL2ALL_BACKEND") != "allgather_reducescatter"
            or not c.has_flag("--disable-nccl-for-dp-synchronization")
        ),
        "data parallelism on ROCm needs env VLLM_ALL2ALL_BACKEND: allgather_reducescatter and "
        "--disable-nccl-for-dp-synchronization",
        f"{SEED_004} 'Data parallelism' (\"For ROCm, currently use VLLM_ALL2ALL_BACKEND=...\")",
        versions=">=0.14",
    ),
)


def _multiple_or_divisor_of_16(heads: float) -> bool:
    return heads == int(heads) and heads >= 1 and (int(heads) % 16 == 0 or 16 % int(heads) == 0)


def vllm_version_of(config: Any) -> str | None:
    """The vLLM version a config will run, when its image tag says it (``...:v0.20.1``, ``...:0.20.1-rocm``)."""
    match = re.search(r":v?(\d+\.\d+\.\d+)", str(getattr(config, "image", None) or ""))
    return match.group(1) if match else None


def check(
    config: Any,
    marker: str,
    model: ModelInfo | None = None,
    vllm_version: str | None = None,
    rules: tuple[Rule, ...] = RULES,
) -> list[Violation]:
    """Every rule ``config`` violates on ``marker`` with that vLLM version; skips first. ``model`` defaults to the
    model's config.json facts (servegate.models); the version to the image tag's, else ASSUMED_VLLM_VERSION."""
    info = model if model is not None else model_info(str(getattr(config, "model", "") or ""))
    version = vllm_version or vllm_version_of(config) or ASSUMED_VLLM_VERSION
    context = Context(config, marker, info)
    found = [
        Violation(r.action, r.id, f"{r.reason} [{r.source}; holds for vLLM {r.versions or 'all versions'}]")
        for r in rules
        if r.holds_for(version) and r.applies(context)
    ]
    return sorted(found, key=lambda v: v.action != "skip")


__all__ = ["RULES", "Context", "Rule", "Violation", "check", "vllm_version_of"]
