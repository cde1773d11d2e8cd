"""Arrival schedules and level plans: the pacing half of every profile, checked without a server."""

from __future__ import annotations

import numpy as np
import pytest

from servegate.config import LoadConfig
from servegate.load import profiles


def test_closed_loop_profiles_have_no_schedule() -> None:
    for kind in ("synchronous", "concurrent", "saturation"):
        assert profiles.arrival_offsets(kind, None, 10) is None


def test_constant_rate_is_evenly_spaced() -> None:
    assert profiles.arrival_offsets("constant", 4.0, 5) == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])


@pytest.mark.parametrize(("kind", "burstiness"), [("poisson", 1.0), ("gamma", 0.25), ("gamma", 4.0)])
def test_random_arrivals_keep_the_mean_rate_and_are_seeded(kind: str, burstiness: float) -> None:
    a = profiles.arrival_offsets(kind, 50.0, 20_000, burstiness, seed=7)
    assert a == profiles.arrival_offsets(kind, 50.0, 20_000, burstiness, seed=7)
    assert a != profiles.arrival_offsets(kind, 50.0, 20_000, burstiness, seed=8)
    gaps = np.diff(a)
    assert gaps.min() >= 0 and a[0] == 0.0
    assert gaps.mean() == pytest.approx(1 / 50.0, rel=0.05)
    # gamma(shape k) intervals have coefficient of variation 1/sqrt(k): burstier below 1, more regular above
    assert gaps.std() / gaps.mean() == pytest.approx(1 / np.sqrt(burstiness), rel=0.1)


@pytest.mark.parametrize(("kind", "burstiness"), [("constant", 1.0), ("poisson", 1.0), ("gamma", 0.5)])
def test_vllm_bench_spacing_delays_the_first_request_and_ends_at_n_over_rate(kind: str, burstiness: float) -> None:
    # vllm bench serve's get_request: every request, the first too, waits a sampled interval; the sum is rescaled
    a = profiles.arrival_offsets(kind, 8.0, 400, burstiness, seed=3, vllm_bench=True)
    assert a is not None and len(a) == 400
    assert a[0] > 0 and a[-1] == pytest.approx(400 / 8.0)
    assert np.diff(a).min() >= 0
    if kind == "constant":
        assert a[:3] == pytest.approx([0.125, 0.25, 0.375])


def test_rate_profiles_need_a_rate() -> None:
    with pytest.raises(ValueError):
        profiles.arrival_offsets("poisson", None, 3)
    with pytest.raises(ValueError):
        LoadConfig(profile="gamma", rate=None)


def test_sweep_rates_lie_strictly_between_sync_and_max() -> None:
    rates = profiles.sweep_rates(1.0, 9.0, 3)
    assert rates == pytest.approx([3.0, 5.0, 7.0])
    # a start whose concurrent level was no faster than one stream keeps the same levels (paired by label)
    assert profiles.sweep_rates(5.0, 4.0, 3) == pytest.approx([4.25, 4.5, 4.75])
    assert profiles.sweep_rates(0.0, 4.0, 3) == []  # a bound that measured nothing


def test_saturation_levels_and_stop_rule() -> None:
    assert profiles.saturation_levels(LoadConfig(concurrency=4)) == [4, 8, 16, 32, 64]
    assert profiles.saturation_levels(LoadConfig(concurrency_levels=(32, 8, 16, 8))) == [8, 16, 32]
    assert not profiles.saturated(100.0, None)
    assert not profiles.saturated(105.0, 100.0)
    assert profiles.saturated(104.9, 100.0)


def test_new_load_fields_validate() -> None:
    with pytest.raises(ValueError, match="dataset_path"):
        LoadConfig(dataset="sharegpt")
    with pytest.raises(ValueError, match="chat"):
        LoadConfig(dataset="images")
    with pytest.raises(ValueError, match="workers"):
        LoadConfig(workers=0)
    assert LoadConfig(dataset="images", endpoint="chat", image_size=(64, 32)).image_size == (64, 32)
    assert LoadConfig().id == "c8-in128-out64"  # defaults leave stored baseline ids alone
