"""Regenerate the tiny llama-style model that the CPU suite serves with ``--load-format dummy``.

The model has no weights: vLLM fills them with random values, so the numbers it computes are meaningless but the
work it does per token (attention, MLP, sampling, detokenization) is real. Only the architecture (``config.json``)
and a tokenizer are needed, both written here from ``servegate/data/corpus.txt`` so that the output is byte-identical
on every run and nothing is ever downloaded.

Usage: ``python datasets/make_tiny_model.py [--out datasets/tiny-llama]``; ``--check`` exits 1 if the committed
files differ from what this script would write.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "servegate" / "data" / "corpus.txt"  # the prompts' text: one copy, in the package
DEFAULT_OUT = HERE / "tiny-llama"
TARGET_VOCAB = 2048
BOS, EOS, UNK = "<s>", "</s>", "<unk>"

# Small enough that 2 CPU cores stream ~150-200 tokens/s for one request, large enough that batching matters.
ARCHITECTURE = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 768,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "hidden_act": "silu",
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "initializer_range": 0.02,
    "attention_bias": False,
    "mlp_bias": False,
}


def train_tokenizer() -> Tokenizer:
    """Byte-level BPE, so any input text (including unseen bytes) tokenizes without <unk>."""
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TARGET_VOCAB,
        min_frequency=2,
        special_tokens=[UNK, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS.read_text(encoding="utf-8").splitlines(), trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return tok


def model_files(tok: Tokenizer) -> dict[str, str]:
    """Every file of the model directory as text, keyed by file name."""
    vocab = tok.get_vocab_size()
    config = dict(
        ARCHITECTURE,
        vocab_size=vocab,
        bos_token_id=tok.token_to_id(BOS),
        eos_token_id=tok.token_to_id(EOS),
    )
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": UNK,
        "model_max_length": ARCHITECTURE["max_position_embeddings"],
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        # A plain chat template so /v1/chat/completions works: role-tagged turns, then the assistant tag.
        "chat_template": (
            "{% for m in messages %}<|{{ m['role'] }}|>\n"
            "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
            "{% for part in m['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
            "{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
        ),
    }
    generation_config = {"bos_token_id": config["bos_token_id"], "eos_token_id": config["eos_token_id"]}

    def dump(obj: object) -> str:
        return json.dumps(obj, indent=2, sort_keys=True) + "\n"

    return {
        "config.json": dump(config),
        "generation_config.json": dump(generation_config),
        "tokenizer_config.json": dump(tokenizer_config),
        "special_tokens_map.json": dump({"bos_token": BOS, "eos_token": EOS, "unk_token": UNK}),
        "tokenizer.json": tok.to_str(pretty=True) + "\n",
    }


def write_or_check(files: dict[str, str], out: Path, check: bool) -> int:
    """``--check``: exit 1 naming the files that differ from a fresh generation; else write them atomically."""
    if check:
        stale = [n for n, text in files.items() if not (out / n).is_file() or (out / n).read_text() != text]
        if stale:
            print(f"{out}: differs from a fresh generation in {', '.join(stale)}", file=sys.stderr)
            return 1
        print(f"{out}: up to date")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        with tempfile.NamedTemporaryFile("w", dir=out, delete=False, encoding="utf-8") as fh:
            fh.write(text)
        Path(fh.name).replace(out / name)
    print(f"wrote {len(files)} files to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="compare with the files in --out, write nothing")
    args = parser.parse_args(argv)
    return write_or_check(model_files(train_tokenizer()), args.out, args.check)


if __name__ == "__main__":
    sys.exit(main())
