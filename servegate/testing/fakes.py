"""Stand-ins for servegate's own tests: a launcher that runs a script instead of vLLM (to drive the lifecycle
paths real vLLM cannot take on demand) and hand-made server starts (to test statistics, gate and plugin plumbing
without a server). Never used to measure anything."""

from __future__ import annotations

import dataclasses
import sys
import textwrap

from servegate.config import ServerConfig
from servegate.launch.base import StartupFacts
from servegate.launch.local import LocalProcessLauncher
from servegate.load.client import RunResult
from servegate.load.measure import LevelResult
from servegate.load.records import RequestRecord
from servegate.metrics import summarize
from servegate.runner import StartResult


class ScriptLauncher(LocalProcessLauncher):
    """Runs a Python script in place of the vLLM module; the port is passed as the last argument."""

    def __init__(self, script: str) -> None:
        super().__init__(python=sys.executable)
        self.script = textwrap.dedent(script)

    def command(self, config: ServerConfig, port: int) -> list[str]:
        return [self.python, "-c", self.script, str(port)]


def fake_start(index: int, scale: float, **summary_fields: object) -> StartResult:
    """One server start of four 4-token requests whose every timing is multiplied by ``scale`` (1.0 = reference
    speed): latencies grow and throughputs shrink in proportion, as a uniformly slower server's would.
    ``summary_fields`` override the summary (``success_rate=0.0``, ``client_bound=True``) to stand for a bad run."""
    records = []
    for k in range(4):
        times = [x * scale for x in (0.100, 0.110, 0.120, 0.130)]
        record = RequestRecord(k, 8, 4, scheduled_at=0.0, sent_at=0.0, chunk_times=times, done_at=0.14 * scale)
        record.prompt_tokens, record.output_tokens = 8, 4
        records.append(record)
    summary = dataclasses.replace(summarize(RunResult(records, 0.0, 0.2 * scale, 0.0)), **summary_fields)
    return StartResult(index, StartupFacts(vllm_version="test"), [LevelResult("c1", 1, None, summary)], None, 0.0)


# The test module of a scratch pytester project: each case records two hand-made starts instead of running vLLM.
FAKE_SUITE_MODULE = """
from servegate.runner import CaseResult
from servegate.testing.fakes import fake_start

SUITE = "serving"


def test_serving(case, bench):
    scale = 1.0 + 0.01 * case.load.concurrency
    result = CaseResult(case.id, case.server, case.load, [fake_start(0, scale), fake_start(1, scale * 1.01)])
    bench.record(case, result)
"""


# Like FAKE_SUITE_MODULE, through the plugin's whole baseline/gate path (bench.conclude); the environment picks a
# kind of run: FAKE_RUN=good|failing|client-bound|one-start|nan|slow, FAKE_BODY_FAILS=1 fails the test's own check.
FAKE_GATED_MODULE = """
import math, os
from servegate.runner import CaseResult
from servegate.testing.fakes import fake_start

SUITE = "serving"

KINDS = {
    "good": lambda i, s: fake_start(i, s),
    "slow": lambda i, s: fake_start(i, 40 * s),
    "failing": lambda i, s: fake_start(i, s, success_rate=0.0),
    "client-bound": lambda i, s: fake_start(i, s, client_bound=True, client_bound_reason="send lag 900 ms"),
    "nan": lambda i, s: fake_start(i, s, output_throughput=math.nan),
}


def test_serving(case, bench):
    kind = os.environ.get("FAKE_RUN", "good")
    scale = 1.0 + 0.01 * case.load.concurrency
    n = 1 if kind == "one-start" else 3
    make = KINDS.get(kind, KINDS["good"])
    starts = [make(i, scale * (1 + 0.01 * i)) for i in range(n)]
    load = bench.scaled_steps(case)[-1][1]  # after --intensity, as BenchSession.run measures it
    bench.conclude(case, CaseResult(case.id, case.server, load, starts))
    assert os.environ.get("FAKE_BODY_FAILS") != "1", "the suite's own check failed"
"""
