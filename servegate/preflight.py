"""Check every planned server's command line and environment with the vLLM that will run it, before a GPU-minute.

A GPU suite that dies on an unknown flag or a renamed option costs a container pull, a weight load and a slot on a
shared node before it says so. vLLM's own argument parser (the ``vllm serve`` parser, which the OpenAI api_server
module shares) and its env registry (``vllm.envs.environment_variables``) answer in seconds, without a GPU and
without the weights. They are run by the TARGET interpreter: the python a local launch uses, or ``python3`` inside
the container image a docker launch uses, so the answer is that version's and no other.

One checker process per target checks every server of that target: importing vLLM's argument parser is the slow
part (10-25 s on a busy CPU), each further server costs milliseconds. What is checked, per server:

* the arguments parse (unknown flags, bad choices, JSON configs such as ``--compilation-config`` are validated by
  vLLM's pydantic config classes at parse time) and pass ``validate_parsed_serve_args``;
* ``EngineArgs.from_cli_args`` accepts them (it builds the nested config objects, e.g. ``--attention-config``);
* every ``VLLM_*`` variable is in the registry (vLLM itself only logs "Unknown vLLM environment variable detected"
  and carries on: the switch is silently ignored), and each registered variable's value is read by vLLM's own
  getter (choices, integers).

Not checked: anything that needs the model's config or a device (``create_engine_config``): the compat rules
(servegate.compat) cover the known cases of that kind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from servegate.config import ServerConfig
from servegate.redact import is_secret_name, redact_text
from servegate.sequential import Budget

CHECK_TIMEOUT_S = 300.0  # a cold import of vLLM on a loaded 2-core machine takes 20-50 s
CHECKER_LOG_LEVEL = "ERROR"  # vLLM logs to stdout; the answer is the last JSON line, logs must not bury it
IMAGE_TIMEOUT_S = 3600.0  # the first `docker run` of an image pulls it (tens of GB for ROCm); the servers reuse it

# Runs inside the target interpreter: stdlib and vLLM only, Python 3.9+ syntax. Reads {"servers": [{"id", "args",
# "env"}]} on stdin, writes one JSON object on the last line of stdout.
CHECKER = r"""
import contextlib, io, json, os, sys

request = json.load(sys.stdin)
import vllm
import vllm.envs as envs
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.entrypoints.cli.serve import ServeSubcommand
from vllm.utils.argparse_utils import FlexibleArgumentParser

parser = FlexibleArgumentParser(prog="vllm")
subparsers = parser.add_subparsers(dest="subparser")
serve = ServeSubcommand()
serve.subparser_init(subparsers)


def parse_errors(argv):
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = parser.parse_args(["serve"] + list(argv))
        serve.validate(args)
        AsyncEngineArgs.from_cli_args(args)
    except SystemExit:
        text = stderr.getvalue()
        marker = "vllm serve: error: "
        return [text[text.index(marker) + len(marker):].strip() if marker in text else text.strip()]
    except Exception as exc:
        return ["%s: %s" % (type(exc).__name__, exc)]
    return []


def env_errors(env):
    errors, unknown = [], []
    for key, value in sorted(env.items()):
        if key in envs.environment_variables:
            if value is None:
                continue
            os.environ[key] = value
            try:
                envs.environment_variables[key]()
            except Exception as exc:
                errors.append("%s=%r: %s: %s" % (key, value, type(exc).__name__, exc))
        elif key.startswith("VLLM_"):
            unknown.append(key)
    return errors, unknown


results = {}
saved = dict(os.environ)
for server in request["servers"]:
    try:
        for key, value in server["env"].items():
            if value is not None:
                os.environ[key] = value
        errors = parse_errors(server["args"])
        bad_values, unknown = env_errors(server["env"])
        results[server["id"]] = {"errors": errors + bad_values, "unknown_env": unknown}
    finally:
        os.environ.clear()
        os.environ.update(saved)
print(json.dumps({"vllm_version": vllm.__version__, "results": results}))
"""


class PreflightError(RuntimeError):
    """The checker itself could not run (no vLLM in that python, image missing, timeout): nothing was checked."""


@dataclass(frozen=True)
class Target:
    """Where a server will run, hence which vLLM must judge its flags: a python interpreter or a container image."""

    python: str | None = None
    image: str | None = None
    docker: str = "docker"
    gpu_flags: tuple[str, ...] = ()  # passthrough flags, so vLLM resolves the same platform as the real run

    def __post_init__(self) -> None:
        if (self.python is None) == (self.image is None):
            raise ValueError("a preflight target is either a python interpreter or a container image")

    def __str__(self) -> str:
        return f"image {self.image}" if self.image else f"python {self.python}"

    def command(self) -> list[str]:
        """The checker's command line; its request arrives on stdin (no secrets in argv, nothing mounted)."""
        if self.python is not None:
            return [self.python, "-c", CHECKER]
        return [self.docker, "run", "--rm", "-i", "--network", "none", "-e", f"VLLM_LOGGING_LEVEL={CHECKER_LOG_LEVEL}",
                *self.gpu_flags, "--entrypoint", "python3", str(self.image), "-c", CHECKER]


@dataclass(frozen=True)
class ConfigCheck:
    """What the target's vLLM said about one server config; ``errors`` are vLLM's own messages."""

    server_id: str
    target: str
    vllm_version: str
    errors: tuple[str, ...] = ()
    unknown_env: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors and not self.unknown_env

    def describe(self) -> str:
        """One paragraph a user can act on: which server, which vLLM, what it said."""
        lines = [f"{self.server_id}: rejected by vLLM {self.vllm_version} ({self.target}):"]
        lines += [f"  {line}" for e in self.errors for line in e.splitlines()]
        lines += [
            f"  {key}: Unknown vLLM environment variable (vLLM {self.vllm_version} ignores it; renamed or removed?)"
            for key in self.unknown_env
        ]
        return "\n".join(lines)


@dataclass
class Report:
    checks: list[ConfigCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.checks)

    def render(self) -> str:
        lines = []
        for v in self.checks:
            lines.append(f"ok    {v.server_id} (vLLM {v.vllm_version}, {v.target})" if v.ok else v.describe())
        failed = sum(not v.ok for v in self.checks)
        lines.append(f"preflight: {len(self.checks)} server configs checked, {failed} rejected")
        return "\n".join(lines)


ProcessRunner = Callable[[Sequence[str], str, float], "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str], stdin: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}  # the config's env, not the caller's
    env["VLLM_LOGGING_LEVEL"] = CHECKER_LOG_LEVEL
    return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=timeout_s, env=env)


def request_for(key: str, config: ServerConfig) -> dict[str, Any]:
    """The checker's view of a server: the ``vllm serve`` arguments and the env (secret values never leave)."""
    env = {k: (None if is_secret_name(k) else v) for k, v in config.env}
    return {"id": key, "args": config.cli_args(), "env": env}


def check(
    target: Target, configs: Iterable[ServerConfig], run: ProcessRunner = _run, timeout_s: float = CHECK_TIMEOUT_S
) -> dict[ServerConfig, ConfigCheck]:
    """One checker process on ``target`` for all distinct ``configs``: a ConfigCheck per config."""
    unique = list(dict.fromkeys(configs))
    if not unique:
        return {}
    argv = target.command()
    stdin = json.dumps({"servers": [request_for(str(i), c) for i, c in enumerate(unique)]})
    try:
        done = run(argv, stdin, timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise PreflightError(f"preflight on {target}: no answer within {timeout_s:.0f} s") from exc
    except OSError as exc:
        raise PreflightError(f"preflight on {target}: cannot run {argv[0]}: {exc}") from exc
    try:
        answer = _answer(done.stdout or "")
        results = answer["results"]
        version = str(answer["vllm_version"])
    except (ValueError, KeyError, TypeError):
        tail = "\n".join(redact_text(done.stderr or "").strip().splitlines()[-15:])
        raise PreflightError(
            f"preflight on {target}: the checker failed (exit {done.returncode}); is vLLM installed there?\n{tail}"
        ) from None
    return {
        config: ConfigCheck(
            config.id, str(target), version, tuple(results[str(i)]["errors"]), tuple(results[str(i)]["unknown_env"])
        )
        for i, config in enumerate(unique)
    }


def _answer(stdout: str) -> dict[str, Any]:
    """The checker's JSON line: the last stdout line that parses as its answer (a log line may follow it)."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                answer = json.loads(line)
            except ValueError:
                continue
            if isinstance(answer, dict) and "results" in answer:
                return answer
    raise ValueError("no answer on stdout")


@dataclass(frozen=True)
class Resolver:
    """Which vLLM will serve a config, as servegate.launch.dispatch decides it (same options, same precedence)."""

    launcher: str | None = None  # --launcher: overrides every config's
    vllm_python: str | None = None
    vllm_url: str | None = None
    gpu: str | None = None  # docker passthrough: rocm, cuda or cpu; None detects it as the docker launcher does

    def target(self, config: ServerConfig) -> Target | None:
        """None for an external server: someone else started it, its flags are not ours to check."""
        kind = self.launcher or config.launcher
        if self.vllm_url or kind == "external":
            return None
        if kind == "docker":
            if not config.image:
                raise PreflightError(f"{config.id}: the docker launcher needs an image (suite key 'image')")
            return Target(image=config.image, gpu_flags=_gpu_flags(self.gpu))
        return Target(python=self.vllm_python or os.environ.get("SERVEGATE_VLLM_PYTHON") or sys.executable)


def _gpu_flags(gpu: str | None) -> tuple[str, ...]:
    from servegate.launch.docker import ROCM_DEVICE_FLAGS, DockerLauncher

    gpu = gpu or DockerLauncher().gpu
    return {"rocm": ROCM_DEVICE_FLAGS, "cuda": ("--gpus", "all")}.get(gpu, ())


def run_preflight(configs: Iterable[ServerConfig], resolver: Resolver, run: ProcessRunner = _run) -> Report:
    """Every distinct config checked by the vLLM that will serve it, one checker process per distinct target."""
    by_target: dict[Target, list[ServerConfig]] = {}
    for config in configs:
        target = resolver.target(config)
        if target is not None:
            by_target.setdefault(target, []).append(config)
    report = Report()
    for target, group in by_target.items():
        timeout_s = IMAGE_TIMEOUT_S if target.image else CHECK_TIMEOUT_S
        report.checks += check(target, group, run, timeout_s).values()
    return report


class Preflight:
    """The plugin's preflight: every planned config is checked in one batch the first time any case asks, so the
    vLLM import is paid once per session and target, and before the first server starts."""

    def __init__(self, resolver: Resolver, run: ProcessRunner = _run) -> None:
        self.resolver = resolver
        self.run = run
        self.planned: list[ServerConfig] = []
        self.checks: dict[ServerConfig, ConfigCheck | PreflightError] = {}

    def plan(self, configs: Iterable[ServerConfig]) -> None:
        self.planned += configs

    def rejection(self, configs: Sequence[ServerConfig]) -> str | None:
        """Why these configs cannot start, in vLLM's words (or why the check could not run); None when they pass."""
        todo = [c for c in dict.fromkeys([*self.planned, *configs]) if c not in self.checks]
        by_target: dict[Target | None, list[ServerConfig]] = {}
        for config in todo:
            try:
                by_target.setdefault(self.resolver.target(config), []).append(config)
            except PreflightError as exc:
                self.checks[config] = exc
        for target, group in by_target.items():
            if target is None:
                continue
            timeout_s = IMAGE_TIMEOUT_S if target.image else CHECK_TIMEOUT_S
            try:
                self.checks.update(check(target, group, self.run, timeout_s))
            except PreflightError as exc:
                self.checks.update(dict.fromkeys(group, exc))
        problems = []
        for config in configs:
            outcome = self.checks.get(config)
            if isinstance(outcome, PreflightError):
                problems.append(str(outcome))
            elif outcome is not None and not outcome.ok:
                problems.append(outcome.describe())
        return "preflight: " + "\n".join(problems) if problems else None


@dataclass(frozen=True)
class PlannedCase:
    """What one case will cost before it runs: server starts, requests, and the start-up budget it may spend."""

    case_id: str
    starts: int
    requests: int
    startup_budget_s: float  # starts x the server's startup_timeout_s: the most its start-ups may take


def plan(cases: Iterable[Any], restarts: Budget | None = None, multiplier: float = 1.0) -> list[PlannedCase]:
    """The starts, requests and worst-case start-up time of every case (servegate.suite.Case), as the plugin may
    run them (``--restarts``, ``--intensity``): a sequential budget is counted at its maximum, the most it can
    spend. Start-up dominates GPU suites: a 405B model's start is minutes."""
    out = []
    for case in cases:
        servers = [server for _, server in case.arms] or [case.server]
        per_server = (restarts or case.restarts).max_starts
        starts = per_server * len(servers)
        requests = sum(max(1, round(load.num_requests * multiplier)) + load.warmup_requests for _, load in case.steps)
        budget = per_server * sum(server.startup_timeout_s for server in servers)
        out.append(PlannedCase(case.id, starts, requests * starts, budget))
    return out


def render_plan(planned: list[PlannedCase]) -> str:
    lines = [f"{'case':<100} {'starts':>6} {'requests':>9} {'start-up budget':>16}"]
    for p in planned:
        lines.append(f"{p.case_id[:100]:<100} {p.starts:>6} {p.requests:>9} {p.startup_budget_s / 60:>12.0f} min")
    total_budget = sum(p.startup_budget_s for p in planned)
    lines.append(
        f"{len(planned)} cases, {sum(p.starts for p in planned)} server starts, {sum(p.requests for p in planned)} "
        f"requests; start-ups alone may take up to {total_budget / 3600:.1f} GPU-node hours (startup_timeout_s)"
    )
    return "\n".join(lines)


__all__ = [
    "CHECKER",
    "ConfigCheck",
    "PlannedCase",
    "Preflight",
    "PreflightError",
    "Report",
    "Resolver",
    "Target",
    "check",
    "plan",
    "render_plan",
    "run_preflight",
]
