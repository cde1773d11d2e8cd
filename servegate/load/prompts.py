"""Token-exact synthetic prompts, counted with the tokenizer the server uses.

Prompt lengths must be exact as the *server* counts them, so the served tokenizer is the authority. Asking it over
HTTP for every prompt costs round trips that a GPU spends idle before every level of every start, so prompts are
built with a local copy of the model's tokenizer (``tokenizer.json`` in the model directory or the Hugging Face
cache) whenever one is at hand *and* it tokenizes a probe text exactly as the server does; otherwise the server's
``/tokenize`` and ``/detokenize`` are called in concurrent batches. Either way every prompt is built by the same
batch algorithm, and each prompt starts with a unique tag so that the prefix cache cannot make the second request
cheaper than the first, unless the load asks for a shared prefix.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Protocol
from weakref import WeakKeyDictionary

PROBE_TAG = "[0.17]"  # the probe carries a tag like the prompts' own


class Tokenizer(Protocol):
    """Batch encode/decode: the only two operations prompt building needs."""

    source: str  # where the tokens come from, for progress lines and error messages

    def encode(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]: ...

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]: ...


class ServerTokenizer:
    """The served tokenizer via POST /tokenize and /detokenize (vLLM's OpenAI-compatible server has both).

    One prompt per call is all vLLM accepts, so a batch is sent over ``parallel`` concurrent connections. A refused
    or reset connection propagates as OSError: the caller decides whether the server died.
    """

    def __init__(self, base_url: str, model: str, timeout_s: float = 30.0, parallel: int = 8) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.parallel = parallel
        self.source = f"the server's /tokenize at {self.base_url}"

    def _post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(
            self.base_url + path,
            data=json.dumps({"model": self.model, **body}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            return json.loads(resp.read())

    def _map(self, call: Callable[[object], object], items: Sequence[object]) -> list:
        if len(items) <= 1:
            return [call(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.parallel, len(items))) as pool:
            return list(pool.map(call, items))

    def encode(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
        def one(text: object) -> list[int]:
            return self._post("/tokenize", {"prompt": text, "add_special_tokens": add_special_tokens})["tokens"]

        return self._map(one, texts)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return self._map(lambda tokens: self._post("/detokenize", {"tokens": list(tokens)})["prompt"], ids)


class LocalTokenizer:
    """A ``tokenizer.json`` loaded with the ``tokenizers`` library: the same files the server loads, in-process."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        self._tok = HFTokenizer.from_file(str(path))
        self.source = str(path)

    def encode(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=add_special_tokens)]

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return self._tok.decode_batch([list(i) for i in ids], skip_special_tokens=False)


def local_tokenizer_file(model: str) -> Path | None:
    """``tokenizer.json`` of a model directory, or of a hub model already in the local Hugging Face cache."""
    directory = Path(model)
    if directory.is_dir():
        candidate = directory / "tokenizer.json"
        return candidate if candidate.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - tokenizers depends on huggingface_hub
        return None
    try:
        cached = try_to_load_from_cache(model, "tokenizer.json")
    except ValueError:  # not a repo id (e.g. an absolute path that does not exist here, inside a container)
        return None
    return Path(cached) if isinstance(cached, str) else None


def tokenizer_for(
    base_url: str, model_path: str, served_name: str, say: Callable[[str], None] | None = None
) -> Tokenizer:
    """A local tokenizer when one is at hand and agrees with the server on a probe; the server's otherwise.

    The probe is corpus text with a tag, with and without special tokens: if the local copy differs from the
    server in a single id (another revision, a different BOS rule in the server's wrapper), every prompt could be
    off, so the server's tokenizer is used instead and the reason is said.
    """
    server = ServerTokenizer(base_url, served_name)
    path = local_tokenizer_file(model_path)
    if path is None:
        return server
    local = LocalTokenizer(path)
    probe = [PROBE_TAG + corpus_text()[:2000]]
    for special in (True, False):
        if local.encode(probe, special) != server.encode(probe, special):
            if say is not None:
                say(f"  local tokenizer {path} disagrees with the server's; prompts are built through the server")
            return server
    return local


def corpus_text() -> str:
    """The text prompts are cut from (package data: the same text wherever servegate is installed)."""
    return resources.files("servegate.data").joinpath("corpus.txt").read_text(encoding="utf-8")


BODY_VARIANTS = 8  # distinct body offsets: content varies between prompts, and each variant is made exact once
# The unique number of a prompt sits between constant brackets, so that every joint between pieces has the same
# characters on both sides in every prompt: checked once, it holds for all (JOINT_CHARS of context on each side).
TAG_HEAD, TAG_TAIL = "[", "]"
JOINT_CHARS = 1
SAMPLE = 16  # whole prompts re-tokenized per batch on top of one per body variant, to confirm the pieces added up


def synthetic_prompts(
    tok: Tokenizer, count: int, prompt_tokens: int, shared_prefix_tokens: int = 0, salt: int = 0
) -> list[str]:
    """``count`` prompts of exactly ``prompt_tokens`` tokens as the server counts them (BOS included).

    Prompt i = [shared prefix] + unique tag "[<salt>.<i>]" + a body text, each piece made exact on
    its own. Re-tokenizing every whole prompt would cost as much as the server's own tokenization, so the pieces'
    counts are added up instead. That is exact when the tokenizer splits at each joint, which is checked on the
    characters around the joints (the same in every prompt), and a sample of whole prompts (at least one per body
    variant) is re-tokenized on top; if either fails, every prompt is corrected as a whole instead.
    """
    if prompt_tokens < 4:
        raise ValueError(f"prompt_tokens must be >= 4 (got {prompt_tokens}): BOS and text need room")
    if count <= 0:
        return []
    body, special = _body_and_special(tok)
    while len(body) < 2 * prompt_tokens + 16:
        body += body
    shared = max(0, shared_prefix_tokens)
    prefix = _exact(tok, [[]], [body[: shared + 8]], [shared])[0] if shared else ""
    tags = [f"{TAG_HEAD}{salt}.{i}{TAG_TAIL}" for i in range(count)]
    tag_ids = tok.encode(tags, add_special_tokens=False)
    rooms = [prompt_tokens - special - shared - len(ids) for ids in tag_ids]
    if min(rooms) < 1:
        need = prompt_tokens - min(rooms) + 1
        raise ValueError(
            f"prompt_tokens {prompt_tokens} leaves no room for text after the special tokens, "
            f"a shared prefix of {shared} tokens and the unique tag; use at least {need}"
        )
    stride = max(1, (len(body) - max(rooms) - 8) // BODY_VARIANTS)
    keys = sorted({(i % BODY_VARIANTS, room) for i, room in enumerate(rooms)})
    slices = [body[v * stride : v * stride + room + 8] for v, room in keys]
    bodies = dict(zip(keys, _exact(tok, [[] for _ in keys], slices, [room for _, room in keys]), strict=True))
    prompts = [prefix + tags[i] + bodies[(i % BODY_VARIANTS, rooms[i])] for i in range(count)]
    joints = [(TAG_TAIL, text) for text in bodies.values()] + ([(prefix, TAG_HEAD)] if prefix else [])
    sample = sorted({*range(min(count, BODY_VARIANTS)), count - 1, *range(0, count, max(1, count // SAMPLE))})
    whole = tok.encode([prompts[i] for i in sample])
    if _joints_hold(tok, joints) and all(len(ids) == prompt_tokens for ids in whole):
        return prompts
    prefix_ids = tok.encode([prefix], add_special_tokens=False)[0] if prefix else []
    return _exact(
        tok,
        [prefix_ids + ids for ids in tag_ids],
        [body[(i % BODY_VARIANTS) * stride :][: rooms[i] + 8] for i in range(count)],
        [prompt_tokens - special] * count,
    )


_CORPUS_IDS: WeakKeyDictionary[Tokenizer, tuple[list[int], int]] = WeakKeyDictionary()


def _body_and_special(tok: Tokenizer) -> tuple[list[int], int]:
    """The corpus as ids, and how many special tokens (BOS, ...) every request carries; once per tokenizer, since
    every level of a start builds prompts from them."""
    if tok not in _CORPUS_IDS:
        _CORPUS_IDS[tok] = tok.encode([corpus_text()], add_special_tokens=False)[0], len(tok.encode([""])[0])
    return _CORPUS_IDS[tok]


def _joints_hold(tok: Tokenizer, joints: Sequence[tuple[str, str]]) -> bool:
    """Whether every (left, right) pair tokenizes as the two pieces apart, judged on the characters at the joint."""
    lefts = [left[-JOINT_CHARS:] for left, _ in joints]
    rights = [right[:JOINT_CHARS] for _, right in joints]
    apart = tok.encode(lefts + rights, add_special_tokens=False)
    together = tok.encode([a + b for a, b in zip(lefts, rights, strict=True)], add_special_tokens=False)
    return all(together[k] == apart[k] + apart[len(joints) + k] for k in range(len(joints)))


def _exact(tok: Tokenizer, heads: list[list[int]], tails: list[list[int]], targets: list[int]) -> list[str]:
    """Texts of ``head + tail[:cut]`` whose re-tokenized length (no special tokens) is exactly their target.

    Joining ids and decoding can merge tokens, so each text is re-tokenized and its cut corrected by the
    difference; only the texts still off are tried again.
    """
    cuts = [target - len(head) for head, target in zip(heads, targets, strict=True)]
    texts: list[str] = [""] * len(heads)
    pending = list(range(len(heads)))
    for _ in range(8):
        decoded = tok.decode([heads[i] + tails[i][: cuts[i]] for i in pending])
        lengths = [len(ids) for ids in tok.encode(decoded, add_special_tokens=False)]
        still: list[int] = []
        for i, text, n in zip(pending, decoded, lengths, strict=True):
            if n == targets[i]:
                texts[i] = text
                continue
            cuts[i] += targets[i] - n
            if not 0 <= cuts[i] <= len(tails[i]):
                raise _unstable(tok, targets[i], n)
            still.append(i)
        if not still:
            return texts
        pending = still
    raise _unstable(tok, targets[pending[0]], lengths[-1])


def _unstable(tok: Tokenizer, target: int, got: int) -> RuntimeError:
    return RuntimeError(
        f"could not build a text of exactly {target} tokens (last try: {got}) with {tok.source}; "
        f"is the tokenizer stable under decode and re-encode?"
    )
