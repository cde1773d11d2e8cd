"""The session's results document: one schema-versioned JSON from which every report is rendered.

It holds every case, every start's summary and startup facts, the statistics over starts and (when a gate ran)
the verdicts. Secrets are masked before anything is written.

The file is strict JSON (browsers' ``JSON.parse`` rejects ``NaN``): a number that is not finite (NaN: no data,
e.g. a level without a successful request) is written as null and its place listed under ``non_finite`` with the
reason; ``load_results`` restores exactly those places, so readers see the floats the run produced. Loading
also checks the shape every renderer relies on (``validate_document``), so a file of another shape is a clear
error naming the key instead of a KeyError inside a report.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

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
                "server_lost": s.server_lost,
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
    strict = finite_json(redact_obj(json.loads(json.dumps(document, default=_jsonable))))
    text = json.dumps(strict, indent=2, sort_keys=False, allow_nan=False)
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


NON_FINITE_REASON = (
    "JSON has no NaN or Infinity: the numbers at these paths were not finite (NaN: no data, e.g. no successful "
    "request in a level) and are written as null; servegate's reader restores them"
)


def finite_json(document: dict) -> dict:
    """``document`` with every non-finite float replaced by null, and ``non_finite`` listing where and what."""
    places: list[list[str | int]] = []
    values: list[str] = []

    def walk(obj: Any, path: list[str | int]) -> Any:
        if isinstance(obj, float) and not math.isfinite(obj):
            places.append(path)
            values.append("NaN" if math.isnan(obj) else "Infinity" if obj > 0 else "-Infinity")
            return None
        if isinstance(obj, dict):
            return {k: walk(v, [*path, k]) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v, [*path, i]) for i, v in enumerate(obj)]
        return obj

    out = walk(document, [])
    if places:
        out["non_finite"] = {"reason": NON_FINITE_REASON, "paths": places, "values": values}
    return out


def restore_non_finite(document: dict) -> dict:
    """Put back the floats ``finite_json`` replaced (in place); returns the document."""
    listed = document.get("non_finite") or {}
    for path, value in zip(listed.get("paths") or [], listed.get("values") or [], strict=False):
        parent: Any = document
        try:
            for key in path[:-1]:
                parent = parent[key]
            if parent[path[-1]] is None:
                parent[path[-1]] = float(value.replace("Infinity", "inf"))
        except (KeyError, IndexError, TypeError, ValueError):
            continue  # a hand-edited file: the null stays, validation reports it if it matters
    return document


# The shape the terminal table, the HTML report and the bench bridge read; everything else is optional.
class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Level(_Model):
    label: str
    summary: dict[str, Any]


class _Start(_Model):
    levels: list[_Level]
    facts: dict[str, Any]


class _Stat(_Model):
    mean: float
    ci_low: float
    ci_high: float
    cov: float
    n: int


class _GateRow(_Model):
    metric: str
    verdict: str
    reason: str


class _Case(_Model):
    id: str
    suite: str
    starts: list[_Start]
    values: dict[str, list[float]]
    stats: dict[str, _Stat]
    gate: list[_GateRow] = []
    ab: list[_GateRow] = []


class _Document(_Model):
    schema_version: int
    cases: list[_Case]


def validate_document(document: Any) -> list[str]:
    """Every place where ``document`` does not have the shape reports read, as ``cases[0].starts: <problem>``."""
    try:
        _Document.model_validate(document)
    except ValidationError as exc:
        return [
            "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
            + f": {err['msg'].lower()}"
            for err in exc.errors(include_url=False)
        ]
    return []


def load_results(path: Path) -> dict:
    """A results document as written (non-finite numbers restored), or ``ValueError`` naming the file and key."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
        found = doc.get("schema_version") if isinstance(doc, dict) else None
        raise ValueError(f"{path}: schema_version {found!r}, this servegate reads {SCHEMA_VERSION}")
    restore_non_finite(doc)
    problems = validate_document(doc)
    if problems:
        raise ValueError(f"{path}: not a servegate results document of this version: " + "; ".join(problems[:5]))
    return doc
