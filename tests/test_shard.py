"""--shard I/N: a deterministic partition of the collected test ids, the same on every runner."""

from __future__ import annotations

import random

import pytest

from servegate.shard import Shard

IDS = [f"suites/test_serving.py::test_serving[cpu/model-{i}/c{c}]" for i in range(7) for c in (1, 8)]


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_shards_partition_the_ids_evenly_whatever_the_collection_order(count: int) -> None:
    shuffled = IDS[:]
    random.Random(count).shuffle(shuffled)
    parts = [Shard(i, count).select(IDS) for i in range(1, count + 1)]
    assert parts == [Shard(i, count).select(shuffled) for i in range(1, count + 1)]  # order does not matter
    assert set().union(*parts) == set(IDS) and sum(len(p) for p in parts) == len(IDS)  # each id exactly once
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [("2", "expected I/N"), ("0/2", "between 1 and 2"), ("3/2", "between 1 and 2"), ("a/b", "expected I/N")],
)
def test_a_bad_spec_names_the_expected_form(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Shard.parse(spec)


def test_parse() -> None:
    assert Shard.parse(" 2 / 4 ") == Shard(2, 4) and str(Shard(2, 4)) == "2/4"
