"""The history database's tables and the ordered migrations that build them, on SQLite and PostgreSQL alike.

One SQLAlchemy Core code path serves both engines. ``schema_version`` holds one row per applied step; a store
opened on an older database applies the missing steps in order, each in its own transaction, so a database is
always at some exact version and never half migrated. Each step's tables are frozen copies as of that version:
later steps change the database with their own DDL, never by editing an earlier step.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Connection,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    text,
)


def _v1_tables(metadata: MetaData) -> None:
    """Version 1: sessions with their fingerprint, cases, every start's value of every metric, gate rows."""
    Table(
        "sessions",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("document_sha256", String(64), nullable=False, unique=True),
        Column("created", String(32), nullable=False),
        Column("recorded", String(32), nullable=False),
        Column("servegate_version", String(64)),
        Column("git_sha", String(64)),
        Column("hardware_id", String(200)),
        Column("hardware_name", String(200)),
        Column("hardware_arch", String(64)),
        Column("device_count", Integer),
        Column("driver", String(200)),
        Column("rocm_version", String(64)),
        Column("cuda_version", String(64)),
        Column("vllm_version", String(64)),
        Column("image_digest", String(200)),
        Column("command", Text),
        Column("environment", Text, nullable=False),
    )
    Table(
        "cases",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("session_id", Integer, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("case_id", String(500), nullable=False, index=True),
        Column("suite", String(200)),
        Column("hardware", String(64)),
        Column("server_id", String(500)),
        Column("load_id", String(200)),
        Column("arm", String(200)),
        Column("server", Text),
        Column("load", Text),
    )
    Table(
        "start_values",
        metadata,
        Column("case_pk", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("metric", String(200), nullable=False),
        Column("start_index", Integer, nullable=False),
        Column("value", Float, nullable=False),
    )
    Table(
        "gate_rows",
        metadata,
        Column("case_pk", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("metric", String(200), nullable=False),
        Column("verdict", String(32), nullable=False),
        Column("ratio", Float),
        Column("ci_low", Float),
        Column("ci_high", Float),
        Column("p_value", Float),
        Column("p_adjusted", Float),
        Column("tolerance", Float),
        Column("reason", Text),
    )


def _migrate_to_1(conn: Connection) -> None:
    metadata = MetaData()
    _v1_tables(metadata)
    metadata.create_all(conn)


def _migrate_to_2(conn: Connection) -> None:
    """Version 2: fleets. A session may be merged from shards (``shard_count``), and a multi-node server's every
    node is kept (``nodes``: one row per node per start)."""
    conn.execute(text("ALTER TABLE sessions ADD COLUMN shard_count INTEGER"))
    metadata = MetaData()
    Table("cases", metadata, Column("id", Integer, primary_key=True))  # only the FK target, already present
    Table(
        "nodes",
        metadata,
        Column("case_pk", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("start_index", Integer, nullable=False),
        Column("node", String(200), nullable=False),
        Column("address", String(200)),
        Column("resources", Text),
    )
    metadata.tables["nodes"].create(conn)


# Ordered: MIGRATIONS[k] takes a database from version k to k + 1.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_migrate_to_1, _migrate_to_2)
SCHEMA_VERSION = len(MIGRATIONS)

# The current tables, for reads and writes (reflecting what the migrations built).
metadata = MetaData()
_v1_tables(metadata)
metadata.tables["sessions"].append_column(Column("shard_count", Integer))
nodes = Table(
    "nodes",
    metadata,
    Column("case_pk", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("start_index", Integer, nullable=False),
    Column("node", String(200), nullable=False),
    Column("address", String(200)),
    Column("resources", Text),
)
sessions = metadata.tables["sessions"]
cases = metadata.tables["cases"]
start_values = metadata.tables["start_values"]
gate_rows = metadata.tables["gate_rows"]

_version_metadata = MetaData()
schema_version = Table(
    "schema_version",
    _version_metadata,
    Column("version", Integer, primary_key=True),
    Column("applied", String(32), nullable=False),
)


def current_version(conn: Connection) -> int:
    """The highest applied step; 0 for an empty database."""
    if not inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(select(schema_version.c.version).order_by(schema_version.c.version.desc())).scalar() or 0)


def apply_step(conn: Connection, version: int) -> None:
    """Apply migration step ``version`` (1-based) and record it, inside the caller's transaction."""
    _version_metadata.create_all(conn, checkfirst=True)
    MIGRATIONS[version - 1](conn)
    conn.execute(schema_version.insert().values(version=version, applied=_now()))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
