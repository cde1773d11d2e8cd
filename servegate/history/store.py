"""The history store: every session's results in one database, SQLite by default, PostgreSQL for a team.

A session (a ``servegate.record.Session``) is written in one transaction: it is recorded completely or not at all
(a writer killed halfway leaves nothing behind). The same session recorded twice is one session. Opening a store
migrates an older database to the current schema first (servegate.history.schema).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from servegate.history import HistoryError, schema
from servegate.history.mapping import FINGERPRINT_FIELDS, session_rows
from servegate.record import Session

DEFAULT_FILENAME = "history.sqlite"
URL_ENV = "SERVEGATE_HISTORY_URL"


def default_url(results_dir: Path) -> str:
    """``$SERVEGATE_HISTORY_URL`` when set, else an SQLite file beside the results: ``<results-dir>/history.sqlite``
    (the results directory is what CI keeps as an artifact, and what a second run on a machine finds again)."""
    return os.environ.get(URL_ENV) or str(Path(results_dir) / DEFAULT_FILENAME)


def engine_for(url: str) -> Engine:
    """An engine for ``postgresql://...`` (driven by psycopg 3), ``sqlite:///path`` or a plain file path."""
    if "://" not in url:
        path = Path(url).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise HistoryError(f"history URL {url!r} is not a database URL (postgresql://user@host/db or a file)") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise HistoryError(f"history database {safe_url(url)}: only SQLite and PostgreSQL are supported")
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": 60})
        _transactional_sqlite(engine)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


def _transactional_sqlite(engine: Engine) -> None:
    """Let SQLAlchemy own the transactions, DDL included (the pysqlite driver would otherwise commit implicitly
    around some statements): SQLAlchemy's documented recipe for SQLite's own BEGIN."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front: two writers queue, never deadlock


def safe_url(url: str) -> str:
    """The URL as it may be printed: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True) if "://" in url else url
    except ArgumentError:
        return "<unparseable URL>"


@dataclass(frozen=True)
class Point:
    """One session's value of one metric of one case: the mean over its starts."""

    session_id: int
    created: str
    mean: float
    starts: int


@dataclass(frozen=True)
class Recorded:
    session_id: int
    new: bool  # False: this very session was already in the history


class HistoryStore:
    """Open (and migrate) the history at ``url``; append sessions; read sessions and per-metric series."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)
        try:
            self.version = self.migrate()
        except SQLAlchemyError as exc:
            raise HistoryError(f"history database {safe_url(url)}: cannot open or migrate: {_cause(exc)}") from exc

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self) -> int:
        """Apply every missing migration step, each in its own transaction; return the schema version."""
        with self.engine.connect() as conn:
            version = schema.current_version(conn)
        if version > schema.SCHEMA_VERSION:
            raise HistoryError(
                f"history database {safe_url(self.url)} has schema version {version}; this servegate knows up to "
                f"{schema.SCHEMA_VERSION}: upgrade servegate to read it"
            )
        for step in range(version + 1, schema.SCHEMA_VERSION + 1):
            with self.engine.begin() as conn:
                if schema.current_version(conn) < step:  # another writer may have migrated meanwhile
                    schema.apply_step(conn, step)
        return schema.SCHEMA_VERSION

    def append(self, session: Session) -> Recorded:
        """Record one session (all of its cases, values, gate rows and nodes) in one transaction."""
        rows = session_rows(session)
        try:
            with self.engine.begin() as conn:
                existing = conn.execute(
                    select(schema.sessions.c.id).where(
                        schema.sessions.c.document_sha256 == rows.session["document_sha256"]
                    )
                ).scalar()
                if existing is not None:
                    return Recorded(int(existing), new=False)
                session_id = conn.execute(schema.sessions.insert().values(**rows.session)).inserted_primary_key[0]
                for case in rows.cases:
                    case_pk = conn.execute(
                        schema.cases.insert().values(session_id=session_id, **case.case)
                    ).inserted_primary_key[0]
                    for table, items in (
                        (schema.start_values, case.values),
                        (schema.gate_rows, case.gate),
                        (schema.nodes, case.nodes),
                    ):
                        if items:
                            conn.execute(table.insert(), [{"case_pk": case_pk, **item} for item in items])
        except SQLAlchemyError as exc:
            raise HistoryError(
                f"history database {safe_url(self.url)}: session not recorded (nothing was written): {_cause(exc)}"
            ) from exc
        return Recorded(int(session_id), new=True)

    def sessions(self) -> list[dict[str, Any]]:
        """Every session, oldest first, with its fingerprint fields."""
        s = schema.sessions
        columns = [s.c.id, s.c.created, s.c.shard_count, *(s.c[name] for name in FINGERPRINT_FIELDS)]
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(select(*columns).order_by(s.c.created, s.c.id))]

    def series(self, case_id: str | None = None, metric: str | None = None) -> dict[tuple[str, str], list[Point]]:
        """Per (case, metric), one point per session that measured it, oldest first."""
        s, c, v = schema.sessions, schema.cases, schema.start_values
        query = (
            select(s.c.id, s.c.created, c.c.case_id, v.c.metric, func.avg(v.c.value), func.count(v.c.value))
            .select_from(v.join(c, v.c.case_pk == c.c.id).join(s, c.c.session_id == s.c.id))
            .group_by(s.c.id, s.c.created, c.c.case_id, v.c.metric)
            .order_by(c.c.case_id, v.c.metric, s.c.created, s.c.id)
        )
        if case_id is not None:
            query = query.where(c.c.case_id == case_id)
        if metric is not None:
            query = query.where(v.c.metric == metric)
        out: dict[tuple[str, str], list[Point]] = {}
        with self.engine.connect() as conn:
            for sid, created, cid, name, mean, n in conn.execute(query):
                out.setdefault((cid, name), []).append(Point(int(sid), str(created), float(mean), int(n)))
        return out


def _cause(exc: SQLAlchemyError) -> str:
    """The driver's own message, first line, without SQLAlchemy's statement dump (which may carry values)."""
    orig = getattr(exc, "orig", None)
    return str(orig or exc).strip().splitlines()[0]
