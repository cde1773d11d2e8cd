"""Multi-turn conversations: each user sends a conversation turn by turn, resending the whole growing history.

A user (one of ``concurrency``) takes the next conversation and sends turn k as the chat messages of turns 1..k-1
(the user's messages and the answers the server really gave) plus the new user message, the next turn leaving when
the previous answer has ended. The history each turn resends is exactly the prefix the server saw and produced the
turn before, so the prefix cache can serve it: the per-level prefix-cache hit rate (/metrics) shows whether it did.
Conversations come from a ShareGPT-format file (every human turn of conversations with two or more) or are
synthetic (``turns`` user messages of ``prompt_tokens`` tokens each). ``num_requests`` counts turns, so a level of
N requests holds N // turns conversations.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from servegate.config import LoadConfig
from servegate.load.client import RunResult, build_payload, send_one
from servegate.load.prompts import Tokenizer, synthetic_prompts
from servegate.load.records import RequestRecord


@dataclass(frozen=True)
class Conversation:
    turns: tuple[str, ...]  # the user's messages, in order


def read_sharegpt_conversations(path: str | Path, min_turns: int = 2) -> list[Conversation]:
    """Every conversation of a ShareGPT JSON/JSONL file with at least ``min_turns`` human turns (human turns only:
    the answers are the server's own)."""
    raw = Path(path).read_text(encoding="utf-8")
    try:
        parsed = json.loads(raw)
        items = parsed if isinstance(parsed, list) else [parsed]
    except json.JSONDecodeError:
        items = [json.loads(line) for line in raw.splitlines() if line.strip()]
    out = []
    for item in items:
        turns = item.get("conversations") or item.get("conversation") if isinstance(item, dict) else None
        if not isinstance(turns, list):
            continue
        human = [
            t.get("value", t.get("content"))
            for t in turns
            if isinstance(t, dict) and t.get("from", t.get("role")) in ("human", "user")
        ]
        human = [h for h in human if isinstance(h, str) and h.strip()]
        if len(human) >= min_turns:
            out.append(Conversation(tuple(human)))
    return out


def conversations(tok: Tokenizer, load: LoadConfig, requests: int, salt: int = 0) -> list[Conversation]:
    """``requests // turns`` conversations (at least one): from the ShareGPT file when given, else synthetic."""
    count = max(1, requests // max(1, load.turns))
    if load.dataset == "sharegpt":
        if not load.dataset_path:
            raise ValueError("multi-turn from ShareGPT needs dataset_path")
        found = read_sharegpt_conversations(load.dataset_path)
        if not found:
            raise ValueError(f"{load.dataset_path}: no conversation with two or more human turns")
        start = (salt * 7) % len(found)  # each level and start its own slice, replayed in order when short
        return [Conversation(found[(start + i) % len(found)].turns[: load.turns]) for i in range(count)]
    texts = synthetic_prompts(tok, count * load.turns, load.prompt_tokens, salt=salt)
    return [Conversation(tuple(texts[i * load.turns : (i + 1) * load.turns])) for i in range(count)]


async def run_conversations(
    base_url: str, model: str, convs: Sequence[Conversation], load: LoadConfig
) -> RunResult:
    """``load.concurrency`` users work through ``convs``; one record per turn, in the order turns were sent.

    A failed turn ends its conversation (its history would be wrong); the turns not sent are not records."""
    url = base_url.rstrip("/") + "/v1/chat/completions"
    records: list[RequestRecord] = []
    queue = list(reversed(convs))
    stopped: list[str] = []
    connector = aiohttp.TCPConnector(limit=load.concurrency, enable_cleanup_closed=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    wall_start = time.time()
    t0 = time.perf_counter()
    deadline = t0 + load.max_seconds

    async def user(session: aiohttp.ClientSession) -> None:
        while queue:
            conv = queue.pop()
            history: list[dict[str, Any]] = []
            for text in conv.turns:
                if time.perf_counter() > deadline:
                    stopped.append(f"time limit {load.max_seconds:g} s reached after {len(records)} turns")
                    return
                messages = [*history, {"role": "user", "content": text}]
                index = len(records)
                record = RequestRecord(index, load.prompt_tokens, load.output_tokens, scheduled_at=time.perf_counter())
                records.append(record)
                body = build_payload(model, messages, load, load.output_tokens, index)
                data = json.dumps(body, separators=(",", ":")).encode()
                await send_one(session, url, data, record, load.request_timeout_s, True, load.ignore_eos)
                if not record.success:
                    break
                history = [*messages, {"role": "assistant", "content": record.text or ""}]

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(user(session) for _ in range(min(load.concurrency, len(convs)))))
    t1 = time.perf_counter()
    return RunResult(records, t0, t1, wall_start, stopped_early=stopped[0] if stopped else None)
