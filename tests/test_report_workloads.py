"""The report's workload sections, rendered from a results document built by the real code paths (capacity
search, Pareto front, steady-state detection) on constructed runs: every section present, every plot a real PNG."""

from __future__ import annotations

import base64
import io
import re
from dataclasses import replace

from PIL import Image

from servegate.capacity import Limit, search
from servegate.config import LoadConfig, ServerConfig
from servegate.launch.base import StartupFacts
from servegate.load.client import RunResult
from servegate.load.measure import LevelResult
from servegate.load.records import RequestRecord
from servegate.metrics import summarize
from servegate.pareto import Front
from servegate.report.html import render_html
from servegate.results import case_record, session_record
from servegate.runner import CaseResult, StartResult
from servegate.steady_state import detect

IMG_SRC = re.compile(r'<img[^>]*alt="([^"]+)"[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def level(c: int, jitter: float) -> LevelResult:
    """``c`` closed-loop slots, 8 slots served at once: beyond 8 requests wait, TTFT jumps."""
    records, free = [], [0.0] * c
    tpot = 0.004 * (1 + c / 8) * jitter
    for i in range(6 * c):
        slot = min(range(c), key=free.__getitem__)
        wait = 0.3 * (c - 8) / 8 if c > 8 else 0.0
        sent = free[slot]
        r = RequestRecord(i, 64, 16, scheduled_at=sent, sent_at=sent)
        r.chunk_times = [sent + wait + 0.02 + k * tpot for k in range(16)]
        r.done_at = r.chunk_times[-1]
        r.prompt_tokens, r.output_tokens = 64, 16
        free[slot] = r.done_at
        records.append(r)
    run = RunResult(records, 0.0, max(free), 0.0)
    summary = summarize(run)
    summary.steady = detect(run).to_dict(applied=False)
    summary.server_metrics = {
        "prefix_cache_hit_rate": 0.25,
        "spec_acceptance_rate": 0.6,
        "spec_mean_acceptance_length": 2.1,
        "spec_acceptance_pos0": 0.7,
        "spec_acceptance_pos1": 0.4,
    }
    summary.energy = {"status": "not measured: no GPU power meter on cpu"}
    return LevelResult(f"c{c}", c, None, summary)


def start(index: int, jitter: float) -> StartResult:
    measured = {c: level(c, jitter) for c in (1, 2, 4, 8, 16)}
    found = search(sorted(measured), (Limit("ttft_p99_ms", 200.0),), lambda c: measured[c].summary.flat())
    front = Front.of(list(measured.values()), gpus=1)
    derived = {**found.derived(), "throughput_per_gpu_at_interactivity": front.throughput_at(150.0)}
    findings = {
        "capacity": {
            "text": found.describe(),
            "boundary": found.boundary,
            "cliff": found.cliff,
            "first_failing": found.first_failing,
            "capacity": found.capacity,
            "cliff_factor": found.cliff_factor,
            "limits": ["ttft_p99_ms <= 200"],
            "probes": [{"level": p.level, "violated": list(p.violated)} for p in found.probes],
        },
        "pareto": front.to_dict(),
    }
    return StartResult(
        index, StartupFacts(vllm_version="test"), list(measured.values()), None, 0.0, derived=derived, findings=findings
    )


def test_capacity_pareto_steady_and_server_rates_are_rendered() -> None:
    load = replace(
        LoadConfig(profile="capacity", concurrency_levels=(1, 2, 4, 8, 16), slo_limits=(("ttft_p99_ms", 200.0),)),
        pareto_interactivity=150.0,
    )
    result = CaseResult("cpu/x/capacity", ServerConfig(model="m"), load, [start(0, 1.0), start(1, 1.03)])
    doc = session_record([case_record(result.case_id, "capacity", "cpu", result)], {"hardware": "test"})
    page = render_html(doc)
    for heading in (
        "Capacity under the SLO",
        "Interactivity vs throughput",
        "Steady state, prefix cache, speculative decoding, energy",
    ):
        assert heading in page
    assert "capacity_at_slo (gated, higher is better)" in page and "not measured: no GPU power meter" in page
    assert "warmup trimmed s" in page and "prefix-cache hit rate" in page
    images = dict(IMG_SRC.findall(page))
    for alt in ("capacity chart", "Pareto front"):
        png = Image.open(io.BytesIO(base64.b64decode(images[alt])))
        assert png.size[0] > 400 and png.size[1] > 200
    stats = doc.cases[0].stats
    assert 8 <= stats["capacity_at_slo"].mean <= 16  # the model: 8 slots, then a queue
    assert stats["throughput_per_gpu_at_interactivity"].n == 2
