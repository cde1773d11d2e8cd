"""Bad input is refused before any server starts, in one line that names the option or file/key, the value given
and what is allowed: suite-file fields, command-line options, the open-file limit, the published JSON Schema.

No test here starts a server: the scratch projects' suites record hand-made starts (servegate.testing.fakes).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from servegate.cli import main as cli_main
from servegate.config import LoadConfig, ServerConfig
from servegate.pytest.options import OptionError, ensure_fd_limit, parse_tolerance
from servegate.sequential import Budget, BudgetError
from servegate.suite import MAX_CASES_PER_SUITE, SuiteError, load_suite_file, suite_json_schema
from servegate.testing.fakes import FAKE_SUITE_MODULE

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent


def suite_text(server: str = "{model: m}", load: str = "{}") -> str:
    return f"hardware: cpu\nsuites:\n  s:\n    servers: [{server}]\n    loads: [{load}]\n"


# ---------------------------------------------------------------------------------------------------------------
# Suite-file fields: each error names file, key path, the value given and what is allowed
# ---------------------------------------------------------------------------------------------------------------

BAD_FIELDS = {
    "launcher-typo": (
        suite_text(server="{model: m, launcher: dokcer}"),
        "servers[0].launcher: got 'dokcer' (str); expected 'local', 'docker' or 'external'",
    ),
    "dataset-unknown": (
        suite_text(load="{dataset: wikipedia}"),
        "loads[0].dataset: got 'wikipedia' (str); expected 'synthetic', 'sharegpt', 'images' or 'mooncake'",
    ),
    "bool-as-string": (
        suite_text(server='{model: m, enforce_eager: "no"}'),
        "servers[0].enforce_eager: got 'no' (str); expected a valid boolean",
    ),
    "int-as-string": (
        suite_text(load='{num_requests: "64"}'),
        "loads[0].num_requests: got '64' (str); expected a valid integer",
    ),
    "tp-as-string": (
        suite_text(server='{model: m, tensor_parallel_size: "8"}'),
        "servers[0].tensor_parallel_size: got '8' (str); expected a valid integer",
    ),
    "negative-startup-timeout": (
        suite_text(server="{model: m, startup_timeout_s: -5}"),
        "servers[0].startup_timeout_s: got -5 (int); expected greater than 0",
    ),
    "negative-request-timeout": (
        suite_text(load="{request_timeout_s: -1}"),
        "loads[0].request_timeout_s: got -1 (int); expected greater than 0",
    ),
    "negative-max-seconds": (
        suite_text(load="{max_seconds: -1}"),
        "loads[0].max_seconds: got -1 (int); expected greater than 0",
    ),
    "negative-cooldown": (
        suite_text(load="{cooldown_s: -2}"),
        "loads[0].cooldown_s: got -2 (int); expected greater than or equal to 0",
    ),
    "percentile-150": (
        suite_text(load="{percentiles: [50, 150]}"),
        "loads[0].percentiles[1]: got 150 (int); expected less than or equal to 100",
    ),
    "percentile-negative": (
        suite_text(load="{percentiles: [-3]}"),
        "loads[0].percentiles[0]: got -3 (int); expected greater than 0",
    ),
    "rate-word": (
        suite_text(load="{profile: constant, rate: fast}"),
        "loads[0].rate: got 'fast' (str); expected a valid number",
    ),
    "rate-missing": (suite_text(load="{profile: poisson}"), "needs rate: requests per second > 0, got None"),
    "negative-temperature": (
        suite_text(load="{temperature: -1}"),
        "loads[0].temperature: got -1 (int); expected greater than or equal to 0",
    ),
    "zero-workers": (
        suite_text(load="{workers: 0}"),
        "loads[0].workers: got 0 (int); expected greater than or equal to 1",
    ),
    "zero-concurrency": (suite_text(load="{concurrency: 0}"), "loads[0].concurrency: got 0 (int)"),
    "image-size": (
        suite_text(load="{dataset: images, endpoint: chat, image_size: [0, 10]}"),
        "loads[0].image_size[0]: got 0 (int); expected greater than or equal to 1",
    ),
    "sharegpt-without-path": (suite_text(load="{dataset: sharegpt}"), "dataset 'sharegpt' needs dataset_path"),
    "extra-args-string": (
        suite_text(server='{model: m, extra_args: "--enforce-eager"}'),
        "servers[0].extra_args: got '--enforce-eager'; expected a list",
    ),
    "slo-number": (suite_text(load="{slo: 5}"), "loads[0].slo: got 5; expected a mapping"),
    "slo-key": (suite_text(load="{slo: {ttft: 5}}"), "loads[0].slo: unknown key(s) ttft; allowed: e2el_ms"),
    "prompt-exceeds-context": (
        suite_text(server="{model: m, max_model_len: 256}", load="{prompt_tokens: 512}"),
        "prompt_tokens + output_tokens = 576 exceeds server m's max_model_len 256",
    ),
    "matrix-too-large": (
        suite_text(server="{model: m, matrix: {max_num_seqs: [1,2,3,4,5,6,7], block_size: [1,2,3,4,5,6,7,8,9,10]}}"),
        f"servers[0].matrix: 7 max_num_seqs x 10 block_size = 70 servers; at most {MAX_CASES_PER_SUITE} per suite",
    ),
}


@pytest.mark.parametrize("text,expected", list(BAD_FIELDS.values()), ids=list(BAD_FIELDS))
def test_bad_suite_fields_are_refused_with_key_value_and_allowed(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError) as err:
        load_suite_file(path)
    message = str(err.value)
    assert message.startswith(f"{path}: suites.s"), message
    assert expected in message, message
    assert "errors.pydantic.dev" not in message and "Traceback" not in message


def test_the_schema_refuses_what_the_loader_refuses_and_accepts_the_shipped_suites(tmp_path: Path) -> None:
    validator = jsonschema.Draft202012Validator(suite_json_schema())
    for path in sorted((REPO / "suites").glob("*.yaml")):
        assert list(validator.iter_errors(yaml.safe_load(path.read_text()))) == [], path
    for name in ("launcher-typo", "dataset-unknown", "bool-as-string", "int-as-string", "percentile-150", "rate-word"):
        assert not validator.is_valid(yaml.safe_load(BAD_FIELDS[name][0])), name


def test_committed_schema_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    committed = json.loads((REPO / "suite.schema.json").read_text())
    assert printed == committed, "suite.schema.json is stale: run `servegate schema > suite.schema.json`"


def test_strict_configs_refuse_coercion_in_code_too() -> None:
    with pytest.raises(ValueError, match="enforce_eager"):
        ServerConfig(model="m", enforce_eager="no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_requests"):
        LoadConfig(num_requests=0)
    assert LoadConfig(num_requests=1).scaled(0.5).num_requests == 1  # scaling never goes below one request


# ---------------------------------------------------------------------------------------------------------------
# Options: parsed and refused before anything runs (exit code 4, one line)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "-0.1", "0", "1", "1.5", "abc", ""])
def test_tolerance_outside_zero_one_is_refused(text: str) -> None:
    with pytest.raises(OptionError, match=r"--tolerance .*0 < tolerance < 1|--tolerance .*not a number"):
        parse_tolerance(text)


def test_tolerance_and_restarts_accept_sane_values() -> None:
    assert parse_tolerance("0.03") == 0.03 and Budget.parse("5") == Budget(5, 5)


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", "0:3", "5:2"])
def test_restarts_below_one_or_not_integer_is_refused(text: str) -> None:
    with pytest.raises(BudgetError, match=f"--restarts '{text}'"):
        Budget.parse(text)


CONFTEST = 'pytest_plugins = ["servegate.pytest.plugin"]\n'
SUITE = """
hardware: {hardware}
suites:
  serving:
    restarts: 2
    servers: [{{model: some/model}}]
    loads: [{{concurrency: {concurrency}, num_requests: 4}}]
"""


def make_project(pytester: pytest.Pytester, hardware: str = "cpu", concurrency: int = 1) -> Path:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\n")  # the rootdir, wherever pytest is started from
    suites = pytester.mkdir("suites")
    (suites / "serving.yaml").write_text(SUITE.format(hardware=hardware, concurrency=concurrency))
    (suites / "test_serving.py").write_text(FAKE_SUITE_MODULE)
    return suites


BAD_OPTIONS = {
    "tolerance-nan": (["--tolerance", "nan"], "--tolerance 'nan': must be a finite fraction"),
    "tolerance-inf": (["--tolerance", "inf"], "--tolerance 'inf': must be a finite fraction"),
    "tolerance-negative": (["--tolerance", "-0.05"], "--tolerance '-0.05': must be a finite fraction"),
    "tolerance-above-one": (["--tolerance", "2"], "--tolerance '2': must be a finite fraction"),
    "restarts-zero": (["--restarts", "0"], "--restarts '0': restarts: need 1 <= min <= max"),
    "restarts-negative": (["--restarts", "-1"], "--restarts '-1': expected auto, N (fixed) or MIN:MAX"),
    "restarts-one-gated": (["--restarts", "1"], "--restarts 1: one server start per case cannot be gated"),
    "restarts-one-baseline": (["--restarts", "1", "--update-baselines"], "cannot be recorded as a baseline"),
    "baselines-dir-is-file": (["--baselines-dir", "afile"], "--baselines-dir 'afile': "),
    "results-dir-is-file": (["--results-dir", "afile"], "--results-dir 'afile': "),
    "results-dir-under-file": (["--results-dir", "afile/results"], "cannot write there"),
    "force-without-update": (["--force-baseline"], "--force-baseline only applies with --update-baselines"),
    "gate-unknown": (["--gate", "lenient"], "argument --gate: invalid choice: 'lenient'"),
    "intensity-unknown": (["--intensity", "extreme"], "argument --intensity: invalid choice: 'extreme'"),
    "marker-unknown": (["-m", "mi999x"], "unknown marker(s) mi999x"),
}


@pytest.mark.parametrize("args,expected", list(BAD_OPTIONS.values()), ids=list(BAD_OPTIONS))
def test_bad_options_are_usage_errors_before_any_case_runs(
    pytester: pytest.Pytester, args: list[str], expected: str
) -> None:
    make_project(pytester)
    (pytester.path / "afile").write_text("not a directory\n")
    result = pytester.runpytest_inprocess("suites", "-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    output = result.stdout.str() + result.stderr.str()
    assert expected in output, output
    assert "Traceback" not in output and "passed" not in output
    assert not (pytester.path / "results").exists()  # nothing ran, nothing was written


def test_relative_baselines_dir_is_the_rootdirs_from_any_directory(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester)
    elsewhere = pytester.mkdir("elsewhere")
    probe = (
        "from servegate.pytest.plugin import SESSION_KEY\n"
        "def test_where(request):\n"
        "    print('BASELINES', request.config.stash[SESSION_KEY].baselines_dir)\n"
    )
    (pytester.path / "suites" / "test_where.py").write_text(probe)
    monkeypatch.chdir(elsewhere)
    result = pytester.runpytest_inprocess("../suites/test_where.py", "-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert f"BASELINES {pytester.path.resolve() / 'baselines'}" in result.stdout.str()


def test_missing_baselines_dir_with_the_gate_on_is_refused_or_stated(pytester: pytest.Pytester) -> None:
    """A given store that does not exist would make every case NOT COMPARED: refused. The default store missing (a
    project without baselines yet) is said in the header; recording or --gate off need no store."""
    make_project(pytester)
    given = pytester.runpytest_inprocess("suites", "-p", "no:cacheprovider", "--baselines-dir", "nowhere")
    assert given.ret == pytest.ExitCode.USAGE_ERROR
    given.stderr.fnmatch_lines(["*--baselines-dir 'nowhere': */nowhere does not exist, so the gate would compare*"])
    default = pytester.runpytest_inprocess("suites", "-p", "no:cacheprovider")
    default.stdout.fnmatch_lines(
        ["*WARNING: baselines dir */baselines does not exist: every case will be NOT COMPARED*"]
    )
    for quiet_args in (("--gate", "off"), ("--update-baselines",)):
        quiet = pytester.runpytest_inprocess(
            "suites", "-p", "no:cacheprovider", "--baselines-dir", "nowhere", *quiet_args
        )
        assert quiet.ret != pytest.ExitCode.USAGE_ERROR and "WARNING: baselines dir" not in quiet.stdout.str()


# ---------------------------------------------------------------------------------------------------------------
# The client's open-file limit against the largest concurrency
# ---------------------------------------------------------------------------------------------------------------


def test_fd_limit_raised_when_the_hard_limit_allows() -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert ensure_fd_limit(10) >= 10
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= soft


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def test_concurrency_beyond_the_fd_limit_is_refused_before_any_start(pytester: pytest.Pytester) -> None:
    make_project(pytester, concurrency=100_000)
    cmd = [sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, cwd=pytester.path, capture_output=True, text=True, timeout=300, preexec_fn=_low_fd_limit)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "concurrency 100000 needs about 100256 open files, but this process may open at most 1024" in proc.stdout
    assert "passed" not in proc.stdout


def test_concurrency_within_a_raisable_limit_runs(pytester: pytest.Pytester) -> None:
    make_project(pytester, concurrency=2000)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 2000 + 256:
        pytest.fail(f"this machine's hard open-file limit {hard} is too low to test raising the soft limit")

    def soft_low() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    cmd = [sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "--gate", "off"]
    proc = subprocess.run(cmd, cwd=pytester.path, capture_output=True, text=True, timeout=300, preexec_fn=soft_low)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_require_hardware_fails_a_session_whose_hardware_is_absent(pytester: pytest.Pytester) -> None:
    make_project(pytester, hardware="mi300x")
    skipped = pytester.runpytest_inprocess("suites", "-m", "mi300x", "-p", "no:cacheprovider")
    skipped.assert_outcomes(skipped=1)  # without the flag: a skip, as on a developer's laptop
    result = pytester.runpytest_inprocess("suites", "-m", "mi300x", "-p", "no:cacheprovider", "--require-hardware")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*--require-hardware: 1 selected hardware target(s) not on this machine: mi300x*"])
    assert "passed" not in result.stdout.str() and "skipped" not in result.stdout.str().splitlines()[-1]


def test_require_hardware_passes_where_the_hardware_is(pytester: pytest.Pytester) -> None:
    make_project(pytester, hardware="cpu")
    result = pytester.runpytest_inprocess("suites", "-m", "cpu", "-p", "no:cacheprovider", "--require-hardware")
    result.assert_outcomes(passed=1)


def test_a_bad_suite_field_through_pytest_is_one_line_not_a_traceback(pytester: pytest.Pytester) -> None:
    suites = make_project(pytester)
    (suites / "serving.yaml").write_text(
        SUITE.format(hardware="cpu", concurrency=1).replace(
            "{model: some/model}", "{model: some/model, launcher: dokcer}"
        )
    )
    result = pytester.runpytest_inprocess("suites", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "suites.serving.servers[0].launcher: got 'dokcer' (str); expected 'local', 'docker' or 'external'" in output
    assert "Traceback" not in output and "pydantic" not in output and len(output.splitlines()) < 25, output
