"""Datasets without a server: ShareGPT parsing and filtering, synthetic document images, chat message shapes."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from servegate.config import LoadConfig
from servegate.load.client import Request, build_payload
from servegate.load.datasets import read_sharegpt, sharegpt_requests
from servegate.load.images import document_image, image_message


class WordTokenizer:
    """Stand-in for the served tokenizer: one token per word (plus BOS when asked)."""

    source = "words"

    def encode(self, texts: list[str], add_special_tokens: bool = True) -> list[list[int]]:
        return [[0] * (len(text.split()) + (1 if add_special_tokens else 0)) for text in texts]


def conv(q: str, a: str) -> dict:
    return {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}


def test_sharegpt_json_and_jsonl_give_the_same_pairs(tmp_path: Path) -> None:
    items = [conv("one two three four five", "a b c d e f"), {"conversations": [{"from": "human", "value": "x"}]}]
    (tmp_path / "s.json").write_text(json.dumps(items))
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\nnot json\n")
    assert (
        read_sharegpt(tmp_path / "s.json")
        == read_sharegpt(tmp_path / "s.jsonl")
        == [("one two three four five", "a b c d e f")]
    )


def test_sharegpt_requests_replay_the_answer_length_and_filter(tmp_path: Path) -> None:
    items = [conv("w " * 10, "r " * 7), conv("too short", "r " * 7), conv("w " * 1100, "r " * 10)]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(json.dumps(i) for i in items))
    load = LoadConfig(dataset="sharegpt", dataset_path=str(path), endpoint="chat")
    reqs = sharegpt_requests(WordTokenizer(), load, 3)  # type: ignore[arg-type]
    assert len(reqs) == 3  # one valid conversation, replayed
    first = reqs[0]
    assert isinstance(first, Request) and first.output_tokens == 7 and first.prompt_tokens == 11
    body = build_payload("m", first, load, first.output_tokens or 0, 0)
    assert body["messages"][0]["role"] == "user" and body["max_completion_tokens"] == 7
    assert body["stream_options"] == {"include_usage": True} and body["ignore_eos"] is True


def test_sharegpt_without_valid_conversations_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(conv("a", "b")))
    with pytest.raises(ValueError, match="length filter"):
        sharegpt_requests(WordTokenizer(), LoadConfig(dataset="sharegpt", dataset_path=str(path)), 2)  # type: ignore[arg-type]


def test_document_images_have_the_asked_size_and_differ_per_request() -> None:
    a, b = document_image(320, 200, seed=1), document_image(320, 200, seed=2)
    assert a != b and a == document_image(320, 200, seed=1)
    img = Image.open(io.BytesIO(a))
    assert img.size == (320, 200) and img.format == "PNG"


def test_image_message_is_openai_chat_format() -> None:
    msg = image_message("describe", [document_image(64, 64, 0)])
    content = msg[0]["content"]
    assert content[0] == {"type": "text", "text": "describe"}
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1])[:4] == b"\x89PNG"
