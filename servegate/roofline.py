"""Physical floors: the latency no software can beat on a given GPU, so a measurement reads as "x times the floor".

Decode is memory-bound: every generated token reads the active weights once from HBM, so
``ITL >= active params x bytes per param / aggregate HBM bandwidth`` (seed 000: "144GB of weights divided by 5.3 TB/s
bandwidth equals roughly 27ms per token"). Prefill is compute-bound: a forward pass over P prompt tokens costs about
``2 x active params x P`` FLOPs, so ``TTFT >= that / aggregate peak FLOP/s``. Both ignore attention, KV-cache reads,
kernel launches and scheduling, which only add time: they are lower bounds, never estimates.

The core functions take plain numbers so they work without a model or hardware database; ``floors_for_case`` is
the thin bridge to ``servegate.models`` / ``servegate.hardware`` when those are importable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Weight bytes per parameter by dtype, quantization method or checkpoint format (servegate.models), scales included:
# MXFP4 stores 32 4-bit values with one 8-bit shared exponent (4.25 bits); NVFP4 16 values with an FP8 scale (4.5
# bits); INT4 checkpoints (compressed-tensors, Kimi's QAT) group 32 values with a BF16 scale (0.5 B + 2/32 B);
# AWQ/GPTQ group 128 with a BF16 scale and a 4-bit zero point. Applied to every active parameter although attention,
# embeddings and the LM head usually stay BF16: the floor can only come out low, which a floor may.
BYTES_PER_PARAM: dict[str, float] = {
    "float32": 4.0,
    "fp32": 4.0,
    "bfloat16": 2.0,
    "bf16": 2.0,
    "float16": 2.0,
    "fp16": 2.0,
    "half": 2.0,
    "fp8": 1.0,
    "ptpc_fp8": 1.0,
    "fp8_e4m3": 1.0,
    "fbgemm_fp8": 1.0,
    "int8": 1.0,
    "w8a8": 1.0,
    "mxfp4": 4.25 / 8,
    "quark-mxfp4": 4.25 / 8,
    "quark_mxfp4": 4.25 / 8,
    "nvfp4": 4.5 / 8,
    "int4": 0.5 + 2 / 32,
    "awq": 0.5 + (2 + 0.5) / 128,
    "gptq": 0.5 + (2 + 0.5) / 128,
}


def bytes_per_param(
    dtype: str | None = None, quantization: str | None = None, checkpoint: str | None = None
) -> float | None:
    """Quantization decides the weight bytes when set; else the checkpoint's own format (``checkpoint``, from its
    config.json: gpt-oss ships MXFP4, DeepSeek FP8, Kimi INT4); else the dtype ("auto" with no format: bf16).

    Returns None for methods whose width we do not know (e.g. ``compressed-tensors`` can be anything), because a
    guessed width would make the floor wrong by 2-4x.
    """
    if quantization:
        return BYTES_PER_PARAM.get(quantization.lower())
    if dtype in (None, "", "auto"):
        return BYTES_PER_PARAM.get(checkpoint.lower()) if checkpoint else 2.0
    return BYTES_PER_PARAM.get(dtype.lower())


def decode_itl_floor_s(active_params: float, bytes_per_param: float, hbm_tbps: float, tp: int = 1) -> float:
    """Seconds per decode step: active weight bytes over the bandwidth of all ``tp`` GPUs reading their shards."""
    if active_params <= 0 or bytes_per_param <= 0 or hbm_tbps <= 0 or tp < 1:
        raise ValueError("active_params, bytes_per_param, hbm_tbps must be > 0 and tp >= 1")
    return active_params * bytes_per_param / (hbm_tbps * 1e12 * tp)


def prefill_floor_s(active_params: float, prompt_tokens: int, peak_tflops: float, tp: int = 1) -> float:
    """Seconds to prefill ``prompt_tokens`` at the peak dense FLOP rate of ``tp`` GPUs (2 FLOPs per param-token)."""
    if active_params <= 0 or prompt_tokens < 0 or peak_tflops <= 0 or tp < 1:
        raise ValueError("active_params, peak_tflops must be > 0, prompt_tokens >= 0 and tp >= 1")
    return 2.0 * active_params * prompt_tokens / (peak_tflops * 1e12 * tp)


@dataclass(frozen=True)
class Floors:
    """The floors of one case and the inputs they came from, so the report can show its arithmetic."""

    itl_floor_ms: float | None
    prefill_floor_ms: float | None
    active_params: float
    bytes_per_param: float | None
    hbm_tbps: float | None
    peak_tflops: float | None
    tp: int
    prompt_tokens: int | None


def floors(
    active_params: float,
    bytes_per_param_: float | None,
    hbm_tbps: float | None,
    peak_tflops: float | None,
    tp: int = 1,
    prompt_tokens: int | None = None,
) -> Floors:
    """Both floors where their inputs are known; a missing input leaves that floor None rather than guessed."""
    itl = (
        decode_itl_floor_s(active_params, bytes_per_param_, hbm_tbps, tp) * 1000.0
        if bytes_per_param_ and hbm_tbps
        else None
    )
    pre = (
        prefill_floor_s(active_params, prompt_tokens, peak_tflops, tp) * 1000.0
        if peak_tflops and prompt_tokens
        else None
    )
    return Floors(itl, pre, active_params, bytes_per_param_, hbm_tbps, peak_tflops, tp, prompt_tokens)


def _field(obj: Any, *names: str) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _params(info: Any) -> float | None:
    """Active parameters as a count, accepting ``active_params`` (count) or ``active_params_b`` (billions)."""
    count = _field(info, "active_params", "active_parameters")
    if count is not None:
        return float(count)
    billions = _field(info, "active_params_b", "active_b")
    if billions is not None:
        return float(billions) * 1e9
    total = _field(info, "total_params", "params")  # a dense model's active parameters are all of them
    return float(total) if total is not None else None


def _default_model_lookup() -> Callable[[str], Any] | None:
    try:
        from servegate.models import model_info  # type: ignore[import-not-found]
    except ImportError:
        return None
    return model_info


def _default_spec_lookup() -> Callable[[str], Any] | None:
    """The exact part's figures when the case ran on this machine's kind of GPU (the report a run writes at its end;
    an H100 PCIe must not get the SXM's bandwidth), else the marker's."""
    try:
        from servegate.hardware.detect import detected  # type: ignore[import-not-found]
        from servegate.hardware.specs import spec_for  # type: ignore[import-not-found]
    except ImportError:
        return None

    def lookup(marker: str) -> Any:
        here = detected()
        return spec_for(here.name, marker=marker) if here.marker == marker else spec_for(marker=marker)

    return lookup


def floors_for_case(
    case: Mapping[str, Any],
    model_lookup: Callable[[str], Any] | None = None,
    spec_lookup: Callable[[str], Any] | None = None,
) -> Floors | None:
    """Floors for a results-document case, or None when the model or the hardware is unknown (e.g. the CPU).

    The lookups default to ``servegate.models.model_info`` and ``servegate.hardware.specs.SPECS`` when those modules
    exist; tests and other callers pass their own so this module does not depend on them.
    """
    model_lookup = model_lookup or _default_model_lookup()
    spec_lookup = spec_lookup or _default_spec_lookup()
    if model_lookup is None or spec_lookup is None:
        return None
    server = case.get("server") or {}
    try:
        info = model_lookup(str(server.get("model", "")))
        spec = spec_lookup(str(case.get("hardware", "")))
    except (KeyError, LookupError, ValueError):
        return None
    if info is None or spec is None:
        return None
    active = _params(info)
    if not active:
        return None
    bpp = bytes_per_param(server.get("dtype"), server.get("quantization"), _field(info, "native_quantization"))
    # The compute peak is the fastest the part has at or above the weight precision: a 4-bit model on a GPU without
    # FP4 units computes in FP8 at best. Taking the fastest keeps the prefill floor a lower bound.
    if bpp is None:
        peak = None
    elif bpp < 1:
        peak = _field(spec, "fp4_tflops", "mxfp4_tflops", "fp8_tflops", "bf16_tflops")
    elif bpp < 2:
        peak = _field(spec, "fp8_tflops", "bf16_tflops")
    else:
        peak = _field(spec, "bf16_tflops", "fp16_tflops")
    load = case.get("load") or {}
    prompt = load.get("prompt_tokens")
    return floors(
        active,
        bpp,
        _field(spec, "hbm_tbps"),
        peak,
        int(server.get("tensor_parallel_size") or 1),
        int(prompt) if prompt else None,
    )
