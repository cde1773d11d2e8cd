"""A real, throwaway PostgreSQL server for the history tests: Debian's ``postgresql`` binaries (initdb, pg_ctl),
a data directory in a temp dir, a free loopback port, trust authentication for one user, stopped afterwards.

initdb refuses to run as root; as root the server runs as the ``postgres`` system user the package creates.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

USER = "servegate"


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(
            f"PostgreSQL's {name} not found under /usr/lib/postgresql/*/bin: install Debian's postgresql package "
            "(apt-get install postgresql; .ci/run does)"
        )
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server, yield its ``postgresql://`` URL without a database name (see ``new_database``), stop it
    and delete its files."""
    root = Path(tempfile.mkdtemp(prefix="servegate-pg-"))
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(root, "postgres", "postgres")
    data, log, sockets = root / "data", root / "server.log", root / "sock"
    sockets.mkdir()
    if as_root:
        shutil.chown(sockets, "postgres", "postgres")
    port = _free_port()
    pg_ctl = _bin("pg_ctl")

    def run(argv: list[str]) -> None:
        done = subprocess.run(prefix + argv, capture_output=True, text=True, timeout=180, check=False)
        if done.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}\n{tail}")

    try:
        run([_bin("initdb"), "-D", str(data), "-U", USER, "--auth=trust", "--no-sync", "-E", "UTF8"])
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        run([pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "120", "start"])
        try:
            yield f"postgresql://{USER}@127.0.0.1:{port}"
        finally:
            run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "120", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def new_database(server_url: str, name: str, template: str | None = None) -> str:
    """Create database ``name`` (a copy of ``template`` when given) on the server; return its URL."""
    import psycopg

    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
        clause = f" TEMPLATE {template}" if template else ""
        conn.execute(f"CREATE DATABASE {name}{clause}")
    return f"{server_url}/{name}"
