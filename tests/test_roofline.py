"""Physical floors against seed 000's worked example and the arithmetic's scaling laws."""

from __future__ import annotations

import pytest

from servegate.roofline import bytes_per_param, decode_itl_floor_s, floors_for_case, prefill_floor_s


def test_seed_000_72b_bf16_on_one_mi300x_is_about_27_ms() -> None:
    # "144GB of weights divided by 5.3 TB/s bandwidth equals roughly 27ms per token"
    floor_ms = decode_itl_floor_s(72e9, bytes_per_param("bfloat16"), 5.3) * 1000
    assert floor_ms == pytest.approx(144e9 / 5.3e12 * 1000)
    assert 26.5 < floor_ms < 27.5


def test_tensor_parallel_divides_the_decode_floor() -> None:
    one = decode_itl_floor_s(70e9, 2, 5.3, tp=1)
    assert decode_itl_floor_s(70e9, 2, 5.3, tp=8) == pytest.approx(one / 8)


def test_precision_scales_the_floor() -> None:
    bf16 = decode_itl_floor_s(37e9, bytes_per_param("auto"), 6.0)
    fp8 = decode_itl_floor_s(37e9, bytes_per_param("auto", "fp8"), 6.0)
    fp4 = decode_itl_floor_s(37e9, bytes_per_param(None, "mxfp4"), 6.0)
    assert fp8 == pytest.approx(bf16 / 2)
    assert fp4 == pytest.approx(bf16 * 4.25 / 16)  # 4-bit values plus one 8-bit scale per 32: 4.25 bits


def test_unknown_width_is_none_not_a_guess() -> None:
    assert bytes_per_param("auto", "compressed-tensors") is None
    assert bytes_per_param("weird-dtype") is None


def test_prefill_floor_is_two_flops_per_param_token() -> None:
    s = prefill_floor_s(8e9, 512, 1307.4)
    assert s == pytest.approx(2 * 8e9 * 512 / 1307.4e12)
    assert prefill_floor_s(8e9, 1024, 1307.4) == pytest.approx(2 * s)


@pytest.mark.parametrize("args", [(0, 2, 5.3), (1e9, 2, 0), (1e9, 2, 5.3, 0)])
def test_nonsense_inputs_raise(args: tuple) -> None:
    with pytest.raises(ValueError):
        decode_itl_floor_s(*args)


def _case(hardware: str = "mi300x", quantization: str | None = None, tp: int = 1) -> dict:
    return {
        "hardware": hardware,
        "server": {"model": "m", "dtype": "auto", "quantization": quantization, "tensor_parallel_size": tp},
        "load": {"prompt_tokens": 1000},
    }


SPEC = {"mi300x": {"hbm_tbps": 5.3, "bf16_tflops": 1307.4, "fp8_tflops": 2614.9}}


def test_floors_for_case_with_injected_lookups() -> None:
    models = {"m": {"total_params": 72e9}}  # dense: active = total
    f = floors_for_case(_case(), models.get, SPEC.get)
    assert f is not None and f.itl_floor_ms == pytest.approx(144e9 / 5.3e12 * 1000)
    assert f.prefill_floor_ms == pytest.approx(2 * 72e9 * 1000 / 1307.4e12 * 1000)
    fp8 = floors_for_case(_case(quantization="fp8", tp=2), models.get, SPEC.get)
    assert fp8 is not None and fp8.itl_floor_ms == pytest.approx(f.itl_floor_ms / 4)
    assert fp8.prefill_floor_ms == pytest.approx(f.prefill_floor_ms / 4, rel=1e-3)  # fp8 peak ~2x, TP 2


def test_moe_uses_active_params() -> None:
    models = {"m": {"total_params": 685e9, "active_params": 37e9}}
    f = floors_for_case(_case(), models.get, SPEC.get)
    assert f is not None and f.active_params == 37e9


def test_unknown_model_or_hardware_gives_no_floor() -> None:
    models = {"m": {"total_params": 72e9}}
    assert floors_for_case(_case(hardware="cpu"), models.get, SPEC.get) is None
    assert floors_for_case(_case(), {}.get, SPEC.get) is None


def test_works_with_the_real_hardware_table() -> None:
    specs = pytest.importorskip("servegate.hardware.specs")
    f = floors_for_case(_case(), {"m": {"total_params": 72e9}}.get, specs.SPECS.get)
    assert f is not None and 26.5 < f.itl_floor_ms < 27.5


def test_the_checkpoints_own_quantization_sets_the_weight_bytes() -> None:
    """gpt-oss-120b ships MXFP4 MoE weights and Kimi-K2.5 INT4 (QAT): with --dtype auto and no --quantization the
    floor must use their widths, not BF16's 2 bytes (which would put the "floor" 3.5-3.8x above the real one)."""
    from servegate.hardware.specs import SPECS
    from servegate.models import model_info

    gpt_oss = {"hardware": "mi300x", "server": {"model": "openai/gpt-oss-120b", "dtype": "auto"},
               "load": {"prompt_tokens": 1024}}
    floors = floors_for_case(gpt_oss, model_info, SPECS.get)
    assert floors is not None and floors.bytes_per_param == pytest.approx(4.25 / 8)
    assert floors.itl_floor_ms == pytest.approx(5.1e9 * 4.25 / 8 / 5.3e12 * 1000)
    assert floors.peak_tflops == SPECS["mi300x"].fp8_tflops  # no FP4 units on CDNA 3: FP8 is its fastest
    kimi = {"hardware": "mi325x", "server": {"model": "moonshotai/Kimi-K2.5", "tensor_parallel_size": 4}}
    assert floors_for_case(kimi, model_info, SPECS.get).bytes_per_param == pytest.approx(0.5 + 2 / 32)
    deepseek = {"hardware": "mi325x", "server": {"model": "deepseek-ai/DeepSeek-V3.2", "quantization": "fp8"}}
    assert floors_for_case(deepseek, model_info, SPECS.get).bytes_per_param == 1.0


@pytest.mark.parametrize(
    ("name", "device_id", "hbm_gb", "hbm_tbps"),
    [
        ("NVIDIA H100 80GB HBM3", None, 80, 3.35),
        ("NVIDIA H100 NVL", None, 94, 3.9),
        ("NVIDIA H100 PCIe", None, 80, 2.0),
        ("NVIDIA A100-PCIE-40GB", None, 40, 1.555),
        ("NVIDIA A100-SXM4-80GB", None, 80, 2.039),
        ("NVIDIA A100 80GB PCIe", None, 80, 1.935),
        ("AMD Instinct MI300X VF", None, 192, 5.3),
        ("AMD Radeon Graphics", "0x74b5", 192, 5.3),  # a cloud VM's MI300X VF with a generic market name
    ],
)
def test_spec_lookup_by_exact_sku_and_pci_id(name: str, device_id: str | None, hbm_gb: float, hbm_tbps: float) -> None:
    from servegate.hardware.specs import spec_for

    spec = spec_for(name, device_id)
    assert spec is not None and (spec.hbm_gb, spec.hbm_tbps) == (hbm_gb, hbm_tbps)


def test_the_default_lookup_uses_this_machines_exact_part(monkeypatch) -> None:
    """A case measured on this machine's kind of GPU gets this part's figures: an H100 PCIe host, not the SXM's."""
    import servegate.hardware.detect as hw
    from servegate.models import model_info

    pcie = hw.HardwareInfo(vendor="nvidia", marker="h100", name="NVIDIA H100 PCIe", arch="sm_90", count=1,
                           memory_gb=80.0, source="nvidia-smi (faked by the test)")
    monkeypatch.setitem(hw._CACHE, "hw", pcie)
    case = {"hardware": "h100", "server": {"model": "meta-llama/Llama-3.1-405B-Instruct", "quantization": "fp8"}}
    assert floors_for_case(case, model_info).hbm_tbps == 2.0
    assert floors_for_case({**case, "hardware": "mi300x"}, model_info).hbm_tbps == 5.3
