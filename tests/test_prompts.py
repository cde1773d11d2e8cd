"""Prompt building without a server: exact token counts with the tiny model's own tokenizer, the shared prefix, and
whole-prompt correction for a tokenizer whose pieces do not add up."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from servegate.load.prompts import LocalTokenizer, local_tokenizer_file, synthetic_prompts

TINY = Path(__file__).resolve().parents[1] / "datasets" / "tiny-llama"


@pytest.fixture(scope="module")
def tok() -> LocalTokenizer:
    return LocalTokenizer(TINY / "tokenizer.json")


@pytest.mark.parametrize(("count", "length", "prefix"), [(1, 16, 0), (300, 128, 0), (40, 1024, 0), (50, 200, 96)])
def test_every_prompt_has_exactly_the_asked_tokens(tok: LocalTokenizer, count: int, length: int, prefix: int) -> None:
    prompts = synthetic_prompts(tok, count, length, shared_prefix_tokens=prefix, salt=5)
    assert [len(ids) for ids in tok.encode(prompts)] == [length] * count
    assert len(set(prompts)) == count, "each prompt is unique, so the prefix cache cannot serve one from another"


def test_a_shared_prefix_is_the_same_tokens_in_every_prompt(tok: LocalTokenizer) -> None:
    prompts = synthetic_prompts(tok, 20, 160, shared_prefix_tokens=64, salt=1)
    heads = {tuple(ids[:65]) for ids in tok.encode(prompts)}  # BOS + 64 shared tokens
    assert len(heads) == 1
    assert len({tuple(ids[65:]) for ids in tok.encode(prompts)}) == 20, "what follows the prefix is unique"


def test_salt_makes_prompts_differ_across_starts(tok: LocalTokenizer) -> None:
    assert not set(synthetic_prompts(tok, 10, 64, salt=1)) & set(synthetic_prompts(tok, 10, 64, salt=2))


def test_too_short_a_prompt_is_refused_with_the_minimum(tok: LocalTokenizer) -> None:
    with pytest.raises(ValueError, match=r"prompt_tokens 6 leaves no room .* use at least \d+"):
        synthetic_prompts(tok, 3, 6)


class PairTokenizer:
    """One token per two characters: joining two odd-length pieces changes the count, so adding up the pieces'
    counts is wrong and every prompt must be corrected as a whole."""

    source = "pairs"

    def encode(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
        out = []
        for text in texts:
            ids = [ord(text[i]) * 0x110000 + (ord(text[i + 1]) if i + 1 < len(text) else 0)
                   for i in range(0, len(text), 2)]
            out.append(([1] if add_special_tokens else []) + ids)
        return out

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        out = []
        for seq in ids:
            chars = []
            for token in seq:
                first, second = divmod(token, 0x110000)
                chars += [chr(first)] + ([chr(second)] if second else [])
            out.append("".join(chars))
        return out


def test_a_tokenizer_whose_pieces_do_not_add_up_still_gets_exact_prompts() -> None:
    tok = PairTokenizer()
    prompts = synthetic_prompts(tok, 30, 40, shared_prefix_tokens=7, salt=3)
    assert [len(ids) for ids in tok.encode(prompts)] == [40] * 30
    assert len(set(prompts)) == 30


def test_local_tokenizer_file_of_a_model_directory(tmp_path: Path) -> None:
    assert local_tokenizer_file(str(TINY)) == TINY / "tokenizer.json"
    assert local_tokenizer_file(str(tmp_path)) is None  # a directory without one
    assert local_tokenizer_file("no-such-org/no-such-model-servegate") is None  # not in the local cache
