"""Baseline store: per-start values of every metric plus a fingerprint, one JSON file per config and hardware.

Also holds the atomic writer every file we produce goes through. Layout and validation: ``baseline_path``,
``load_baseline``; comparison happens in ``servegate.gate``.

A baseline is what every later run is judged against, so a bad one switches the gate off for good: a 40x slower
run compared with a baseline of failed requests passes. Hence ``refusal_reasons`` (a run must have passed, with
enough starts, no FAILING or CLIENT-BOUND level and finite gated values), a configuration identity
(``effective_config`` / ``config_hash`` / ``config_diff``: a baseline measured under other settings is not
compared), and a compare-and-swap write under a file lock (``save_baseline(expected_digest=...)``) so that of
two sessions recording the same case, the second one hears that it lost instead of silently overwriting.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from servegate.redact import MASK, is_secret_name, redact_obj

if TYPE_CHECKING:
    from servegate.config import LoadConfig, ServerConfig
    from servegate.hardware.detect import HardwareInfo
    from servegate.launch.base import StartupFacts
    from servegate.runner import CaseResult


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temp file in the same directory, fsync, then rename: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------------------------
# The baseline store (issue 4): per-start values + fingerprint, one JSON file per (hardware, suite, config).
# --------------------------------------------------------------------------------------------------------------

SCHEMA_VERSION = 2  # 2: effective server/load configs and their hash; force flag
_SAFE_COMPONENT = re.compile(r"[^A-Za-z0-9._=+,@\[\]-]")
# Fields that make two measurements incomparable: numbers from other hardware (or another model) are not a
# regression, they are a different experiment. The gate reports "not compared" instead of a verdict.
BLOCKING_FIELDS = ("hardware_id", "hardware_name", "hardware_arch", "device_count", "model")


class BaselineError(ValueError):
    """A baseline file that cannot be used, with the file and precisely what is wrong."""


@dataclass(frozen=True)
class Fingerprint:
    """What a baseline was measured on. Blocking differences (``BLOCKING_FIELDS``) forbid a comparison; the
    others (driver, ROCm/CUDA, vLLM, image, servegate) are what a regression gate exists to compare across,
    so they are reported next to the verdict instead."""

    hardware_id: str
    hardware_name: str | None = None
    hardware_arch: str | None = None  # gfx942, sm_90, x86_64
    device_count: int | None = None
    driver: str | None = None
    rocm_version: str | None = None
    cuda_version: str | None = None
    vllm_version: str | None = None
    image_digest: str | None = None
    model: str | None = None
    model_revision: str | None = None
    servegate_version: str | None = None

    @classmethod
    def collect(
        cls,
        hardware: HardwareInfo | None = None,
        server: ServerConfig | None = None,
        facts: StartupFacts | None = None,
    ) -> Fingerprint:
        """The fingerprint of a run: detected hardware, the server config's model (``--revision`` from its extra
        args), and what the server said at startup (vLLM version; image digest from the docker launcher)."""
        from servegate import __version__
        from servegate.hardware.detect import detected

        hw = hardware or detected()
        revision = None
        if server is not None:
            args = list(server.extra_args)
            for i, arg in enumerate(args):
                if arg == "--revision" and i + 1 < len(args):
                    revision = args[i + 1]
                elif arg.startswith("--revision="):
                    revision = arg.split("=", 1)[1]
        extra = facts.extra if facts is not None else {}
        return cls(
            hardware_id=hw.hardware_id,
            hardware_name=hw.name,
            hardware_arch=hw.arch,
            device_count=hw.count,
            driver=hw.driver,
            rocm_version=hw.rocm_version,
            cuda_version=hw.cuda_version,
            vllm_version=facts.vllm_version if facts is not None else None,
            image_digest=extra.get("image_digest") if isinstance(extra, dict) else None,
            model=server.model_name if server is not None else None,
            model_revision=revision,
            servegate_version=__version__,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fingerprint_mismatch(a: Fingerprint, b: Fingerprint) -> list[str]:
    """Every differing field as ``"field: <a> vs <b>"`` (a = baseline, b = current by convention), in field
    order; empty when the fingerprints agree."""
    out = []
    for f in fields(Fingerprint):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if va != vb:
            out.append(f"{f.name}: {_show(va)} vs {_show(vb)}")
    return out


def blocking_mismatch(a: Fingerprint, b: Fingerprint) -> str | None:
    """Why ``a`` and ``b`` must not be compared at all (other hardware, other model), or None."""
    hw = [f for f in BLOCKING_FIELDS if f != "model" and getattr(a, f) != getattr(b, f)]
    if hw:
        return f"baseline from other hardware {_hw_label(a)} vs {_hw_label(b)}"
    if a.model != b.model:
        return f"baseline of another model {_show(a.model)} vs {_show(b.model)}"
    return None


def _hw_label(fp: Fingerprint) -> str:
    name = f"{fp.device_count}x {fp.hardware_name}" if fp.device_count and fp.hardware_name else fp.hardware_name
    return f"{fp.hardware_id} ({name})" if name else fp.hardware_id


def _show(value: Any) -> str:
    return "none" if value is None else str(value)


@dataclass(frozen=True)
class Baseline:
    """The per-start values of every metric of one config on one machine, and how they were produced.

    ``values`` keeps each start's value (NaN as JSON null), not only means: the gate needs the spread, and a
    later servegate may want other statistics of the same runs.
    """

    hardware_id: str
    suite: str
    config_id: str
    values: dict[str, list[float]]
    server: dict[str, Any]
    load: dict[str, Any]
    fingerprint: Fingerprint
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION
    forced: str | None = None  # why a run that failed the recording rules was stored anyway (--force-baseline)

    @property
    def config_hash(self) -> str:
        """Of the settings as stored (secrets masked), so that a file's hash can be checked against its content."""
        return config_hash(redact_obj(self.server), redact_obj(self.load))

    @property
    def starts(self) -> int:
        return max((len(v) for v in self.values.values()), default=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "hardware_id": self.hardware_id,
            "suite": self.suite,
            "config_id": self.config_id,
            "created": self.created,
            "forced": self.forced,
            "config_hash": self.config_hash,
            "fingerprint": self.fingerprint.to_dict(),
            "server": self.server,
            "load": self.load,
            "values": {k: [None if not math.isfinite(x) else float(x) for x in v] for k, v in self.values.items()},
        }


def _safe_component(part: str, what: str) -> str:
    """One path component from an id part: no separators, no '..', characters outside a safe set become '_'."""
    cleaned = _SAFE_COMPONENT.sub("_", part)
    if cleaned in ("", ".", ".."):
        raise ValueError(f"{what} {part!r} cannot be a file name")
    return cleaned


def baseline_path(root: Path, hardware_id: str, suite: str, config_id: str) -> Path:
    """``<root>/<hardware-id>/<suite>/<server-id>/<load-id>.json``.

    A config id is ``<hardware marker>/<server-id>/<load-id>`` (``cpu/tiny-llama/c8-in128-out64``). The marker
    is dropped (the hardware id directory is more precise: ``cpu-amd-epyc-2c``), the server id becomes a
    directory so that all loads of one server sit together, and any further slash inside the load id (a
    sweep level) becomes ``_``. Ids are already slugs; anything unsafe for a file name is replaced by ``_``.
    """
    parts = config_id.split("/", 2)
    if len(parts) != 3:
        raise ValueError(f"config id {config_id!r} is not <hardware>/<server>/<load>")
    _marker, server_part, load_part = parts
    return (
        Path(root)
        / _safe_component(hardware_id, "hardware id")
        / _safe_component(suite, "suite")
        / _safe_component(server_part, "server id")
        / f"{_safe_component(load_part.replace('/', '_'), 'load id')}.json"
    )


class BaselineConflict(RuntimeError):
    """Another writer changed the baseline file since this session read it; ours was not written."""


# "Not read": save_baseline then writes without comparing (library use without a session snapshot).
UNREAD = "unread"


def file_digest(path: Path) -> str | None:
    """sha256 of a file's bytes, None when it does not exist: the state a compare-and-swap expects."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path``'s directory (no lock file left in the store), held while comparing
    and replacing; writers of other baselines in the same directory wait a moment, nothing more."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def save_baseline(root: Path, baseline: Baseline, expected_digest: str | None = UNREAD) -> Path:
    """Write ``baseline`` under ``root`` (atomically; secrets in server/load settings masked); returns the path.

    With ``expected_digest`` (the file's ``file_digest`` when this session started the case; None = no file
    then), the write happens only if the file is still in that state, checked and replaced under a lock;
    otherwise ``BaselineConflict`` says who got there first and the other writer's file stays.
    """
    path = baseline_path(root, baseline.hardware_id, baseline.suite, baseline.config_id)
    document = redact_obj(baseline.to_dict())
    text = json.dumps(document, indent=1, sort_keys=False, allow_nan=False) + "\n"
    with _locked(path):
        now = file_digest(path)
        if expected_digest != UNREAD and now != expected_digest:
            raise BaselineConflict(_conflict_message(path, expected_digest))
        atomic_write_text(path, text)
    return path


def _conflict_message(path: Path, expected: str | None) -> str:
    try:
        other = json.loads(path.read_text(encoding="utf-8")).get("created", "unknown time")
    except (OSError, ValueError, AttributeError):
        other = "unknown time"
    before = "no baseline existed" if expected is None else "this session read it"
    return (
        f"{path}: not written: another session wrote this baseline (created {other}) after {before}; "
        "its file is kept. Re-run --update-baselines alone if this run's numbers should replace it"
    )


# --------------------------------------------------------------------------------------------------------------
# What may become a baseline
# --------------------------------------------------------------------------------------------------------------

MIN_BASELINE_STARTS = 2  # the gate's minimum: a t interval needs two starts
MIN_SUCCESS_RATE = 0.95  # below it a level is FAILING (seed 003 Table 7)


def refusal_reasons(result: CaseResult, gated_metrics: Sequence[str]) -> list[str]:
    """Why ``result`` must not become a baseline (empty: it may). Each reason names the start and level."""
    reasons = []
    if len(result.starts) < MIN_BASELINE_STARTS:
        reasons.append(f"{len(result.starts)} server start(s); a baseline needs at least {MIN_BASELINE_STARTS}")
    for start in result.starts:
        for level in start.levels:
            where = f"start {start.start_index + 1} level {level.label}"
            if not level.summary.success_rate >= MIN_SUCCESS_RATE:
                reasons.append(f"{where} is FAILING: success {level.summary.success_rate:.0%} < 95%")
            if level.client_bound:
                reasons.append(f"{where} is CLIENT-BOUND: {level.summary.client_bound_reason}")
    values = result.values()
    if not values:
        reasons.append("no measured values")
    for metric, series in values.items():
        if metric.rsplit("/", 1)[-1] in gated_metrics and not all(math.isfinite(x) for x in series):
            reasons.append(f"{metric} has non-finite values {series}")
    return reasons


# --------------------------------------------------------------------------------------------------------------
# Configuration identity: everything that changes the numbers
# --------------------------------------------------------------------------------------------------------------

# Settings that do not change what is measured: a label, and how long to wait for a server to come up.
_NOT_IDENTITY = {"server": {"name", "startup_timeout_s"}, "load": {"name"}}


def effective_config(server: ServerConfig, load: LoadConfig) -> dict[str, dict[str, Any]]:
    """The server and load settings a run was measured under (load after the intensity multiplier), in JSON form.

    Absolute local paths keep only their last component (a checkout's location does not change the numbers);
    secret env values are masked (a token never does either, and this goes into files).
    """
    srv = {k: v for k, v in asdict(server).items() if k not in _NOT_IDENTITY["server"]}
    srv["env"] = {k: MASK if is_secret_name(k) else v for k, v in server.env}
    srv["extra_args"] = list(server.extra_args)
    srv["model"] = _portable_path(server.model)
    if srv.get("tokenizer"):
        srv["tokenizer"] = _portable_path(srv["tokenizer"])
    ld = {k: v for k, v in asdict(load).items() if k not in _NOT_IDENTITY["load"]}
    if ld.get("dataset_path"):
        ld["dataset_path"] = _portable_path(ld["dataset_path"])
    return json.loads(json.dumps({"server": srv, "load": ld}, default=list))  # tuples -> lists, as stored


def _portable_path(value: str) -> str:
    return Path(value).name if os.path.isabs(value) else value


def config_hash(server: dict[str, Any], load: dict[str, Any]) -> str:
    """Short sha256 of an effective config (as ``effective_config`` returns it), key order independent."""
    canonical = json.dumps({"server": server, "load": load}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class SettingChange(NamedTuple):
    """One setting measured differently: its dotted path, the baseline's value and this run's."""

    path: str
    baseline: Any
    current: Any

    def __str__(self) -> str:
        return f"{self.path}: {_show_value(self.baseline)} → {_show_value(self.current)}"


def config_diff(baseline: Baseline, server: ServerConfig, load: LoadConfig) -> list[SettingChange]:
    """Every setting that differs between the baseline's run and this one (shown as ``load.num_requests: 64 → 32``,
    baseline value first); empty when they were measured under the same configuration. An absent setting is
    the string ``"absent"``."""
    current = effective_config(server, load)
    out = []
    for part, stored in (("server", baseline.server), ("load", baseline.load)):
        now = current[part]
        for key in sorted(set(stored) | set(now)):
            if stored.get(key, "absent") != now.get(key, "absent"):
                out.append(SettingChange(f"{part}.{key}", stored.get(key, "absent"), now.get(key, "absent")))
    return out


def _show_value(value: Any) -> str:
    return "none" if value is None else json.dumps(value) if isinstance(value, (dict, list, str)) else str(value)


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "config_hash": str,
    "hardware_id": str,
    "suite": str,
    "config_id": str,
    "created": str,
    "fingerprint": dict,
    "server": dict,
    "load": dict,
    "values": dict,
}
_TYPE_NAMES = {int: "an integer", str: "a string", dict: "an object", list: "a list"}


def _json_type(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, (int, float)) else type(value).__name__
    )


def load_baseline(path: Path) -> Baseline:
    """Read and validate a baseline file; ``BaselineError`` names the file and exactly what is wrong."""
    path = Path(path)
    hint = "re-record it with --update-baselines"

    def fail(what: str) -> BaselineError:
        return BaselineError(f"{path}: {what}; {hint}")

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"{path}: no baseline file; record one with --update-baselines") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot be read ({exc})") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    if not isinstance(doc, dict):
        raise fail(f"top level must be an object, got {_json_type(doc)}")
    version = doc.get("schema_version")
    if "schema_version" in doc and version != SCHEMA_VERSION:
        raise fail(f"schema_version {version!r} is not supported (this servegate reads {SCHEMA_VERSION})")
    for key, typ in _REQUIRED.items():
        if key not in doc:
            raise fail(f"missing key {key!r}")
        value = doc[key]
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise fail(f"key {key!r} must be {_TYPE_NAMES[typ]}, got {_json_type(value)}")
    values: dict[str, list[float]] = {}
    for metric, series in doc["values"].items():
        if not isinstance(series, list):
            raise fail(f"values[{metric!r}] must be a list of per-start numbers, got {_json_type(series)}")
        clean: list[float] = []
        for i, x in enumerate(series):
            if x is None:
                clean.append(math.nan)
            elif isinstance(x, (int, float)) and not isinstance(x, bool):
                clean.append(float(x))
            else:
                raise fail(f"values[{metric!r}][{i}] must be a number or null, got {_json_type(x)}")
        values[metric] = clean
    fp_doc = doc["fingerprint"]
    known = {f.name: f for f in fields(Fingerprint)}
    if "hardware_id" not in fp_doc:
        raise fail("missing key 'fingerprint.hardware_id'")
    fp_args: dict[str, Any] = {}
    for key, value in fp_doc.items():
        if key not in known:
            continue  # a newer servegate may record more; what we know is still comparable
        if value is not None and not isinstance(value, int if key == "device_count" else str):
            want = "an integer" if key == "device_count" else "a string"
            raise fail(f"key 'fingerprint.{key}' must be {want} or null, got {_json_type(value)}")
        fp_args[key] = value
    if doc["config_hash"] != config_hash(doc["server"], doc["load"]):
        raise fail("config_hash does not match its server/load settings (edited by hand?)")
    if fp_doc["hardware_id"] != doc["hardware_id"]:
        raise fail(f"fingerprint.hardware_id {fp_doc['hardware_id']!r} differs from hardware_id {doc['hardware_id']!r}")
    return Baseline(
        hardware_id=doc["hardware_id"],
        suite=doc["suite"],
        config_id=doc["config_id"],
        values=values,
        server=doc["server"],
        load=doc["load"],
        fingerprint=Fingerprint(**fp_args),
        created=doc["created"],
        schema_version=doc["schema_version"],
        forced=doc.get("forced") if isinstance(doc.get("forced"), str) else None,
    )


def find_baseline(root: Path, hardware_id: str, suite: str, config_id: str) -> Baseline | None:
    """The stored baseline of a config on this hardware, None when none was recorded (an unusable file raises)."""
    path = baseline_path(root, hardware_id, suite, config_id)
    return load_baseline(path) if path.exists() else None
