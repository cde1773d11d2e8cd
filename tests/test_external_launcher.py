"""ExternalLauncher against a tiny local HTTP server that answers like vLLM (/health, /v1/models, /version)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from servegate.config import ServerConfig
from servegate.launch.base import ServerStartError
from servegate.launch.external import ExternalLauncher, NotLoopbackError, is_loopback, normalize_url


class FakeVllm(http.server.BaseHTTPRequestHandler):
    health = 200
    models: tuple[str, ...] = ("Qwen/Qwen2-VL-72B-Instruct",)
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        if self.path == "/health":
            self._send(self.health, b"")
        elif self.path == "/v1/models":
            self._send(200, json.dumps({"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]})
                       .encode())
        elif self.path == "/version":
            self._send(200, b'{"version": "0.20.1"}')
        else:
            self._send(404, b"")

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    FakeVllm.health, FakeVllm.models, FakeVllm.hits = 200, ("Qwen/Qwen2-VL-72B-Instruct",), []
    httpd = http.server.HTTPServer(("127.0.0.1", 0), FakeVllm)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


CONFIG = ServerConfig(model="Qwen/Qwen2-VL-72B-Instruct", launcher="external")


def test_attaches_and_reads_the_version(server: str, tmp_path: Path) -> None:
    with ExternalLauncher(server + "/v1/").start(CONFIG, tmp_path) as handle:
        assert handle.base_url == server
        assert handle.facts.vllm_version == "0.20.1"
        assert handle.facts.extra["served_models"] == ["Qwen/Qwen2-VL-72B-Instruct"]
        assert handle.pid is None and handle.container_id is None
        assert handle.is_alive()
    assert handle.is_alive()  # not ours to stop
    assert FakeVllm.hits[:2] == ["/health", "/v1/models"]


def test_url_from_the_config_when_none_is_given(server: str, tmp_path: Path) -> None:
    with ExternalLauncher().start(CONFIG.with_overrides(url=server), tmp_path) as handle:
        assert handle.base_url == server
    with pytest.raises(ServerStartError, match="needs a URL"), ExternalLauncher().start(CONFIG, tmp_path):
        pass


def test_unhealthy_server_is_refused(server: str, tmp_path: Path) -> None:
    FakeVllm.health = 503
    launcher = ExternalLauncher(server)
    with pytest.raises(ServerStartError, match=r"/health -> HTTP 503"), launcher.start(CONFIG, tmp_path):
        pass


def test_a_server_serving_another_model_is_refused(server: str, tmp_path: Path) -> None:
    FakeVllm.models = ("openai/gpt-oss-120b",)
    wrong = r"does not serve 'Qwen/Qwen2-VL-72B-Instruct'.*gpt-oss-120b"
    with pytest.raises(ServerStartError, match=wrong), ExternalLauncher(server).start(CONFIG, tmp_path):
        pass
    served_name = CONFIG.with_overrides(served_model_name="openai/gpt-oss-120b")
    with ExternalLauncher(server).start(served_name, tmp_path) as handle:
        assert handle.facts.extra["served_models"] == ["openai/gpt-oss-120b"]


def test_nothing_listening_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ServerStartError, match="unreachable"), ExternalLauncher(f"http://127.0.0.1:{port}").start(
        CONFIG, tmp_path
    ):
        pass


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "http://example.com:8000", "http://0.0.0.0:8000",
                                 "http://[2001:db8::1]:8000", "http://192.168.1.20/v1"])
def test_non_loopback_urls_are_refused_by_default(url: str) -> None:
    with pytest.raises(NotLoopbackError, match="only targets servers on this machine's loopback"):
        ExternalLauncher(url)
    assert normalize_url(url, allow_remote=True).startswith("http")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


def test_bad_urls() -> None:
    for url in ("127.0.0.1:8000", "ftp://127.0.0.1/", "http://"):
        with pytest.raises(ValueError, match="must be http"):
            normalize_url(url)
    assert normalize_url("http://[::1]:8000/v1") == "http://[::1]:8000"
