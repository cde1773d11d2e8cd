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

Every error names the file, the key path and what was allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml

from servegate.config import SLO, LoadConfig, ProfileKind, ServerConfig, dataclass_from_mapping, normalize_env

SUITE_KEYS = {"restarts", "servers", "loads", "gate", "description", "options"}
TOP_KEYS = {"hardware", "defaults", "suites", "description"}
PROFILES: tuple[str, ...] = get_args(ProfileKind)


class SuiteError(ValueError):
    """A suite file is invalid; the message says which file, which key and what was expected."""


@dataclass(frozen=True)
class Case:
    """One test: a server config under one load, on one hardware target, repeated ``restarts`` times."""

    suite: str
    hardware: str
    server: ServerConfig
    load: LoadConfig
    restarts: int
    source: str  # the suite file, for messages
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.hardware}/{self.server.id}/{self.load.id}"

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
    restarts = body.get("restarts", 2)
    if not isinstance(restarts, int) or restarts < 1:
        raise SuiteError(f"{where}.restarts: expected an integer >= 1, got {restarts!r}")
    servers = [
        _server({**(defaults.get("server") or {}), **s}, f"{where}.servers[{i}]", Path(source).parent)
        for i, s in enumerate(_list(body, "servers", where))
    ]
    loads = [
        _load({**(defaults.get("load") or {}), **ld}, f"{where}.loads[{i}]")
        for i, ld in enumerate(_list(body, "loads", where))
    ]
    options = tuple(sorted((body.get("options") or {}).items()))
    return [Case(name, hardware, s, ld, restarts, source, options) for s in servers for ld in loads]


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
    data["env"] = normalize_env(data.get("env"))
    data["extra_args"] = tuple(str(a) for a in data.get("extra_args") or ())
    try:
        return dataclass_from_mapping(ServerConfig, data, where)
    except (TypeError, ValueError) as exc:
        raise SuiteError(str(exc)) from exc


def _resolve_model(model: str, base: Path) -> str:
    """A relative local path (``datasets/tiny-llama``) is found from the suite file's folder or the repo above it;
    anything else (an HF id like ``Qwen/Qwen2-VL-72B-Instruct``) is passed to vLLM unchanged."""
    for root in (base, base.parent):
        candidate = root / model
        if not Path(model).is_absolute() and (candidate / "config.json").is_file():
            return str(candidate.resolve())
    return model


def _load(data: dict, where: str) -> LoadConfig:
    data = dict(data)
    profile = data.get("profile", "concurrent")
    if profile not in PROFILES:
        raise SuiteError(f"{where}.profile: {profile!r} is not one of {', '.join(PROFILES)}")
    if "slo" in data:
        data["slo"] = dataclass_from_mapping(SLO, data["slo"] or {}, f"{where}.slo")
    for key in ("percentiles", "concurrency_levels"):
        if key in data:
            data[key] = tuple(data[key])
    if data.get("endpoint", "completions") not in ("completions", "chat"):
        raise SuiteError(f"{where}.endpoint: {data['endpoint']!r} is not one of completions, chat")
    try:
        load = dataclass_from_mapping(LoadConfig, data, where)
    except (TypeError, ValueError) as exc:
        raise SuiteError(str(exc)) from exc
    for f in ("num_requests", "concurrency", "prompt_tokens", "output_tokens"):
        value = getattr(load, f)
        if not isinstance(value, int) or value < 1:
            raise SuiteError(f"{where}.{f}: expected an integer >= 1, got {value!r}")
    return load


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


def discover(suite_dir: Path) -> list[Case]:
    """Every case of every ``*.yaml`` suite file in ``suite_dir``, sorted by file name."""
    cases: list[Case] = []
    for path in sorted(suite_dir.glob("*.yaml")):
        cases += load_suite_file(path)
    return cases
