"""Regenerate the small workload files the CPU suite replays: a Mooncake-format trace and multi-turn conversations.

- ``mooncake-tiny.jsonl``: 48 requests over ~12 s in Mooncake's trace format (timestamp in ms, input_length,
  output_length, hash_ids). Hash ids name blocks of 32 tokens (the suite sets ``trace_block_tokens: 32``; Mooncake's
  own traces use 512, too long for the tiny model's 2048-token context). Requests belong to one of four "system
  prompt" families whose leading blocks they share, then add blocks of their own, so a replay has a known prefix-
  sharing structure: ``shared_block_share`` below is the share of blocks a perfect prefix cache could serve.
- ``conversations-sharegpt.json``: 12 ShareGPT-format conversations of 4 human turns each (with short "gpt"
  answers, which multi-turn replay replaces by the server's own), sentences drawn from ``servegate/data/corpus.txt``.

Deterministic (seeded); ``--check`` exits 1 when the committed files differ from what this script writes.
Usage: ``python datasets/make_workloads.py [--check]``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRACE = HERE / "mooncake-tiny.jsonl"
CONVERSATIONS = HERE / "conversations-sharegpt.json"
BLOCK = 32
FAMILIES = {0: 4, 1: 6, 2: 8, 3: 2}  # family -> shared leading blocks (its "system prompt")


def trace_lines(seed: int = 15) -> list[str]:
    rng = random.Random(seed)
    lines, t_ms, next_block = [], 0.0, 1000
    family_blocks = {}
    base = 0
    for family, n in FAMILIES.items():
        family_blocks[family] = list(range(base, base + n))
        base += n
    for _ in range(48):
        family = rng.choice(list(FAMILIES))
        own = rng.randint(1, 6)
        hash_ids = family_blocks[family] + list(range(next_block, next_block + own))
        next_block += own
        input_length = len(hash_ids) * BLOCK - rng.randint(0, BLOCK - 1)  # the last block is partial, as in Mooncake
        item = {"timestamp": int(t_ms), "input_length": input_length, "output_length": rng.choice([16, 24, 32, 48]),
                "hash_ids": hash_ids}
        lines.append(json.dumps(item))
        t_ms += rng.expovariate(4.0) * 1000.0  # ~4 requests/s
    return lines


def shared_block_share(lines: list[str]) -> float:
    """Blocks a request shares with an earlier one, over all blocks: the best prefix-cache hit rate in blocks."""
    seen: set[int] = set()
    shared = total = 0
    for line in lines:
        ids = json.loads(line)["hash_ids"]
        total += len(ids)
        shared += sum(1 for h in ids if h in seen)
        seen.update(ids)
    return shared / total


def conversations(seed: int = 15) -> list[dict]:
    rng = random.Random(seed)
    corpus = (HERE.parent / "servegate" / "data" / "corpus.txt").read_text(encoding="utf-8")
    sentences = [s.strip() + "." for s in corpus.split(".") if s.strip()]
    out = []
    for c in range(12):
        turns = []
        for _ in range(4):
            question = " ".join(rng.sample(sentences, 2)).replace("\n", " ")
            turns.append({"from": "human", "value": f"Question {c}: {question} Explain why."})
            turns.append({"from": "gpt", "value": " ".join(rng.sample(sentences, 1)).replace("\n", " ")})
        out.append({"id": f"synthetic-{c}", "conversations": turns})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed files differ")
    args = parser.parse_args(argv)
    lines = trace_lines()
    files = {
        TRACE: "\n".join(lines) + "\n",
        CONVERSATIONS: json.dumps(conversations(), indent=1) + "\n",
    }
    differ = [p for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for p in differ:
            print(f"{p} differs from what {Path(__file__).name} writes", file=sys.stderr)
        return 1 if differ else 0
    for p, text in files.items():
        p.write_text(text, encoding="utf-8")
    print(f"wrote {TRACE.name} ({len(lines)} requests, {shared_block_share(lines):.0%} of blocks shared) and "
          f"{CONVERSATIONS.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
