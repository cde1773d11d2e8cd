"""RegressionGate: record a baseline, then gate an A/A rerun, a planted slowdown, a corrupted file, other hardware.

Per-start values are simulated (the statistics are the subject here; tests/test_gate_vllm.py does it with vLLM).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from servegate.baseline import BaselineError
from servegate.config import LoadConfig, ServerConfig
from servegate.hardware.detect import detected
from servegate.regression import RegressionGate, planned_rows
from servegate.runner import CaseResult
from servegate.sequential import Budget
from servegate.stats import Verdict
from servegate.testing.fakes import fake_start

pytest_plugins = ["pytester"]

CASE_ID = "cpu/tiny-llama/c4-in8-out4"
HW = detected().hardware_id


def case(slowdowns: list[float]) -> CaseResult:
    return CaseResult(
        CASE_ID,
        ServerConfig(model="tiny-llama"),
        LoadConfig(concurrency=4, num_requests=4, prompt_tokens=8, output_tokens=4),
        [fake_start(i, s) for i, s in enumerate(slowdowns)],
    )


def noisy(rng: np.random.Generator, level: float, cov: float = 0.005, n: int = 5) -> list[float]:
    return list(level * (1 + cov * rng.standard_normal(n)))


def test_a_a_rerun_is_not_regressed_and_a_planted_slowdown_is(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    gate = RegressionGate(tmp_path, HW, family_size=5)
    path = gate.record("serving", CASE_ID, case(noisy(rng, 1.0)))
    assert path.is_file() and path.is_relative_to(tmp_path / HW / "serving")

    same = gate.check("serving", CASE_ID, case(noisy(rng, 1.0)))
    assert {r.verdict for r in same} <= {Verdict.OK, Verdict.INCONCLUSIVE}, [r.reason for r in same]
    assert any(r.verdict is Verdict.OK for r in same)

    slower = gate.check("serving", CASE_ID, case(noisy(rng, 1.2)))
    regressed = {r.metric for r in slower if r.verdict is Verdict.REGRESSED}
    assert {"ttft_median_ms", "output_throughput", "request_throughput"} <= regressed, [r.reason for r in slower]


def test_sequential_looks_stop_early_on_a_clear_regression_and_spend_the_budget_on_noise(tmp_path: Path) -> None:
    """The plugin's loop in miniature: one look per round from the budget's minimum on."""
    rng = np.random.default_rng(2)
    gate = RegressionGate(tmp_path, HW, family_size=20)
    budget = Budget(3, 8)
    gate.record("serving", CASE_ID, case(noisy(rng, 1.0, n=8)))
    baseline = gate.baseline("serving", CASE_ID)
    assert baseline is not None

    def run(level: float, cov: float) -> tuple[int, list]:
        monitor = gate.monitor(budget)
        starts = noisy(rng, level, cov, budget.max_starts)
        for n in budget.looks:
            monitor.look(n, gate.look(baseline, CASE_ID, case(starts[:n]), budget))
            if monitor.done:
                return n, monitor.final()
        raise AssertionError("the budget's last look must end the case")

    n_slow, slow = run(2.0, 0.005)
    assert n_slow == 3 and any(r.verdict is Verdict.REGRESSED for r in slow)
    n_same, same = run(1.0, 0.005)
    assert n_same < budget.max_starts and all(r.verdict is Verdict.OK for r in same), [r.reason for r in same]
    n_noisy, noise = run(1.0, 0.2)
    assert n_noisy == 8 and not any(r.verdict is Verdict.REGRESSED for r in noise)


def test_the_planned_family_counts_every_level_of_sweeps_and_saturation() -> None:
    five = ("a", "b", "c", "d", "e")
    phases = [("c1", LoadConfig(profile="synchronous")), ("c4", LoadConfig(concurrency=4))]
    assert planned_rows(phases, five) == 10
    assert planned_rows([("", LoadConfig(profile="saturation", concurrency_levels=(1, 2, 4, 8)))], five) == 20
    assert planned_rows([("", LoadConfig(profile="sweep", sweep_rates=4))], ["a"]) == 6


def test_missing_corrupted_and_foreign_baselines_say_what_to_do(tmp_path: Path) -> None:
    gate = RegressionGate(tmp_path, HW)
    (row,) = gate.check("serving", CASE_ID, case([1.0, 1.0]))
    assert row.verdict is Verdict.NOT_COMPARED and "--update-baselines" in row.reason

    path = gate.record("serving", CASE_ID, case([1.0, 1.01, 0.99]))
    path.write_text(path.read_text()[:-40])  # a truncated file, as a crash mid-write by another tool leaves it
    with pytest.raises(BaselineError, match=str(path)):
        gate.check("serving", CASE_ID, case([1.0, 1.0]))

    gate.record("serving", CASE_ID, case([1.0, 1.01, 0.99]))
    doc = json.loads(path.read_text())
    doc["fingerprint"]["hardware_name"] = "AMD Instinct MI300X"
    path.write_text(json.dumps(doc))
    rows = gate.check("serving", CASE_ID, case([1.0, 1.01]))
    assert [r.verdict for r in rows] == [Verdict.NOT_COMPARED]
    assert "MI300X" in rows[0].reason


STUB_SERVER = """
import asyncio, json, os, sys
from servegate.testing import stub_server

VOCAB: dict[str, int] = {}
WORDS: list[str] = []
serve_completion = stub_server._Stub.handle


def handle(self, proto, path, body):
    # /tokenize and /detokenize by whole words, so synthetic prompts can be cut to length as with vLLM.
    if path.startswith(("/tokenize", "/detokenize")):
        req = json.loads(body)
        if path.startswith("/tokenize"):
            out = {"tokens": [VOCAB.setdefault(w, len(VOCAB)) for w in req["prompt"].split()]}
            WORDS[:] = sorted(VOCAB, key=VOCAB.get)
        else:
            out = {"prompt": " ".join(WORDS[i] for i in req["tokens"])}
        data = json.dumps(out).encode()
        proto.write(b"HTTP/1.1 200 OK\\r\\ncontent-length: %d\\r\\n\\r\\n%s" % (len(data), data))
        proto.finish()
        return
    serve_completion(self, proto, path, body)


stub_server._Stub.handle = handle
cfg = stub_server.StubConfig(float(os.environ["STUB_TTFT_MS"]) / 1000, float(os.environ["STUB_ITL_MS"]) / 1000)
loop = asyncio.new_event_loop()
loop.run_until_complete(stub_server.serve(cfg, port=int(sys.argv[-1])))
loop.run_forever()
"""

STUB_CONFTEST = f"""
from servegate.pytest.plugin import BenchSession
from servegate.testing.fakes import ScriptLauncher

# Every server start is the stub server with the latency the test's environment gives (no vLLM).
BenchSession.launcher = lambda self: ScriptLauncher({STUB_SERVER!r})
pytest_plugins = ["servegate.pytest.plugin"]
"""

STUB_SUITE = """
hardware: cpu
suites:
  serving:
    restarts: {min: 3, max: 5}
    gate: {metrics: [ttft_median_ms, e2el_median_ms]}
    servers:
      - {model: stub, name: stub}
    loads:
      - {concurrency: 2, num_requests: 8, output_tokens: 4, warmup_requests: 1, client_check: false,
          scrape_metrics: false}
"""

STUB_MODULE = """
SUITE = "serving"

def test_serving(case, bench):
    bench.run(case)
"""


def test_plugin_looks_after_every_round_and_stops_on_a_clear_regression(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin's loop end to end on stub servers: a baseline from the budget's maximum, then a server 4x
    slower to first token REGRESSED at the first look (3 starts), each look in the progress and the document."""
    pytester.makeconftest(STUB_CONFTEST)
    suites = pytester.mkdir("suites")
    (suites / "test_serving.py").write_text(STUB_MODULE)
    yaml_path = suites / "cpu.yaml"
    yaml_path.write_text(STUB_SUITE)
    monkeypatch.setenv("STUB_ITL_MS", "5")
    monkeypatch.setenv("STUB_TTFT_MS", "50")  # the servers inherit it; the config (and its id) stays the same
    common = ["suites", "-p", "no:cacheprovider", "-s", "--baselines-dir", "bl", "--results-dir", "res", "-m", "cpu"]
    # --force-baseline: a busy machine can flag a start CLIENT-BOUND (event-loop lag), which refuses the baseline;
    # what is tested here is the looks of the gated run, not the recording rules (tests/test_baseline.py).
    recorded = pytester.runpytest_subprocess(*common, "--update-baselines", "--force-baseline", timeout=600)
    recorded.assert_outcomes(passed=1)
    assert len(list((pytester.path / "res" / "logs").glob("*.log"))) == 5  # the budget's maximum

    monkeypatch.setenv("STUB_TTFT_MS", "200")
    gated = pytester.runpytest_subprocess(*common, timeout=600)
    gated.assert_outcomes(failed=1)
    out = gated.stdout.str()
    assert "look 1 (n=3): 2 decided, 0 open (REGRESSED 2)" in out and "stopping" in out and "look 2" not in out
    doc = json.loads(sorted((pytester.path / "res").glob("results-*.json"))[-1].read_text())
    (case,) = doc["cases"]
    assert [look["n"] for look in case["gate_looks"]] == [3]
    ttft = next(row for row in case["gate"] if row["metric"] == "ttft_median_ms")
    assert ttft["verdict"] == "REGRESSED" and ttft["family_size"] == 2 and ttft["look"] == 3
    assert "ttft_median_ms" in case["variance"]
