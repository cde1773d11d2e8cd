"""Results sessions for the history tests, made by the real record makers (servegate.results) from hand-made
starts: synthetic numbers, real record."""

from __future__ import annotations

from dataclasses import replace

from servegate.config import LoadConfig, ServerConfig
from servegate.launch.base import StartupFacts
from servegate.record import GateRow, Session
from servegate.results import case_record, session_record
from servegate.runner import CaseResult
from servegate.testing.fakes import fake_start

HARDWARE = {
    "vendor": "cpu",
    "name": "Test CPU",
    "arch": "x86_64",
    "count": 1,
    "driver": None,
    "rocm_version": None,
    "cuda_version": None,
    "hardware_id": "cpu-test-cpu-2c",
}


def make_session(
    created: str,
    scales: dict[str, list[float]],
    vllm_version: str = "0.20.1",
    git_sha: str | None = None,
    gate: list[GateRow] | None = None,
    nodes: list[dict] | None = None,
) -> Session:
    """One session: per case id, one fake start per scale (1.0 = reference speed, 1.1 = 10% slower)."""
    cases = []
    for case_id, case_scales in scales.items():
        facts = StartupFacts(vllm_version=vllm_version, extra={"cluster_nodes": nodes} if nodes else {})
        starts = [replace(fake_start(i, s), facts=facts) for i, s in enumerate(case_scales)]
        result = CaseResult(case_id, ServerConfig(model="tiny"), LoadConfig(), starts)
        cases.append(case_record(case_id, "serving", "cpu", result, gate=gate or []))
    environment = {"hardware id": HARDWARE["hardware_id"], "fingerprint": HARDWARE, "command": "pytest suites/"}
    if git_sha:
        environment["git sha"] = git_sha
    session = session_record(cases, environment)
    session.created = created
    return session


def stamp(day: int) -> str:
    """A creation time ``day`` days into a month-long nightly series (day 0..59)."""
    return f"2026-{10 + day // 30:02d}-{1 + day % 30:02d}T03:00:00Z"
