"""A results document (servegate.results.session_document) as history rows: the one place that knows both shapes.

When the results document becomes a typed model, only this module changes. Everything is read defensively with
``.get``: documents from older servegate versions lack keys that newer ones have, and history keeps them all.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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


_GATE_NUMBERS = ("ratio", "ci_low", "ci_high", "p_value", "p_adjusted", "tolerance")


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


def document_digest(document: dict[str, Any]) -> str:
    """Identity of a session: the same results file recorded twice is one session, not two."""
    body = {k: v for k, v in document.items() if k != "history"}  # the history note is added after recording
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str, allow_nan=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def session_rows(document: dict[str, Any]) -> SessionRows:
    """Rows for one session. The vLLM version and image digest come from the servers' own start facts (what
    actually ran), the hardware from the environment's fingerprint, the git SHA from the environment."""
    env = document.get("environment") or {}
    hw = env.get("fingerprint") or {}
    facts = [start.get("facts") or {} for case in document.get("cases", []) for start in case.get("starts", [])]
    session = {
        "document_sha256": document_digest(document),
        "created": str(document.get("created") or _now()),
        "recorded": _now(),
        "servegate_version": document.get("servegate_version"),
        "git_sha": env.get("git sha"),
        "hardware_id": hw.get("hardware_id") or env.get("hardware id"),
        "hardware_name": hw.get("name"),
        "hardware_arch": hw.get("arch"),
        "device_count": hw.get("count"),
        "driver": hw.get("driver"),
        "rocm_version": hw.get("rocm_version"),
        "cuda_version": hw.get("cuda_version"),
        "vllm_version": _first(f.get("vllm_version") for f in facts),
        "image_digest": _first((f.get("extra") or {}).get("image_digest") for f in facts),
        "command": env.get("command"),
        "environment": json.dumps(env, sort_keys=True, default=str),
        "shard_count": len(document["shards"]) if isinstance(document.get("shards"), list) else None,
    }
    return SessionRows(session, [_case_rows(case) for case in document.get("cases", [])])


def _case_rows(case: dict[str, Any]) -> CaseRows:
    rows = CaseRows(
        {
            "case_id": case["id"],
            "suite": case.get("suite"),
            "hardware": case.get("hardware"),
            "server_id": case.get("server_id"),
            "load_id": case.get("load_id"),
            "arm": case.get("arm"),
            "server": json.dumps(case.get("server"), sort_keys=True, default=str),
            "load": json.dumps(case.get("load"), sort_keys=True, default=str),
        }
    )
    for metric, series in (case.get("values") or {}).items():
        for index, value in enumerate(series):
            if isinstance(value, (int, float)) and math.isfinite(value):  # a failed start's NaN is not a value
                rows.values.append({"metric": metric, "start_index": index, "value": float(value)})
    for row in case.get("gate") or []:
        rows.gate.append(
            {
                "metric": row.get("metric", "*"),
                "verdict": row.get("verdict", ""),
                **{k: _number(row.get(k)) for k in _GATE_NUMBERS},
                "reason": row.get("reason"),
            }
        )
    for start in case.get("starts", []):
        for node in (start.get("facts") or {}).get("extra", {}).get("cluster_nodes") or []:
            rows.nodes.append(
                {
                    "start_index": start.get("index", 0),
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
