"""Correctness: greedy outputs equal across independent starts and equal to the stored golden file."""

from __future__ import annotations

from pathlib import Path

import pytest

from servegate.correctness import greedy_outputs, load_golden, mismatches, save_golden

SUITE = "correctness"
GATED = False  # compares outputs with a golden file, no gate rows
PROMPTS = Path(__file__).resolve().parents[1] / "datasets" / "prompts" / "correctness.txt"


def test_correctness(case, bench) -> None:
    prompts = [line for line in PROMPTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    max_tokens = case.load.output_tokens
    runs: list[list[str]] = []
    for i in range(bench.restarts_for(case)):
        bench.progress(f"[{case.id}] start {i + 1}: greedy outputs for {len(prompts)} prompts")
        with bench.launcher().start(case.server, bench.log_dir) as server:
            runs.append(greedy_outputs(server.base_url, case.server.model_name, prompts, max_tokens, case.load.seed))
    for i, run in enumerate(runs[1:], start=2):
        diff = mismatches(runs[0], run, prompts)
        assert not diff, f"start {i} computed different greedy outputs than start 1:\n" + "\n".join(diff)

    golden = bench.regression.path_for(case.suite, case.id).with_suffix(".golden.json")
    if bench.update_baselines:
        save_golden(golden, prompts, runs[0], {"server": case.server.id, "max_tokens": max_tokens})
        bench.progress(f"[{case.id}] golden outputs written to {golden}")
        return
    if not golden.is_file():
        pytest.fail(f"no golden outputs for this hardware at {golden}; record them with --update-baselines")
    doc = load_golden(golden)
    assert doc["prompts"] == prompts, f"{golden} was recorded for other prompts; re-record with --update-baselines"
    diff = mismatches(doc["outputs"], runs[0], prompts)
    assert not diff, f"greedy outputs differ from {golden}:\n" + "\n".join(diff)
