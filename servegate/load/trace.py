"""Trace replay: a Mooncake-format JSONL trace sent on its own fixed schedule, with real shared prefixes.

Each line is ``{"timestamp": ms, "input_length": tokens, "output_length": tokens, "hash_ids": [...]}`` (the format
of the Mooncake traces that GuideLLM, AIPerf and vLLM's benchmarks replay). Hash id ``h`` names one block of
``trace_block_tokens`` prompt tokens (512 in Mooncake); two requests that list the same hash ids in the same order
share that many tokens of prompt prefix, which is what makes a trace exercise the prefix cache as production did.
Prompts are sent as token ids to /v1/completions, so the shared prefixes are exact token for token and the prompt
lengths are exactly the trace's, whatever the tokenizer would have merged. Requests leave at the trace's timestamps
(relative to the first, times ``trace_time_scale``) whether or not earlier ones have finished: an open loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from servegate.config import LoadConfig
from servegate.load.client import Request
from servegate.load.prompts import Tokenizer, corpus_text


@dataclass(frozen=True)
class TraceRow:
    timestamp_ms: float
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...]


def read_trace(path: str | Path) -> list[TraceRow]:
    """Rows in file order; a malformed line is an error naming the line, never silently skipped."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            row = TraceRow(
                float(item["timestamp"]),
                int(item["input_length"]),
                int(item["output_length"]),
                tuple(int(h) for h in item.get("hash_ids", ())),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{path}:{n}: not a Mooncake trace line (need timestamp, input_length, output_length, hash_ids): {exc}"
            ) from exc
        if row.input_length < 1 or row.output_length < 1:
            raise ValueError(f"{path}:{n}: input_length and output_length must be >= 1")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: empty trace")
    return rows


def schedule(rows: list[TraceRow], time_scale: float = 1.0) -> list[float]:
    """Seconds after the first request at which each request is due."""
    t0 = rows[0].timestamp_ms
    return [max(0.0, (r.timestamp_ms - t0) / 1000.0 * time_scale) for r in rows]


class BlockSource:
    """Token blocks by hash id: a tag that makes block ``h`` unique, then corpus tokens from an offset set by ``h``."""

    def __init__(self, tok: Tokenizer, block_tokens: int, salt: int = 0) -> None:
        self.body = tok.encode([corpus_text()], add_special_tokens=False)[0]
        while len(self.body) < 4 * block_tokens:
            self.body += self.body
        self.tok = tok
        self.block_tokens = block_tokens
        self.salt = salt
        self._blocks: dict[int, list[int]] = {}

    def block(self, h: int) -> list[int]:
        if h not in self._blocks:
            tag = self.tok.encode([f" [{self.salt}:{h}] "], add_special_tokens=False)[0][: self.block_tokens]
            room = self.block_tokens - len(tag)
            offset = (h * 1013) % (len(self.body) - room)
            self._blocks[h] = tag + self.body[offset : offset + room]
        return self._blocks[h]

    def prompt(self, row: TraceRow, index: int) -> list[int]:
        """The row's hash-id blocks cut to ``input_length``; a shorter list is padded with request-unique tokens."""
        ids: list[int] = []
        for h in row.hash_ids:
            if len(ids) >= row.input_length:
                break
            ids += self.block(h)
        if len(ids) < row.input_length:
            ids += self.block(-1 - index)  # negative ids never occur in a trace: unique to this request
            while len(ids) < row.input_length:
                ids += self.body[: row.input_length - len(ids)]
        return ids[: row.input_length]


def replay(tok: Tokenizer, load: LoadConfig, salt: int = 0) -> tuple[list[Request], list[float]]:
    """The trace's first ``num_requests`` rows as token-id requests, and their schedule."""
    if not load.dataset_path:
        raise ValueError("trace replay needs dataset_path: a Mooncake-format JSONL file")
    rows = read_trace(load.dataset_path)[: load.num_requests]
    blocks = BlockSource(tok, load.trace_block_tokens, salt)
    requests = [
        Request(blocks.prompt(row, i), prompt_tokens=row.input_length, output_tokens=row.output_length)
        for i, row in enumerate(rows)
    ]
    return requests, schedule(rows, load.trace_time_scale)
