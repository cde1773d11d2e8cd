"""``--shard I/N``: this runner's share of the collected cases, so N runners measure one session between them.

The split is round-robin over the sorted test ids: every runner computes the same partition from the same
checkout and options, without talking to the others, and every case lands in exactly one shard. The gate's
family is planned over all selected cases *before* the split (servegate.pytest.plugin), so each shard decides its
verdicts in the whole session's family and ``servegate merge`` can join the shards into one session.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as CI matrices count
    count: int

    @classmethod
    def parse(cls, spec: str) -> Shard:
        match = _SPEC.match(spec)
        if not match:
            raise ValueError(f"--shard {spec!r}: expected I/N with 1 <= I <= N, e.g. --shard 2/4")
        index, count = int(match[1]), int(match[2])
        if not 1 <= index <= count:
            raise ValueError(f"--shard {spec!r}: the index must be between 1 and {count} (1-based)")
        return cls(index, count)

    def select(self, test_ids: Sequence[str]) -> set[str]:
        """The ids this shard runs: every N-th of the sorted ids, starting at the I-th."""
        return set(sorted(set(test_ids))[self.index - 1 :: self.count])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
