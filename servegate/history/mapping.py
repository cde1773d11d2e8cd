"""A results record (servegate.record.Session) as history rows: the one place that knows both shapes.

The record is typed and validated when it is made or loaded (older files are upgraded on load), so fields are
read directly; only the free-form parts (the environment, a start's ``extra`` facts) are read with ``.get``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from servegate.record import Case, Session

# Fingerprint fields kept as columns of a session, in the order `servegate history` names what changed.
FINGERPRINT_FIELDS: tuple[str, ...] = (
    "hardware_id",
    "hardware_name",
    "hardware_arch",
    "device_count",
    "driver",
    "rocm_version",
    "cuda_version",
    "vllm_version",
    "image_digest",
    "servegate_version",
    "git_sha",
)


_GATE_NUMBERS = ("ratio", "ci_low", "ci_high", "p_value", "tolerance")


@dataclass
class CaseRows:
    """One case of a session: its identity, every start's value of every metric, its gate rows, its nodes."""

    case: dict[str, Any]
    values: list[dict[str, Any]] = field(default_factory=list)
    gate: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SessionRows:
    session: dict[str, Any]
    cases: list[CaseRows]


def session_digest(session: Session) -> str:
    """Identity of a session: the same session recorded twice is one session, not two. The history note is added
    after recording and ``non_finite`` only describes the file, so neither is part of it."""
    body = session.model_dump(exclude={"history", "non_finite"})
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str, allow_nan=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def session_rows(session: Session) -> SessionRows:
    """Rows for one session. The vLLM version and image digest come from the servers' own start facts (what
    actually ran), the hardware from the environment's fingerprint, the git SHA from the environment."""
    env = session.environment
    hw = env.get("fingerprint") or {}
    facts = [start.facts for case in session.cases for start in case.starts]
    row = {
        "document_sha256": session_digest(session),
        "created": session.created or _now(),
        "recorded": _now(),
        "servegate_version": session.servegate_version,
        "git_sha": env.get("git sha"),
        "hardware_id": hw.get("hardware_id") or env.get("hardware id"),
        "hardware_name": hw.get("name"),
        "hardware_arch": hw.get("arch"),
        "device_count": hw.get("count"),
        "driver": hw.get("driver"),
        "rocm_version": hw.get("rocm_version"),
        "cuda_version": hw.get("cuda_version"),
        "vllm_version": _first(f.vllm_version for f in facts),
        "image_digest": _first(f.extra.get("image_digest") for f in facts),
        "command": env.get("command"),
        "environment": json.dumps(env, sort_keys=True, default=str),
        "shard_count": len(session.shards) if session.shards is not None else None,
    }
    return SessionRows(row, [_case_rows(case) for case in session.cases])


def _case_rows(case: Case) -> CaseRows:
    rows = CaseRows(
        {
            "case_id": case.id,
            "suite": case.suite,
            "hardware": case.hardware,
            "server_id": case.server_id,
            "load_id": case.load_id,
            "arm": case.arm,
            "server": json.dumps(case.server, sort_keys=True, default=str),
            "load": json.dumps(case.load, sort_keys=True, default=str),
        }
    )
    for metric, series in case.values.items():
        for index, value in enumerate(series):
            if math.isfinite(value):  # a failed start's NaN is not a value
                rows.values.append({"metric": metric, "start_index": index, "value": float(value)})
    for gate_row in case.gate:
        rows.gate.append(
            {
                "metric": gate_row.metric,
                "verdict": gate_row.verdict,
                **{k: _number(getattr(gate_row, k)) for k in _GATE_NUMBERS},
                "p_adjusted": None,  # a gate row carries no adjusted p-value
                "reason": gate_row.reason,
            }
        )
    for start in case.starts:
        for node in start.facts.extra.get("cluster_nodes") or []:
            rows.nodes.append(
                {
                    "start_index": start.index,
                    "node": str(node.get("node_id") or node.get("address") or "?"),
                    "address": node.get("address"),
                    "resources": json.dumps(node.get("resources") or {}, sort_keys=True),
                }
            )
    return rows


def _first(values: Any) -> Any:
    return next((v for v in values if v), None)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
