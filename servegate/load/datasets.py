"""Request sets: token-exact synthetic prompts, ShareGPT conversations from a local file, document images.

All three return what ``run_requests`` sends: text for /v1/completions, chat messages for /v1/chat/completions, or a
``Request`` that also carries its own output length (ShareGPT replays the recorded answer's length, as
``vllm bench serve --dataset-name sharegpt`` does).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from servegate.config import LoadConfig
from servegate.load.client import Prompt, Request
from servegate.load.images import document_image, image_message
from servegate.load.prompts import Tokenizer, synthetic_prompts

# vllm bench serve's ShareGPT filter (is_valid_sequence): too short to measure, or too long for common models.
MIN_TOKENS, MAX_PROMPT_TOKENS, MAX_TOTAL_TOKENS = 4, 1024, 2048


def build_requests(tok: Tokenizer, load: LoadConfig, count: int, salt: int = 0) -> list[Prompt]:
    if load.dataset == "sharegpt":
        return sharegpt_requests(tok, load, count, salt)
    texts = synthetic_prompts(tok, count, load.prompt_tokens, load.shared_prefix_tokens, salt=salt)
    if load.dataset == "images":
        w, h = load.image_size
        out: list[Prompt] = []
        for i, text in enumerate(texts):
            pngs = [document_image(w, h, seed=salt * 1_000_003 + i * 31 + k) for k in range(load.images_per_request)]
            out.append(Request(image_message(text, pngs), prompt_tokens=load.prompt_tokens))
        return out
    if load.endpoint == "chat":
        return [[{"role": "user", "content": text}] for text in texts]
    return list(texts)


def read_sharegpt(path: str | Path) -> list[tuple[str, str]]:
    """(first human turn, the answer to it) pairs from a ShareGPT JSON list or JSONL file; other shapes skipped."""
    raw = Path(path).read_text(encoding="utf-8")
    items: list[Any]
    try:
        parsed = json.loads(raw)
        items = parsed if isinstance(parsed, list) else [parsed]
    except json.JSONDecodeError:
        items = []
        for line in raw.splitlines():
            line = line.strip()
            if line:
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    pairs = []
    for item in items:
        turns = item.get("conversations") or item.get("conversation") if isinstance(item, dict) else None
        if not isinstance(turns, list) or len(turns) < 2:
            continue
        first, second = turns[0], turns[1]
        if not (isinstance(first, dict) and isinstance(second, dict)):
            continue
        q, a = first.get("value", first.get("content")), second.get("value", second.get("content"))
        if isinstance(q, str) and isinstance(a, str) and q and a:
            pairs.append((q, a))
    return pairs


def sharegpt_requests(tok: Tokenizer, load: LoadConfig, count: int, salt: int = 0) -> list[Prompt]:
    """``count`` conversations, seeded shuffle, each sized with the served tokenizer and filtered like vLLM's."""
    if not load.dataset_path:
        raise ValueError("dataset 'sharegpt' needs dataset_path")
    pairs = read_sharegpt(load.dataset_path)
    if not pairs:
        raise ValueError(f"{load.dataset_path}: no ShareGPT conversations (need 'conversations' with 2+ turns)")
    random.Random(load.seed * 7919 + salt).shuffle(pairs)
    out: list[Prompt] = []
    batch = max(2 * count, 64)  # sized in batches: a large file is tokenized only as far as the count needs
    for first in range(0, len(pairs), batch):
        chunk = pairs[first : first + batch]
        ins = tok.encode([q for q, _ in chunk])
        outs = tok.encode([a for _, a in chunk], add_special_tokens=False)
        for (q, _), q_ids, a_ids in zip(chunk, ins, outs, strict=True):
            n_in, n_out = len(q_ids), len(a_ids)
            if n_in < MIN_TOKENS or n_out < MIN_TOKENS or n_in > MAX_PROMPT_TOKENS or n_in + n_out > MAX_TOTAL_TOKENS:
                continue
            prompt: str | list[dict[str, Any]] = [{"role": "user", "content": q}] if load.endpoint == "chat" else q
            out.append(Request(prompt, prompt_tokens=n_in, output_tokens=n_out))
            if len(out) == count:
                break
        if len(out) == count:
            break
    if not out:
        raise ValueError(f"{load.dataset_path}: no conversation passes the length filter")
    while len(out) < count:  # a small file is replayed in order
        out.append(out[len(out) % max(1, len(out))])
    return out
