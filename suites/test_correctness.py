"""Correctness: greedy outputs equal across independent starts and equal to the stored golden file."""

from __future__ import annotations

from pathlib import Path

import pytest

from servegate.correctness import greedy_outputs, load_golden, mismatches, save_golden
from servegate.runner import CaseResult, StartResult

SUITE = "correctness"
GATED = False  # compares outputs with a golden file, no gate rows
PROMPTS = Path(__file__).resolve().parents[1] / "datasets" / "prompts" / "correctness.txt"


def test_correctness(case, bench) -> None:
    prompts = [line for line in PROMPTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    max_tokens = case.load.output_tokens
    runs: list[list[str]] = []
    result = CaseResult(case.id, case.server, case.load)
    for i in range(bench.restarts_for(case)):
        bench.progress(f"[{case.id}] start {i + 1}: greedy outputs for {len(prompts)} prompts")
        with bench.launcher().start(case.server, bench.log_dir) as server:
            runs.append(greedy_outputs(server.base_url, case.server.model_name, prompts, max_tokens, case.load.seed))
        result.starts.append(StartResult(i, server.facts, [], str(server.log_path), 0.0))
    across = [
        line
        for i, run in enumerate(runs[1:], start=2)
        for line in (f"start {i}: {d}" for d in mismatches(runs[0], run, prompts))
    ]

    golden = bench.regression.path_for(case.suite, case.id).with_suffix(".golden.json")
    expected: list[str] | None = None
    if bench.update_baselines:
        save_golden(golden, prompts, runs[0], {"server": case.server.id, "max_tokens": max_tokens})
        bench.progress(f"[{case.id}] golden outputs written to {golden}")
        verdict = "recorded"
    elif not golden.is_file():
        verdict = "no golden file"
    else:
        doc = load_golden(golden)
        expected = doc["outputs"] if doc["prompts"] == prompts else None
        verdict = "recorded for other prompts" if expected is None else "compared"
    against = mismatches(expected, runs[0], prompts) if expected is not None else []
    bench.record(
        case,
        result,
        correctness={
            "prompts": prompts,
            "outputs": runs[0],
            "max_tokens": max_tokens,
            "starts": len(runs),
            "across_starts": across,
            "golden": str(golden),
            "golden_status": verdict,
            "golden_mismatches": against,
            "golden_outputs": expected,
        },
    )

    assert not across, "greedy outputs differ between starts (start 1 is the reference):\n" + "\n".join(across)
    if verdict == "no golden file":
        pytest.fail(f"no golden outputs for this hardware at {golden}; record them with --update-baselines")
    assert verdict != "recorded for other prompts", (
        f"{golden} was recorded for other prompts; re-record with --update-baselines"
    )
    assert not against, f"greedy outputs differ from {golden}:\n" + "\n".join(against)
