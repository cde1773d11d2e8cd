"""Multi-turn conversations against the stub server: every turn resends the history, answers included."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

from servegate.config import LoadConfig
from servegate.load import multiturn
from servegate.load.multiturn import Conversation, conversations, read_sharegpt_conversations
from servegate.testing.stub_server import StubConfig, StubServer

REPO = Path(__file__).resolve().parents[1]


def test_sharegpt_human_turns_only_and_at_least_two(tmp_path: Path) -> None:
    items = [
        {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"},
                           {"from": "human", "value": "c"}, {"from": "gpt", "value": "d"}]},
        {"conversations": [{"from": "human", "value": "only one"}, {"from": "gpt", "value": "x"}]},
    ]
    path = tmp_path / "c.json"
    path.write_text(json.dumps(items))
    assert read_sharegpt_conversations(path) == [Conversation(("a", "c"))]
    shipped = read_sharegpt_conversations(REPO / "datasets" / "conversations-sharegpt.json")
    assert len(shipped) == 12 and all(len(c.turns) == 4 for c in shipped)
    load = LoadConfig(profile="multiturn", endpoint="chat", dataset="sharegpt", turns=2, num_requests=6,
                      dataset_path=str(REPO / "datasets" / "conversations-sharegpt.json"))
    convs = conversations(None, load, load.num_requests)  # a file needs no tokenizer
    assert len(convs) == 3 and all(len(c.turns) == 2 for c in convs)


def test_each_turn_resends_the_growing_history_with_the_servers_answers(monkeypatch) -> None:
    sent: list[list[dict]] = []
    real = multiturn.build_payload

    def capture(model, messages, load, max_tokens, index):
        sent.append([dict(m) for m in messages])
        return real(model, messages, load, max_tokens, index)

    monkeypatch.setattr(multiturn, "build_payload", capture)
    convs = [Conversation(("q1", "q2", "q3")), Conversation(("r1", "r2"))]
    load = LoadConfig(profile="multiturn", endpoint="chat", concurrency=1, output_tokens=4, turns=3,
                      num_requests=6, request_timeout_s=30)
    with StubServer(StubConfig(ttft_s=0.005, itl_s=0.002)) as stub:
        run = asyncio.run(multiturn.run_conversations(stub.base_url, "stub", convs, load))
        assert stub.stats.requests == 5
    assert len(run.records) == 5 and all(r.success for r in run.records)
    answer = run.records[0].text
    assert answer and "tok" in answer
    assert [[m["content"] for m in msgs] for msgs in sent] == [
        ["q1"], ["q1", answer, "q2"], ["q1", answer, "q2", run.records[1].text, "q3"], ["r1"], ["r1", answer, "r2"],
    ]
    assert [m["role"] for m in sent[2]] == ["user", "assistant", "user", "assistant", "user"]
    for a, b in itertools.pairwise(run.records):  # one user: a turn leaves only after the previous one ended
        assert b.sent_at >= a.done_at
