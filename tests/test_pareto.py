"""Interactivity vs throughput: the front, the interpolated throughput at an interactivity, and NaN outside."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from servegate.pareto import Front, Point, front_of, point_of


def level(label: str, tpot_ms: float, tok_s: float) -> SimpleNamespace:
    return SimpleNamespace(label=label, summary=SimpleNamespace(tpot=SimpleNamespace(median=tpot_ms),
                                                                output_throughput=tok_s))


def test_the_front_drops_dominated_levels_and_is_ordered_by_interactivity() -> None:
    pts = [Point("c1", 100, 100), Point("c4", 50, 300), Point("c8", 40, 250), Point("c16", 20, 600)]
    assert [p.label for p in front_of(pts)] == ["c16", "c4", "c1"]  # c8: c4 is more interactive and faster


def test_throughput_at_an_interactivity_interpolates_on_the_front_per_gpu() -> None:
    front = Front.of([level("c1", 10.0, 100.0), level("c4", 20.0, 300.0), level("c16", 50.0, 600.0)], gpus=2)
    # c1: 100 tok/s/user, 50 tok/s/GPU; c4: 50, 150; c16: 20, 300
    assert front.throughput_at(75.0) == pytest.approx(100.0)
    assert front.throughput_at(20.0) == pytest.approx(300.0)
    assert math.isnan(front.throughput_at(10.0)) and math.isnan(front.throughput_at(200.0))
    assert front.to_dict()["front"] == ["c16", "c4", "c1"]


def test_a_slower_build_reads_lower_at_the_same_interactivity() -> None:
    base = Front.of([level("c1", 10.0, 100.0), level("c8", 40.0, 400.0)], gpus=1)
    slow = Front.of([level("c1", 12.0, 83.0), level("c8", 48.0, 333.0)], gpus=1)
    assert slow.throughput_at(50.0) < base.throughput_at(50.0)


def test_levels_without_tpot_are_not_points() -> None:
    assert point_of("x", math.nan, 10.0, 1) is None
    assert point_of("x", 0.0, 10.0, 1) is None
