"""Regenerate the tiny Idefics3-style vision-language model that the CPU `vision` suite serves with dummy weights.

Like ``tiny-llama`` it has no weights: vLLM fills them with random values, so the text it writes is noise, but the
work per request is the real multimodal path (image decode, Idefics3 preprocessing, SigLIP-style vision tower, pixel
shuffle and connector, image tokens in the prompt, then tiny-llama's decoder). Idefics3 is used because it is the
one simple vision-language model vLLM 0.32.0 can start on this venv (transformers 5, no torchvision: tox removes it):
its LLaVA, PaliGemma, Qwen2-VL, LLaVA-NeXT, InternVL, Gemma 3 and Pixtral code all import transformers' Pixtral
image processor (directly or via ``vision.get_vision_encoder_info``), which fails with
``ModuleNotFoundError: No module named 'torchvision'``; Idefics3's image processor has a pure-PIL backend.

Image splitting is off, so every image, whatever its size, is resized to one 224x224 frame: 16x16 patches of 14
pixels, pixel-shuffled by 2 into 64 image tokens, wrapped as ``<fake_token_around_image><global-img><image>*64
<fake_token_around_image>`` (66 prompt tokens per image). The tokenizer is tiny-llama's plus the special tokens the
Idefics3 processor looks up, appended so tiny-llama's ids are unchanged.

Usage: ``python datasets/make_tiny_vl_model.py [--out datasets/tiny-vl]``; ``--check`` exits 1 if the committed
files differ from what this script would write.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tokenizers import AddedToken, Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_tiny_model as text_model  # sibling script, not a package: reuse its tokenizer training and decoder shape

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "tiny-vl"
BOS, EOS, UNK = text_model.BOS, text_model.EOS, text_model.UNK
IMAGE_TOKEN = "<image>"
FAKE_IMAGE_TOKEN = "<fake_token_around_image>"
GLOBAL_IMAGE_TOKEN = "<global-img>"
END_OF_UTTERANCE = "<end_of_utterance>"
# Tile tags the processor resolves at load time (only used with image splitting, which is off).
ROW_COL_TOKENS = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]

IMAGE_SIZE = 224
PATCH_SIZE = 14
SCALE_FACTOR = 2
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2 // SCALE_FACTOR**2  # 256 patches -> 64 tokens after pixel shuffle

# A small vision tower: 2 layers at width 128 over 256 patches cost far less than the decoder per image.
VISION_CONFIG = {
    "model_type": "idefics3_vision",
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_channels": 3,
    "image_size": IMAGE_SIZE,
    "patch_size": PATCH_SIZE,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6,
    "initializer_range": 0.02,
}

# tiny-llama's role-tagged turns; an image part becomes the <image> placeholder vLLM expands into the block above.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for part in m['content'] %}{% if part['type'] == 'image' %}" + IMAGE_TOKEN + "\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_tokenizer() -> Tokenizer:
    """tiny-llama's tokenizer plus Idefics3's special tokens, so each is one id and is never split."""
    tok = text_model.train_tokenizer()
    specials = [FAKE_IMAGE_TOKEN, IMAGE_TOKEN, END_OF_UTTERANCE, GLOBAL_IMAGE_TOKEN, *ROW_COL_TOKENS]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return tok


def model_files(tok: Tokenizer) -> dict[str, str]:
    """Every file of the model directory as text, keyed by file name."""
    bos_id, eos_id, image_id = tok.token_to_id(BOS), tok.token_to_id(EOS), tok.token_to_id(IMAGE_TOKEN)
    text_config = dict(
        text_model.ARCHITECTURE,
        vocab_size=tok.get_vocab_size(),
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    config = {
        "architectures": ["Idefics3ForConditionalGeneration"],
        "model_type": "idefics3",
        "text_config": text_config,
        "vision_config": VISION_CONFIG,
        "image_token_id": image_id,
        "scale_factor": SCALE_FACTOR,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": eos_id,
    }
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": UNK,
        "pad_token": EOS,
        "model_max_length": text_model.ARCHITECTURE["max_position_embeddings"],
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "extra_special_tokens": {"image_token": IMAGE_TOKEN},
    }
    frame = {"longest_edge": IMAGE_SIZE}
    preprocessor_config = {
        "image_processor_type": "Idefics3ImageProcessor",
        "processor_class": "Idefics3Processor",
        "do_convert_rgb": True,
        "do_resize": True,
        "size": frame,
        "resample": 1,
        "do_image_splitting": False,
        "max_image_size": frame,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_pad": True,
    }
    processor_config = {"processor_class": "Idefics3Processor", "image_seq_len": IMAGE_TOKENS}
    generation_config = {"bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": eos_id}

    def dump(obj: object) -> str:
        return json.dumps(obj, indent=2, sort_keys=True) + "\n"

    return {
        "config.json": dump(config),
        "generation_config.json": dump(generation_config),
        "preprocessor_config.json": dump(preprocessor_config),
        "processor_config.json": dump(processor_config),
        # Its own file rather than a tokenizer_config key: transformers 5 gives it to both tokenizer and processor.
        "chat_template.jinja": CHAT_TEMPLATE,
        "tokenizer_config.json": dump(tokenizer_config),
        "special_tokens_map.json": dump({"bos_token": BOS, "eos_token": EOS, "unk_token": UNK, "pad_token": EOS}),
        "tokenizer.json": tok.to_str(pretty=True) + "\n",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="compare with the files in --out, write nothing")
    args = parser.parse_args(argv)
    return text_model.write_or_check(model_files(build_tokenizer()), args.out, args.check)


if __name__ == "__main__":
    sys.exit(main())
