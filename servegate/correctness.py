"""Greedy-output correctness: a build that is fast but computes something else must fail.

Prompts are fixed, decoding is greedy (temperature 0, fixed seed, ignore_eos for a fixed length), so the same
weights, kernels and numerics give the same text. Golden files are per hardware id and server config, since
numerics legitimately differ between GPU generations and CPU instruction sets.
"""

from __future__ import annotations

import json
from pathlib import Path

from openai import OpenAI

from servegate.baseline import atomic_write_text

GOLDEN_SCHEMA = 1


def greedy_outputs(base_url: str, model: str, prompts: list[str], max_tokens: int, seed: int = 0) -> list[str]:
    client = OpenAI(base_url=base_url + "/v1", api_key="servegate-local", timeout=300.0, max_retries=0)
    outputs = []
    for prompt in prompts:
        completion = client.completions.create(
            model=model,
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=0.0,
            seed=seed,
            extra_body={"ignore_eos": True},
        )
        outputs.append(completion.choices[0].text)
    return outputs


def mismatches(expected: list[str], actual: list[str], prompts: list[str]) -> list[str]:
    """One line per differing prompt, with the first differing character, so a diff can be read in a CI log."""
    lines = []
    for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
        if want != got:
            at = next((k for k, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), min(len(want), len(got)))
            lines.append(f"prompt {i} {prompts[i][:40]!r}: differs at char {at}: expected {want!r}, got {got!r}")
    return lines


def save_golden(path: Path, prompts: list[str], outputs: list[str], settings: dict) -> None:
    doc = {"schema_version": GOLDEN_SCHEMA, "settings": settings, "prompts": prompts, "outputs": outputs}
    atomic_write_text(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def load_golden(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: golden file is not valid JSON ({exc}); re-record with --update-baselines") from exc
    if doc.get("schema_version") != GOLDEN_SCHEMA or not isinstance(doc.get("outputs"), list):
        raise ValueError(f"{path}: expected golden schema_version {GOLDEN_SCHEMA} with 'prompts' and 'outputs'")
    return doc
