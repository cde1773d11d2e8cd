"""Suite files (YAML) -> benchmark cases with readable, stable ids.

A suite file describes one hardware target (``hardware: cpu | mi300x | ...``) and, under ``suites:``, any number of
named suites. Each suite lists servers and loads; the matrix is their product, and each case carries the
hardware marker so that ``pytest suites/ -m mi300x`` selects it. Example::

    hardware: cpu
    defaults:
      server: {model: datasets/tiny-llama, load_format: dummy}
    suites:
      serving:
        restarts: 2
        servers: [{name: tiny-llama}]
        loads: [{profile: concurrent, concurrency: 8, num_requests: 64}]

A server entry may carry ``matrix:`` (field -> list of values) and expands to the product, e.g. precision × attention
backend × environment × TP. A suite may give ``phases:`` (an ordered mapping phase name -> load, all run on every
server start, as seed 003's progressive benchmark) instead of ``loads:``, and ``arms:`` (name -> server overrides)
to make each case an interleaved A/B ablation. Every error names the file, the key path and what was allowed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml

from servegate.capacity import parse_limits
from servegate.config import SLO, LoadConfig, ProfileKind, ServerConfig, dataclass_from_mapping, normalize_env
from servegate.gate import DERIVED_GATED_METRICS
from servegate.hardware.specs import KNOWN_MARKERS
from servegate.redact import is_secret_name, register_secret
from servegate.sequential import Budget, BudgetError

# A matrix multiplies cases; past this many per suite the run takes days and its plan does not fit in memory.
MAX_CASES_PER_SUITE = 64
SUITE_KEYS = {"restarts", "servers", "loads", "phases", "arms", "gate", "description", "options"}
TOP_KEYS = {"hardware", "defaults", "suites", "description"}
PROFILES: tuple[str, ...] = get_args(ProfileKind)


class SuiteError(ValueError):
    """A suite file is invalid; the message says which file, which key and what was expected."""


@dataclass(frozen=True)
class Case:
    """One test: a server config under one load, on one hardware target, with a budget of ``restarts`` starts
    (fixed, or ``{min, max}`` for the sequential gate)."""

    suite: str
    hardware: str
    server: ServerConfig
    steps: tuple[tuple[str, LoadConfig], ...]  # ("", load) for a plain case; (phase, load) pairs for phases
    restarts: Budget
    source: str  # the suite file, for messages
    options: tuple[tuple[str, Any], ...] = ()
    arms: tuple[tuple[str, ServerConfig], ...] = ()  # A/B ablation arms, interleaved start by start
    gate_metrics: tuple[str, ...] | None = None  # the suite's primary metrics (``gate: {metrics: [...]}``)

    @property
    def load(self) -> LoadConfig:
        """The headline load: the only one, or the last phase."""
        return self.steps[-1][1]

    @property
    def id(self) -> str:
        load_id = self.load.id if len(self.steps) == 1 else f"{self.steps[0][0]}..{self.steps[-1][0]}"
        arms = f"/{'-vs-'.join(name for name, _ in self.arms)}" if self.arms else ""
        return f"{self.hardware}/{self.server.id}{arms}/{load_id}"

    @property
    def option_dict(self) -> dict[str, Any]:
        return dict(self.options)


def load_suite_file(path: Path) -> list[Case]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: expected a mapping with keys {sorted(TOP_KEYS)}, got {type(data).__name__}")
    _check_keys(data, TOP_KEYS, f"{path}")
    hardware = data.get("hardware")
    if not isinstance(hardware, str) or not hardware:
        raise SuiteError(f"{path}: 'hardware' must name the target (e.g. cpu, mi300x), got {hardware!r}")
    if hardware not in KNOWN_MARKERS:
        # An unknown marker would make every case of the file skip as 'unknown hardware': a typo must not pass.
        raise SuiteError(f"{path}: hardware: {hardware!r} is not a known marker; allowed: {', '.join(KNOWN_MARKERS)}")
    defaults = data.get("defaults") or {}
    _check_keys(defaults, {"server", "load"}, f"{path}: defaults")
    suites = data.get("suites")
    if not isinstance(suites, dict) or not suites:
        raise SuiteError(f"{path}: 'suites' must be a non-empty mapping of suite name -> suite")
    cases: list[Case] = []
    for name, body in suites.items():
        where = f"{path}: suites.{name}"
        if not isinstance(body, dict):
            raise SuiteError(f"{where}: expected a mapping, got {type(body).__name__}")
        _check_keys(body, SUITE_KEYS, where)
        cases += _expand(str(name), hardware, body, defaults, where, str(path))
    _check_unique(cases, path)
    return cases


def _expand(name: str, hardware: str, body: dict, defaults: dict, where: str, source: str) -> list[Case]:
    try:
        restarts = Budget.from_suite(body.get("restarts", 2), where)
    except BudgetError as exc:
        raise SuiteError(str(exc)) from exc
    gate_metrics = _gate_metrics(body.get("gate"), f"{where}.gate")
    base = Path(source).parent
    server_defaults = defaults.get("server") or {}
    servers = [
        server
        for i, entry in enumerate(_list(body, "servers", where))
        for server in _servers({**server_defaults, **entry}, f"{where}.servers[{i}]", base)
    ]
    load_defaults = defaults.get("load") or {}
    if ("loads" in body) == ("phases" in body):
        raise SuiteError(f"{where}: give exactly one of 'loads' (a list) or 'phases' (phase name -> load)")
    step_sets: list[tuple[tuple[str, LoadConfig], ...]]
    if "phases" in body:
        phases = body["phases"]
        if not isinstance(phases, dict) or not phases or not all(isinstance(v, dict) for v in phases.values()):
            raise SuiteError(f"{where}.phases: expected a non-empty mapping of phase name -> load mapping")
        step_sets = [
            tuple((str(k), _load({**load_defaults, **v}, f"{where}.phases.{k}", base)) for k, v in phases.items())
        ]
    else:
        step_sets = [
            (("", _load({**load_defaults, **ld}, f"{where}.loads[{i}]", base)),)
            for i, ld in enumerate(_list(body, "loads", where))
        ]
    arms_spec = body.get("arms") or {}
    if not isinstance(arms_spec, dict) or (arms_spec and len(arms_spec) < 2):
        raise SuiteError(f"{where}.arms: expected a mapping of at least two arm names -> server overrides")
    options = tuple(sorted((body.get("options") or {}).items()))
    cases = []
    if len(servers) * len(step_sets) > MAX_CASES_PER_SUITE:
        raise SuiteError(
            f"{where}: {len(servers)} servers x {len(step_sets)} loads = {len(servers) * len(step_sets)} cases; "
            f"at most {MAX_CASES_PER_SUITE} per suite: split the matrix into several suites"
        )
    for server in servers:
        for steps in step_sets:
            _check_fits(server, steps, where)
    for server in servers:
        arms = tuple(
            (str(arm), _arm(server, overrides or {}, f"{where}.arms.{arm}", base))
            for arm, overrides in arms_spec.items()
        )
        for steps in step_sets:
            cases.append(Case(name, hardware, server, steps, restarts, source, options, arms, gate_metrics))
    return cases


def _gate_metrics(spec: object, where: str) -> tuple[str, ...] | None:
    """``gate: {metrics: [ttft_median_ms, output_throughput]}``: the rows this suite gates (a smaller family)."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) - {"metrics"}:
        raise SuiteError(f"{where}: expected a mapping with the key 'metrics' (a list of metric names)")
    return check_gate_metrics(spec.get("metrics"), f"{where}.metrics")


def check_gate_metrics(metrics: object, where: str) -> tuple[str, ...]:
    """Metric names a gate can use, or a SuiteError naming ``where`` and what names look like."""
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) and m.strip() for m in metrics):
        raise SuiteError(f"{where}: expected a non-empty list of metric names, got {metrics!r}")
    metrics = [m.strip() for m in metrics]
    unknown = [m for m in metrics if not (_METRIC_NAME.fullmatch(m) or m in DERIVED_GATED_METRICS)]
    if unknown:
        raise SuiteError(
            f"{where}: not a per-start metric name: {', '.join(unknown)}; expected e.g. ttft_median_ms, "
            "itl_p90_ms, tpot_mean_ms, e2el_median_ms, output_throughput, request_throughput, "
            + ", ".join(DERIVED_GATED_METRICS)
        )
    return tuple(metrics)


# The scalars of RunSummary.flat(): latency distributions by statistic, and the run-level rates.
_METRIC_NAME = re.compile(
    r"(ttft|itl|tpot|e2el)_(mean|median|p\d+(\.\d+)?)_ms|output_throughput|request_throughput"
    r"|total_token_throughput|success_rate|goodput"
)


def _arm(server: ServerConfig, overrides: dict, where: str, base: Path) -> ServerConfig:
    if not isinstance(overrides, dict):
        raise SuiteError(f"{where}: expected a mapping of server fields, got {type(overrides).__name__}")
    data = dict(vars(server))
    data["env"] = {**dict(server.env), **(overrides.get("env") or {})}
    data.update({k: v for k, v in overrides.items() if k != "env"})
    return _server(data, where, base)


def _servers(data: dict, where: str, base: Path) -> list[ServerConfig]:
    """One entry, expanded over its ``matrix`` (field -> list of values) in a stable order."""
    matrix = data.pop("matrix", None) or {}
    if not isinstance(matrix, dict) or not all(isinstance(v, list) and v for v in matrix.values()):
        raise SuiteError(f"{where}.matrix: expected a mapping of server field -> non-empty list of values")
    size = math.prod(len(v) for v in matrix.values())
    if size > MAX_CASES_PER_SUITE:  # refused before the product is built: a 10 x 10 x 10 matrix never expands
        shape = " x ".join(f"{len(v)} {k}" for k, v in matrix.items())
        raise SuiteError(f"{where}.matrix: {shape} = {size} servers; at most {MAX_CASES_PER_SUITE} per suite")
    combos: list[dict] = [{}]
    for key, values in matrix.items():
        combos = [{**c, key: v} for c in combos for v in values]
    out = []
    for combo in combos:
        merged = {**data, **combo}
        if "env" in combo:
            merged["env"] = {**(data.get("env") or {}), **(combo["env"] or {})}
        out.append(_server(merged, where, base))
    return out


def _list(body: dict, key: str, where: str) -> list[dict]:
    items = body.get(key)
    if not isinstance(items, list) or not items or not all(isinstance(x, dict) for x in items):
        raise SuiteError(f"{where}.{key}: expected a non-empty list of mappings")
    return items


def _server(data: dict, where: str, base: Path) -> ServerConfig:
    data = dict(data)
    if "model" not in data:
        raise SuiteError(f"{where}: 'model' is required")
    data["model"] = _resolve_model(str(data["model"]), base)

    env = data.get("env")
    if env is not None and not isinstance(env, (dict, tuple)):
        raise SuiteError(f"{where}.env: expected a mapping of variable -> value, got {type(env).__name__}")
    data["env"] = env if isinstance(env, tuple) else normalize_env(env)
    for key, value in data["env"]:
        if is_secret_name(key):
            register_secret(value)
    extra_args = data.get("extra_args") or ()
    if not isinstance(extra_args, (list, tuple)):
        raise SuiteError(f"{where}.extra_args: got {extra_args!r}; expected a list of vllm serve arguments")
    data["extra_args"] = tuple(str(a) for a in extra_args)
    try:
        return dataclass_from_mapping(ServerConfig, data, where)
    except (TypeError, ValueError) as exc:
        raise SuiteError(_where(where, exc)) from None


def _resolve_model(model: str, base: Path) -> str:
    """A relative local path (``datasets/tiny-llama``) is found from the suite file's folder or the repo above it;
    anything else (an HF id like ``Qwen/Qwen2-VL-72B-Instruct``) is passed to vLLM unchanged."""
    for root in (base, base.parent):
        candidate = root / model
        if not Path(model).is_absolute() and (candidate / "config.json").is_file():
            return str(candidate.resolve())
    return model


def _load(data: dict, where: str, base: Path = Path(".")) -> LoadConfig:
    data = dict(data)
    profile = data.get("profile", "concurrent")
    if profile not in PROFILES:
        raise SuiteError(f"{where}.profile: {profile!r} is not one of {', '.join(PROFILES)}")
    if "slo" in data:
        if not isinstance(data["slo"], dict | None):
            raise SuiteError(f"{where}.slo: got {data['slo']!r}; expected a mapping of ttft_ms/tpot_ms/e2el_ms")
        try:
            data["slo"] = dataclass_from_mapping(SLO, data["slo"] or {}, f"{where}.slo")
        except ValueError as exc:
            raise SuiteError(str(exc)) from None
    if "slo_limits" in data:
        data["slo_limits"] = _slo_limits(data["slo_limits"], data.get("percentiles", (50.0, 90.0, 99.0)), where)
    if isinstance(data.get("dataset_path"), str):
        data["dataset_path"] = _resolve_dataset(data["dataset_path"], base)
    for key in ("percentiles", "concurrency_levels", "image_size"):
        if isinstance(data.get(key), list):  # YAML has lists; the frozen configs hold tuples
            data[key] = tuple(data[key])
    try:
        return dataclass_from_mapping(LoadConfig, data, where)
    except (TypeError, ValueError) as exc:
        raise SuiteError(_where(where, exc)) from None


def _check_fits(server: ServerConfig, steps: tuple[tuple[str, LoadConfig], ...], where: str) -> None:
    """A request longer than the server's context is rejected by vLLM with HTTP 400 on every request: the
    suite is wrong, and saying so now beats a FAILING case after a server start."""
    if server.max_model_len is None:
        return
    for name, load in steps:
        need = load.shared_prefix_tokens + load.prompt_tokens + load.output_tokens
        if need > server.max_model_len:
            raise SuiteError(
                f"{where}: load {name or load.id}: shared_prefix_tokens + prompt_tokens + output_tokens = {need} "
                f"exceeds server {server.id}'s max_model_len {server.max_model_len}"
            )


def _slo_limits(mapping: Any, percentiles: Any, where: str) -> tuple[tuple[str, float], ...]:
    """``{ttft_p99_ms: 500, ...}`` -> sorted (metric, bound) pairs, each metric checked against the load's names."""
    if not isinstance(mapping, dict) or not mapping:
        raise SuiteError(f"{where}.slo_limits: expected a mapping of metric -> bound, e.g. {{ttft_p99_ms: 500}}")
    try:
        limits = parse_limits(mapping.items(), tuple(percentiles))
    except ValueError as exc:
        raise SuiteError(f"{where}.{exc}") from exc
    return tuple(sorted((lim.metric, lim.bound) for lim in limits))


def _resolve_dataset(path: str, base: Path) -> str:
    """A relative dataset path is found like a model path: from the suite file's folder or the repo above it."""
    for root in (base, base.parent):
        if not Path(path).is_absolute() and (root / path).is_file():
            return str((root / path).resolve())
    return path


def _where(where: str, exc: Exception) -> str:
    """The error text prefixed with the file and key path unless it already starts with them."""
    msg = str(exc)
    return msg if msg.startswith(where) else f"{where}: {msg}"


def _check_keys(data: dict, allowed: set[str], where: str) -> None:
    if not isinstance(data, dict):
        raise SuiteError(f"{where}: expected a mapping")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SuiteError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _check_unique(cases: list[Case], path: Path) -> None:
    seen: dict[tuple[str, str], Case] = {}
    for case in cases:
        key = (case.suite, case.id)
        if key in seen:
            raise SuiteError(
                f"{path}: suite {case.suite!r} has two cases with id {case.id!r}; give the servers or loads a 'name'"
            )
        seen[key] = case


def suite_json_schema() -> dict[str, Any]:
    """JSON Schema of a suite file, for editors (``servegate schema > suite.schema.json``; the repository keeps a
    copy, ``suite.schema.json``, that a test keeps current). Server and load fields come from the configs' own
    declarations, so the schema cannot drift from what the loader accepts."""
    from pydantic import TypeAdapter

    server = TypeAdapter(ServerConfig).json_schema()
    load = TypeAdapter(LoadConfig).json_schema()
    defs = {**server.pop("$defs", {}), **load.pop("$defs", {})}
    server.pop("required", None)  # the model may come from defaults.server
    server["properties"]["env"] = {
        "type": "object",
        "description": "environment of the server process; secret-named values are masked in every output",
        "additionalProperties": {"type": ["string", "number", "boolean"]},
    }
    server["properties"]["extra_args"] = {"type": "array", "items": {"type": "string"}, "default": []}
    load["properties"]["slo_limits"] = {
        "type": "object",
        "description": "capacity: metric -> bound, e.g. {ttft_p99_ms: 500}; a level holds when every bound holds",
        "additionalProperties": {"type": "number"},
    }
    entry = {**server, "properties": {**server["properties"], "matrix": {
        "type": "object",
        "description": f"server field -> list of values; the entry expands to their product (<= {MAX_CASES_PER_SUITE})",
        "additionalProperties": {"type": "array", "minItems": 1},
    }}}
    overrides = {**server, "title": "arm overrides"}
    suite = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "description": {"type": "string"},
            "restarts": {
                "description": "server starts per case: a fixed number, or a sequential budget {min, max}",
                "default": 2,
                "oneOf": [
                    {"type": "integer", "minimum": 1},
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "minProperties": 1,
                        "properties": {
                            "min": {"type": "integer", "minimum": 1},
                            "max": {"type": "integer", "minimum": 1},
                        },
                    },
                ],
            },
            "gate": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"metrics": {"type": "array", "minItems": 1, "items": {"type": "string"}}},
            },
            "servers": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/ServerEntry"}},
            "loads": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/LoadConfig"}},
            "phases": {"type": "object", "minProperties": 1, "additionalProperties": {"$ref": "#/$defs/LoadConfig"}},
            "arms": {"type": "object", "minProperties": 2, "additionalProperties": {"$ref": "#/$defs/ArmOverrides"}},
            "options": {"type": "object"},
        },
        "required": ["servers"],
        "oneOf": [{"required": ["loads"]}, {"required": ["phases"]}],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "servegate suite file",
        "type": "object",
        "additionalProperties": False,
        "required": ["hardware", "suites"],
        "properties": {
            "description": {"type": "string"},
            "hardware": {"enum": list(KNOWN_MARKERS)},
            "defaults": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"server": {"$ref": "#/$defs/ServerEntry"}, "load": {"$ref": "#/$defs/LoadConfig"}},
            },
            "suites": {"type": "object", "minProperties": 1, "additionalProperties": {"$ref": "#/$defs/Suite"}},
        },
        "$defs": {**defs, "ServerEntry": entry, "ArmOverrides": overrides, "LoadConfig": load, "Suite": suite},
    }


def discover(suite_dir: Path) -> list[Case]:
    """Every case of every ``*.yaml`` suite file in ``suite_dir``, sorted by file name."""
    cases: list[Case] = []
    for path in sorted(suite_dir.glob("*.yaml")):
        cases += load_suite_file(path)
    return cases
