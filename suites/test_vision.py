"""Vision: chat requests with synthetic document images at fixed concurrency (seed 000 phase B shape)."""

from __future__ import annotations

from fixtures.checks import assert_levels_succeeded

SUITE = "vision"


def test_vision(case, bench) -> None:
    assert case.load.endpoint == "chat", "vision cases must use the chat endpoint"
    result = bench.run(case)
    assert_levels_succeeded(result)
