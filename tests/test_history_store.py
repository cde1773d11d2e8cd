"""The history store on SQLite and on a real PostgreSQL server started here: same history after the same sessions,
one transaction per session (a SIGKILLed writer leaves nothing), migration of a version-1 database with data."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData, Table, select

from servegate.history import schema
from servegate.history.mapping import session_rows
from servegate.history.store import HistoryError, HistoryStore, engine_for, safe_url
from servegate.record import GateRow, Session
from servegate.results import write_results
from tests.history_sessions import make_session, stamp
from tests.postgres_server import new_database, postgres_server

GATE_ROW = GateRow(
    config_id="cpu/a",
    metric="ttft_median_ms",
    verdict="OK",
    ratio=1.01,
    ci_low=0.99,
    ci_high=1.02,
    p_value=0.2,
    tolerance=0.03,
    alpha=0.05,
    reason="within tolerance",
)
NODES = [
    {"node_id": "n0", "address": "10.0.0.1", "resources": {"GPU": 8}},
    {"node_id": "n1", "address": "10.0.0.2", "resources": {"GPU": 8}},
]


def three_sessions() -> list[Session]:
    return [
        make_session(stamp(0), {"cpu/a": [1.0, 1.01], "cpu/b": [1.2, 1.21]}, git_sha="abc123"),
        make_session(stamp(1), {"cpu/a": [1.02, 1.0]}, gate=[GATE_ROW]),
        make_session(stamp(2), {"cpu/a": [1.1, 1.12], "cpu/b": [1.3, 1.31]}, vllm_version="0.20.2", nodes=NODES),
    ]


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


_databases = iter(range(10_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite")
    return new_database(request.getfixturevalue("pg_server"), f"h{next(_databases)}")


def table_contents(url: str) -> dict[str, list[tuple]]:
    """Every table without surrogate keys or recording times, in a stable order: what two stores that recorded
    the same sessions must agree on, whatever the engine."""
    s, c = schema.sessions, schema.cases
    out: dict[str, list[tuple]] = {}
    engine = engine_for(url)
    with engine.connect() as conn:
        cols = [col for col in s.c if col.name not in ("id", "recorded")]
        out["sessions"] = [tuple(r) for r in conn.execute(select(*cols).order_by(s.c.created))]
        key = [s.c.document_sha256, c.c.case_id]
        case_cols = [col for col in c.c if col.name not in ("id", "session_id")]
        out["cases"] = [tuple(r) for r in conn.execute(select(*key, *case_cols).join(s).order_by(*key))]
        for table in (schema.start_values, schema.gate_rows, schema.nodes):
            cols = [col for col in table.c if col.name != "case_pk"]
            query = select(*key, *cols).select_from(table.join(c).join(s)).order_by(*key, *cols)
            out[table.name] = [tuple(r) for r in conn.execute(query)]
    engine.dispose()
    return out


def test_sqlite_and_postgresql_hold_the_same_history(tmp_path: Path, pg_server: str) -> None:
    urls = [str(tmp_path / "history.sqlite"), new_database(pg_server, "same_history")]
    for url in urls:
        with HistoryStore(url) as store:
            for session in three_sessions():
                assert store.append(session).new
    sqlite, postgresql = (table_contents(url) for url in urls)
    assert sqlite == postgresql
    assert len(sqlite["sessions"]) == 3 and len(sqlite["cases"]) == 5
    assert len(sqlite["nodes"]) == 8  # the third session: 2 cases x 2 starts x 2 nodes
    assert len(sqlite["start_values"]) == 10 * len(make_session(stamp(0), {"x": [1.0]}).cases[0].values)
    assert [row[2:5] for row in sqlite["gate_rows"]] == [("ttft_median_ms", "OK", 1.01)]
    with HistoryStore(urls[1]) as store:
        sessions = store.sessions()
        assert [s["vllm_version"] for s in sessions] == ["0.20.1", "0.20.1", "0.20.2"]
        assert sessions[0]["git_sha"] == "abc123" and sessions[0]["hardware_id"] == "cpu-test-cpu-2c"
        points = store.series("cpu/a", "ttft_median_ms")[("cpu/a", "ttft_median_ms")]
        assert [p.starts for p in points] == [2, 2, 2]
        assert points[2].mean > points[0].mean * 1.05  # the third session's 10% slower starts


def test_the_same_results_recorded_twice_is_one_session(history_url: str) -> None:
    session = three_sessions()[0]
    with HistoryStore(history_url) as store:
        first, again = store.append(session), store.append(session)
        assert first.new and not again.new and first.session_id == again.session_id
        session.history = {"session_id": first.session_id}  # the note the recording adds is not part of it
        assert store.append(session).session_id == first.session_id
        assert len(store.sessions()) == 1


# Records one session; the SQLAlchemy event hook SIGKILLs the process right after the Nth row of per-start values
# went to the database, i.e. in the middle of the session's transaction.
KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from sqlalchemy import event
from servegate.history.store import HistoryStore
from servegate.results import load_results

store = HistoryStore(sys.argv[1])
inserts = []

@event.listens_for(store.engine, "after_cursor_execute")
def kill_midway(conn, cursor, statement, parameters, context, executemany):
    if statement.lstrip().upper().startswith("INSERT INTO START_VALUES"):
        inserts.append(statement)
        if len(inserts) == 2:
            os.kill(os.getpid(), signal.SIGKILL)

store.append(load_results(Path(sys.argv[2])))
"""


def test_a_writer_killed_mid_session_leaves_no_partial_session(history_url: str, tmp_path: Path) -> None:
    with HistoryStore(history_url) as store:
        store.append(three_sessions()[0])
    doc_path = write_results(tmp_path / "session.json", three_sessions()[2])
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_WRITER), history_url, str(doc_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr  # it died inside the transaction, as planned
    before = table_contents(history_url)
    assert len(before["sessions"]) == 1  # only the first session: nothing of the killed one
    assert len(before["cases"]) == 2
    with HistoryStore(history_url) as store:  # the store is still usable and records the session in full
        assert store.append(three_sessions()[2]).new
        assert len(store.sessions()) == 2
    assert len(table_contents(history_url)["nodes"]) == 8


def _version_1_database(url: str) -> None:
    """A database as servegate with schema version 1 left it: step 1 applied, one session recorded."""
    engine = engine_for(url)
    with engine.begin() as conn:
        schema.apply_step(conn, 1)
        v1 = MetaData()
        tables = {name: Table(name, v1, autoload_with=conn) for name in ("sessions", "cases", "start_values")}
        rows = session_rows(three_sessions()[0])
        session = {k: v for k, v in rows.session.items() if k != "shard_count"}
        sid = conn.execute(tables["sessions"].insert().values(**session)).inserted_primary_key[0]
        for case in rows.cases:
            pk = conn.execute(tables["cases"].insert().values(session_id=sid, **case.case)).inserted_primary_key[0]
            conn.execute(tables["start_values"].insert(), [{"case_pk": pk, **v} for v in case.values])
    engine.dispose()


def test_migration_from_version_1_keeps_the_data(tmp_path: Path, pg_server: str) -> None:
    original = tmp_path / "v1.sqlite"
    _version_1_database(str(original))
    copy = tmp_path / "copy.sqlite"
    shutil.copy(original, copy)
    new_database(pg_server, "v1_original")
    _version_1_database(f"{pg_server}/v1_original")
    pg_copy = new_database(pg_server, "v1_copy", template="v1_original")
    for url in (str(copy), pg_copy):
        with HistoryStore(url) as store:
            assert store.version == schema.SCHEMA_VERSION == 2
            sessions = store.sessions()
            assert len(sessions) == 1 and sessions[0]["git_sha"] == "abc123" and sessions[0]["shard_count"] is None
            assert len(store.series("cpu/a", "ttft_median_ms")[("cpu/a", "ttft_median_ms")]) == 1
            assert store.append(three_sessions()[2]).new  # the version-2 parts (nodes) work on the migrated copy
        contents = table_contents(url)
        assert len(contents["sessions"]) == 2 and len(contents["nodes"]) == 8
    engine = engine_for(str(original))
    with engine.connect() as conn:
        assert schema.current_version(conn) == 1  # the original is untouched
    engine.dispose()


def test_a_newer_database_is_refused_with_the_versions(tmp_path: Path) -> None:
    url = str(tmp_path / "h.sqlite")
    HistoryStore(url).close()
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(schema.schema_version.insert().values(version=99, applied="2030-01-01T00:00:00Z"))
    engine.dispose()
    with pytest.raises(HistoryError, match="schema version 99; this servegate knows up to 2"):
        HistoryStore(url)


def test_an_unreachable_database_is_named_without_its_password() -> None:
    url = "postgresql://gate:s3cret@127.0.0.1:1/history"
    with pytest.raises(HistoryError) as info:
        HistoryStore(url)
    assert "s3cret" not in str(info.value) and "127.0.0.1:1" in str(info.value)
    assert "s3cret" not in safe_url(url)
