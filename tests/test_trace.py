"""Trace replay without a server: Mooncake parsing, the fixed schedule, and prefixes shared exactly by hash id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servegate.config import LoadConfig
from servegate.load.trace import read_trace, replay

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "datasets" / "mooncake-tiny.jsonl"


class WordIds:
    """Stand-in for the served tokenizer: one id per word, the same word always the same id."""

    source = "words"

    def encode(self, texts: list[str], add_special_tokens: bool = True) -> list[list[int]]:
        return [[sum(map(ord, w)) * 31 % 4093 + 1 for w in text.split()] for text in texts]


def write(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_equal_hash_ids_share_exact_token_prefixes_and_lengths_are_the_traces(tmp_path: Path) -> None:
    rows = [
        {"timestamp": 1000, "input_length": 40, "output_length": 5, "hash_ids": [1, 2, 3]},
        {"timestamp": 1500, "input_length": 35, "output_length": 7, "hash_ids": [1, 2, 9]},
        {"timestamp": 4000, "input_length": 20, "output_length": 9, "hash_ids": [7]},
        {"timestamp": 4000, "input_length": 50, "output_length": 9, "hash_ids": [7]},  # longer than its blocks
    ]
    load = LoadConfig(profile="trace", dataset="mooncake", dataset_path=str(write(tmp_path, rows)),
                      trace_block_tokens=16, num_requests=10)
    requests, schedule = replay(WordIds(), load)
    ids = [r.prompt for r in requests]
    assert [len(p) for p in ids] == [40, 35, 20, 50]
    assert [r.output_tokens for r in requests] == [5, 7, 9, 9]
    assert common_prefix(ids[0], ids[1]) >= 32  # blocks 1 and 2
    assert ids[0][32:40] != ids[1][32:40]  # block 3 vs block 9
    assert common_prefix(ids[0], ids[2]) < 4  # nothing shared
    assert ids[3][:16] == ids[2][:16]  # block 7, then request-unique padding
    assert schedule == [0.0, 0.5, 3.0, 3.0]
    fast = replay(WordIds(), LoadConfig(profile="trace", dataset="mooncake", dataset_path=load.dataset_path,
                                        trace_time_scale=0.5))[1]
    assert fast == [0.0, 0.25, 1.5, 1.5]


def test_bad_lines_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 3, "output_length": 1, "hash_ids": []}\n{"timestamp": 1}\n')
    with pytest.raises(ValueError, match=r"t\.jsonl:2: not a Mooncake trace line"):
        read_trace(path)


def test_trace_profile_needs_a_mooncake_file_and_completions() -> None:
    with pytest.raises(ValueError, match="dataset: mooncake"):
        LoadConfig(profile="trace")
    with pytest.raises(ValueError, match="completions"):
        LoadConfig(profile="trace", dataset="mooncake", dataset_path="x", endpoint="chat")


def test_the_shipped_trace_is_what_its_script_writes_and_fits_the_tiny_model() -> None:
    import subprocess
    import sys

    assert subprocess.run([sys.executable, str(REPO / "datasets" / "make_workloads.py"), "--check"]).returncode == 0
    rows = read_trace(SHIPPED)
    assert len(rows) == 48 and all(r.input_length + r.output_length <= 2048 for r in rows)
    assert len({h for r in rows for h in r.hash_ids}) < sum(len(r.hash_ids) for r in rows)  # prefixes are shared
