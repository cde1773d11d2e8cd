"""The session's results file: the ``servegate.record.Session`` as one schema-versioned JSON, and the statistics
and status labels the record carries, computed here once from the starts.

``case_record`` turns a finished ``CaseResult`` into its ``Case``; ``write_results`` writes a ``Session`` with
secrets masked; ``load_results`` reads one back into the same typed objects, so the terminal, the HTML report, the
history and ``servegate merge`` all read the record, never a raw dict.

The file is strict JSON (browsers' ``JSON.parse`` rejects ``NaN``): a number that is not finite (NaN: no data,
e.g. a level without a successful request) is written as null and its place listed under ``non_finite`` with the
reason; ``load_results`` restores exactly those places, so readers see the floats the run produced. Loading
also validates the file against the record (``validate_document``), so a file of another shape is a clear error
naming the place instead of a KeyError inside a report.

Each multi-request metric's interval is the one a reader can take literally: for positive quantities (latencies,
throughputs) a t interval on the logs of the per-start values, as a ratio around the mean (``mean / f`` to
``mean * f``), so a skewed latency's interval never reaches below zero; for shares (success rate, cache hit and
acceptance rates) the plain t interval, cut to [0, 1]. Each level's status label (seed 003 Table 7) is computed
here once, from the phases, and stored: the terminal and the HTML read it instead of deciding again.

Schema versions: 2 added ``stats.*.ci_method`` (the interval above) and ``status`` per level; a version-1 file is
upgraded at load (intervals recomputed from its per-start values, labels from its statistics).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from servegate import __version__
from servegate.baseline import atomic_write_text
from servegate.record import Case, Level, Session, Start
from servegate.redact import redact_env, redact_obj
from servegate.runner import CaseResult
from servegate.stats import estimate
from servegate.status import LevelPoint, classify_levels

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1 is upgraded at load (upgrade_document)
SHARE_WORDS = ("success_rate", "hit_rate", "acceptance_rate", "acceptance_pos")  # metrics bounded by [0, 1]


def is_share(metric: str) -> bool:
    return any(word in metric for word in SHARE_WORDS)


def is_nonnegative(metric: str) -> bool:
    """Latencies and throughputs: an interval below zero would claim what no measurement can be."""
    return metric.endswith("_ms") or "throughput" in metric


def stats_of(values: dict[str, list[float]], confidence: float = 0.95) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for metric, series in values.items():
        clean = [v for v in series if not math.isnan(v)]
        if not clean:
            continue
        est = estimate(clean, confidence)
        low, high, method = est.ci_low, est.ci_high, "t"
        if is_share(metric) and est.n > 1:
            low, high, method = max(low, 0.0), min(high, 1.0), "t, cut to [0, 1]"
        elif est.n > 1 and all(0 < v < math.inf for v in clean):
            logs = estimate([math.log(v) for v in clean], confidence)
            factor = math.exp((logs.ci_high - logs.ci_low) / 2)
            low, high, method = est.mean / factor, est.mean * factor, "log-t ratio"
        elif est.n > 1 and is_nonnegative(metric) and low < 0:
            low, method = 0.0, "t, cut at 0"  # a zero start (e.g. ITL of coalesced tokens) rules out logs
        out[metric] = {
            "n": est.n,
            "mean": est.mean,
            "sd": est.sd,
            "cov": est.cov,
            "ci_low": low,
            "ci_high": high,
            "ci_method": method,
            "confidence": confidence,
        }
    return out


def level_points(levels: list[dict[str, Any]], stats: dict[str, dict[str, Any]]) -> list[LevelPoint]:
    """Means over starts per level (``levels`` in sweep order: label, concurrency), what status labels read."""
    multi = len(levels) > 1

    def mean(label: str, metric: str) -> float | None:
        s = stats.get(f"{label}/{metric}" if multi else metric)
        return s["mean"] if s else None

    return [
        LevelPoint(
            lv["label"],
            lv.get("concurrency"),
            mean(lv["label"], "success_rate") or 0.0,  # no successful request at all: FAILING
            mean(lv["label"], "e2el_p99_ms"),
            mean(lv["label"], "total_token_throughput") or mean(lv["label"], "output_throughput"),
        )
        for lv in levels
    ]


def case_status(starts: list[dict[str, Any]], stats: dict[str, dict[str, Any]], profile: str) -> dict[str, dict]:
    """Level label -> phase, status and the ratios that decided it, for the levels of every start in order."""
    levels: dict[str, dict[str, Any]] = {}
    for start in starts:
        for lv in start.get("levels") or []:
            levels.setdefault(str(lv["label"]), lv)
    statuses = classify_levels(level_points(list(levels.values()), stats), profile)
    return {s.label: s.to_dict() for s in statuses}


def case_record(case_id: str, suite: str, hardware: str, result: CaseResult, **extra: Any) -> Case:
    """The record of a finished case: its starts as measured, and what is computed over them once (statistics,
    status labels). ``extra`` sets further fields of ``Case`` (gate rows, arm, correctness, ...)."""
    server = asdict(result.server)
    server["env"] = redact_env(dict(result.server.env))
    starts = [
        Start(
            index=s.start_index,
            facts=s.facts,
            levels=[
                Level(label=lv.label, concurrency=lv.concurrency, rate=lv.rate, summary=lv.summary) for lv in s.levels
            ],
            warmup_s=s.warmup_s,
            derived=s.derived,
            findings=s.findings,
            log_path=s.log_path,
            server_lost=s.server_lost,
        )
        for s in result.starts
    ]
    values = result.values()
    stats = stats_of(values)
    status = case_status(
        [{"levels": [{"label": lv.label, "concurrency": lv.concurrency} for lv in s.levels]} for s in result.starts],
        stats,
        result.load.profile,
    )
    return Case(
        id=case_id,
        suite=suite,
        hardware=hardware,
        server=server,
        server_id=result.server.id,
        load=asdict(result.load),
        load_id=result.load.id,
        starts=starts,
        values=values,
        stats=stats,
        status=status,
        **extra,
    )


def session_record(cases: list[Case], environment: dict[str, Any]) -> Session:
    return Session(
        schema_version=SCHEMA_VERSION,
        servegate_version=__version__,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        environment=environment,
        cases=cases,
    )


def write_results(path: Path, session: Session) -> Path:
    """Atomic, so a crash or a full disk never leaves a half-written results file behind."""
    document = session.model_dump(exclude={"non_finite"})
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


def validate_document(document: Any) -> list[str]:
    """Every place where ``document`` (parsed JSON) is not a ``Session`` record, as ``cases[0].starts: <problem>``."""
    try:
        Session.model_validate(document)
    except ValidationError as exc:
        return [
            "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
            + f": {err['msg'].lower()}"
            for err in exc.errors(include_url=False)
        ]
    return []


def upgrade_document(document: dict) -> dict:
    """A version-1 document in version 2's shape (in place): intervals and status labels computed as version 2
    computes them, from the per-start values the file kept. Other versions are left for the caller to refuse."""
    if document.get("schema_version") != 1 or not isinstance(document.get("cases"), list):
        return document  # another version, or not even version 1's shape: validation says where
    for case in document["cases"]:
        try:
            case["stats"] = stats_of(case["values"])
            profile = str((case.get("load") or {}).get("profile", "concurrent"))
            case.pop("phases", None)  # version 1's progressive suite wrote its own labels; 2 computes them here
            case["status"] = case_status(case.get("starts") or [], case["stats"], profile)
        except (AttributeError, KeyError, TypeError, ValueError):
            continue  # not version 1's shape either: validation names the place
    document["schema_version"] = SCHEMA_VERSION
    document["upgraded_from_schema"] = 1
    return document


def checked_document(doc: Any, path: Path) -> Session:
    """A parsed results document as a ``Session`` (non-finite numbers restored, version 1 upgraded), or
    ``ValueError`` naming the file, the versions found and read, or the first places of the wrong shape."""
    if not isinstance(doc, dict) or "cases" not in doc:
        raise ValueError(f"{path}: not a servegate results document (no 'cases' key)")
    found = doc.get("schema_version")
    if found not in READABLE_VERSIONS:
        raise ValueError(
            f"{path}: schema_version {found!r} found, this servegate ({__version__}) reads schema_version "
            f"{SCHEMA_VERSION}; render it with the servegate version that wrote it ({doc.get('servegate_version')!r})"
        )
    document = upgrade_document(restore_non_finite(doc))
    problems = validate_document(document)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ValueError(
            f"{path}: not a servegate results document of the expected shape: {'; '.join(problems[:5])}{more}"
        )
    return Session.model_validate(document)


def load_results(path: Path) -> Session:
    """A results file as the ``Session`` it records, checked by ``checked_document``."""
    return checked_document(json.loads(path.read_text(encoding="utf-8")), path)
