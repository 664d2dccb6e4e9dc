"""Engine construction. SQLite connections get WAL, a busy timeout, foreign keys, and
``BEGIN IMMEDIATE`` for every transaction so a read that turns into a write never fails
with "database is locked"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, event


def _sqlite_pragmas(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy (pysqlite's own BEGIN is DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return on_connect


def make_engine(
    database_url: str, *, sqlite_busy_timeout_ms: int = 30_000, **kwargs: Any
) -> Engine:
    """Build an engine for ``database_url`` with the per-backend settings the service needs."""
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": sqlite_busy_timeout_ms / 1000},
            **kwargs,
        )
        event.listen(engine, "connect", _sqlite_pragmas(sqlite_busy_timeout_ms))

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
    return create_engine(
        database_url,
        pool_pre_ping=True,
        **({"pool_size": 10, "max_overflow": 20} | kwargs if "poolclass" not in kwargs else kwargs),
    )
