"""Secrets are masked by their values, not only by their shape: a token that does not look like ``hf_…`` must
not reach a repr, a traceback, a server log, the terminal ``cause:`` line or any file servegate writes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from servegate import redact
from servegate.config import ServerConfig
from servegate.launch.base import ServerStartError
from servegate.redact import MASK, redact_obj, redact_text, register_secret
from servegate.testing.fakes import FAKE_SUITE_MODULE, ScriptLauncher

pytest_plugins = ["pytester"]

PLAIN = "opensesame-4815162342"  # a credential without a recognisable shape (never a real one)


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact, "_registered", set())


def test_values_of_secret_variables_in_the_environment_are_masked_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    assert redact_text(f"401 for {PLAIN}") == f"401 for {PLAIN}"  # unknown and shapeless: nothing to go by
    monkeypatch.setenv("HF_TOKEN", PLAIN)
    assert redact_text(f"401 Unauthorized for {PLAIN} at /models") == f"401 Unauthorized for {MASK} at /models"
    assert PLAIN not in json.dumps(redact_obj({"first_errors": [f"bad token {PLAIN}"], "argv": ["-x", PLAIN]}))


def test_registered_values_are_masked_and_short_values_are_not_registered() -> None:
    register_secret(PLAIN)
    register_secret("1")  # an env value like "1" would otherwise mask every digit
    assert redact_text(f"x{PLAIN}y and 1") == f"x{MASK}y and 1"


def test_a_longer_secret_containing_a_shorter_one_is_masked_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", "secret-abc")
    monkeypatch.setenv("API_KEY", "secret-abc-and-more")
    assert redact_text("k=secret-abc-and-more") == f"k={MASK}"


def test_server_config_repr_masks_env_values_of_secrets() -> None:
    config = ServerConfig(model="m", env=(("HF_TOKEN", PLAIN), ("VLLM_ROCM_USE_AITER", "1")))
    text = repr(config)
    assert PLAIN not in text and "('HF_TOKEN', '***')" in text and "('VLLM_ROCM_USE_AITER', '1')" in text
    assert PLAIN not in str(config) and PLAIN not in config.id


def test_a_shapeless_token_in_a_server_log_and_cause_line_is_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", PLAIN)
    script = "import os, sys\nprint('ValueError: token ' + os.environ['HF_TOKEN'] + ' rejected')\nsys.exit(1)"
    config = ServerConfig(model="fake-model", name="fake", startup_timeout_s=20.0)
    with pytest.raises(ServerStartError) as err, ScriptLauncher(script).start(config, tmp_path):
        pass
    message = str(err.value)
    assert "\ncause: ValueError: token *** rejected\n" in message, message
    assert PLAIN not in message
    for log in tmp_path.glob("*.log"):
        assert PLAIN not in log.read_text()


SUITE_WITH_TOKEN = f"""
hardware: cpu
suites:
  serving:
    restarts: 2
    servers: [{{model: some/model, env: {{MY_SERVICE_API_KEY: "{PLAIN}", VLLM_X: "1"}}}}]
    loads: [{{concurrency: 1, num_requests: 4}}]
"""

FAILING_MODULE = FAKE_SUITE_MODULE + textwrap.dedent(
    """
    def test_fails_showing_the_config(case):
        print("config:", case.server, dict(case.server.env))
        assert case.server is None, f"unexpected server {case.server!r}"
    """
)


def test_a_token_from_the_suite_env_never_reaches_output_traceback_or_files(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["servegate.pytest.plugin"]\n')
    suites = pytester.mkdir("suites")
    (suites / "serving.yaml").write_text(SUITE_WITH_TOKEN)
    (suites / "test_serving.py").write_text(FAILING_MODULE)
    result = pytester.runpytest_subprocess(
        "suites", "-p", "no:cacheprovider", "--junitxml", "junit.xml", "-rA", "--showlocals"
    )
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str() + result.stderr.str()
    assert "unexpected server ServerConfig(" in output  # the failure is there, with the config
    assert PLAIN not in output
    written = [p for p in pytester.path.rglob("*") if p.is_file() and p.suffix in (".json", ".html", ".xml", ".log")]
    assert any(p.suffix == ".json" for p in written) and any(p.name == "junit.xml" for p in written)
    for path in written:
        assert PLAIN not in path.read_text(errors="replace"), path
