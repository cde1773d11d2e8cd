"""Token-exact synthetic prompts, measured with the served tokenizer through the server's own /tokenize endpoint.

Asking the server (rather than a local copy of the tokenizer) is the only way to be exact for any model and any
launcher, including a model inside a container. Each prompt starts with a unique prefix so that the prefix cache
cannot make the second request cheaper than the first, unless the load asks for a shared prefix.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "datasets" / "corpus.txt"
FALLBACK_TEXT = "The quick brown fox jumps over the lazy dog while the server streams tokens to many clients. "


class TokenizerClient:
    """The served tokenizer, via POST /tokenize and /detokenize (vLLM's OpenAI-compatible server has both)."""

    def __init__(self, base_url: str, model: str, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s

    def _post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(
            self.base_url + path,
            data=json.dumps({"model": self.model, **body}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            return json.loads(resp.read())

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._post("/tokenize", {"prompt": text, "add_special_tokens": add_special_tokens})["tokens"]

    def decode(self, ids: list[int]) -> str:
        return self._post("/detokenize", {"tokens": ids})["prompt"]


def _body_text() -> str:
    return CORPUS.read_text(encoding="utf-8") if CORPUS.exists() else FALLBACK_TEXT * 50


def synthetic_prompts(
    tok: TokenizerClient, count: int, prompt_tokens: int, shared_prefix_tokens: int = 0, salt: int = 0
) -> list[str]:
    """``count`` prompts of exactly ``prompt_tokens`` tokens as the server counts them (BOS included).

    Prompt i = [shared prefix] + unique tag "i" + body text cut to length. Text is re-tokenized after cutting,
    because joining pieces can merge tokens; the length is then corrected by whole tokens until exact.
    """
    if prompt_tokens < 4:
        raise ValueError(f"prompt_tokens must be >= 4 (got {prompt_tokens}): BOS, tag and text need room")
    body = tok.encode(_body_text(), add_special_tokens=False)
    special = len(tok.encode("", add_special_tokens=True))  # BOS etc. that every request carries
    while len(body) < 2 * prompt_tokens:
        body += body
    prefix_ids = body[: max(0, shared_prefix_tokens)]
    prompts = []
    for i in range(count):
        tag = tok.encode(f" [{salt}.{i}] ", add_special_tokens=False)
        room = prompt_tokens - special - len(prefix_ids) - len(tag)
        if room < 1:
            raise ValueError(f"shared prefix of {shared_prefix_tokens} tokens leaves no room in {prompt_tokens}")
        offset = (i * 7) % max(1, len(body) - room)  # vary the body too, not only the tag
        prompts.append(_exact(tok, prefix_ids + tag, body[offset : offset + room + 8], prompt_tokens))
    return prompts


def _exact(tok: TokenizerClient, head: list[int], tail: list[int], target: int) -> str:
    cut = target - len(tok.encode("", add_special_tokens=True)) - len(head)
    for _ in range(8):
        text = tok.decode(head + tail[:cut])
        n = len(tok.encode(text))
        if n == target:
            return text
        cut += target - n
        if cut < 0 or cut > len(tail):
            break
    raise RuntimeError(f"could not build a prompt of exactly {target} tokens (last try: {n}); tokenizer unstable?")
