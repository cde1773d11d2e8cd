"""A server that dies or never starts fails its case with the launcher's message (what, when, where the log is),
not with a traceback from inside the library; the session goes on to the next case."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

SUITE = """
hardware: cpu
suites:
  serving:
    restarts: 1
    servers:
      - model: some/model
    loads:
      - {concurrency: 1, num_requests: 4}
      - {concurrency: 2, num_requests: 4}
"""

# The case bodies raise what the launcher and measure() raise; the server's log is a real file.
MODULE = """
from pathlib import Path

from servegate.config import ServerConfig
from servegate.launch.base import ServerHandle, ServerStartError, StartupFacts

SUITE = "serving"


def test_serving(case, bench, tmp_path):
    log = tmp_path / "server.log"
    log.write_text("INFO engine started\\nKilled\\n")
    if case.load.concurrency == 1:
        handle = ServerHandle(ServerConfig(model="some/model"), "http://127.0.0.1:9", log, StartupFacts())
        raise handle.lost("warmup", ConnectionResetError(104, "Connection reset by peer"))
    raise ServerStartError(f"server exited during start-up after 3 s.\\ncause: boom\\nfull log: {log}")
"""


def test_server_errors_fail_the_case_with_the_message_alone(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["servegate.pytest.plugin"]')
    suites = pytester.mkdir("suites")
    (suites / "cpu.yaml").write_text(SUITE)
    (suites / "test_serving.py").write_text(textwrap.dedent(MODULE))
    result = pytester.runpytest_subprocess("suites", "-m", "cpu", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "stopped answering during warmup: ConnectionResetError" in out
    assert "--- last lines ---" in out and "Killed" in out
    assert "server exited during start-up after 3 s." in out
    assert "Traceback" not in out and "raise handle.lost" not in out, "no traceback, only the message"
