"""The session's results document: one schema-versioned JSON from which every report is rendered.

It holds every case, every start's summary and startup facts, the statistics over starts and (when a gate ran)
the verdicts. Secrets are masked before anything is written.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from servegate import __version__
from servegate.baseline import atomic_write_text
from servegate.redact import redact_env, redact_obj
from servegate.runner import CaseResult
from servegate.stats import estimate

SCHEMA_VERSION = 1


def stats_of(values: dict[str, list[float]], confidence: float = 0.95) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for metric, series in values.items():
        clean = [v for v in series if not math.isnan(v)]
        if not clean:
            continue
        est = estimate(clean, confidence)
        out[metric] = {
            "n": est.n,
            "mean": est.mean,
            "sd": est.sd,
            "cov": est.cov,
            "ci_low": est.ci_low,
            "ci_high": est.ci_high,
            "confidence": confidence,
        }
    return out


def case_document(case_id: str, suite: str, hardware: str, result: CaseResult, extra: dict | None = None) -> dict:
    server = asdict(result.server)
    server["env"] = redact_env(dict(result.server.env))
    return {
        "id": case_id,
        "suite": suite,
        "hardware": hardware,
        "server": server,
        "server_id": result.server.id,
        "load": asdict(result.load),
        "load_id": result.load.id,
        "starts": [
            {
                "index": s.start_index,
                "facts": s.facts.to_dict(),
                "levels": [
                    {"label": lv.label, "concurrency": lv.concurrency, "rate": lv.rate, "summary": lv.summary.to_dict()}
                    for lv in s.levels
                ],
                "warmup_s": s.warmup_s,
                "derived": s.derived,
                "findings": s.findings,
                "log_path": s.log_path,
            }
            for s in result.starts
        ],
        "values": result.values(),
        "stats": stats_of(result.values()),
        **(extra or {}),
    }


def session_document(cases: list[dict], environment: dict[str, Any]) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "servegate_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "environment": environment,
        "cases": cases,
    }


def write_results(path: Path, document: dict) -> Path:
    """Atomic, so a crash or a full disk never leaves a half-written results file behind."""
    text = json.dumps(redact_obj(document), indent=2, sort_keys=False, default=_jsonable, allow_nan=True)
    try:
        atomic_write_text(path, text + "\n")
    except OSError as exc:
        # A bare "[Errno 28] No space left on device" names neither the file nor what became of the old one.
        raise OSError(
            exc.errno,
            f"cannot write the results JSON {path}: {exc.strerror or exc}; nothing was replaced "
            f"(a previous file there is intact, no partial file was left)",
        ) from exc
    return path


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def load_results(path: Path) -> dict:
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {doc.get('schema_version')!r}, this servegate reads {SCHEMA_VERSION}")
    return doc
