"""Engine construction. SQLite connections get WAL, a busy timeout, foreign keys, and
``BEGIN IMMEDIATE`` for every transaction so a read that turns into a write never fails
with "database is locked".

SQLite lets one writer in at a time, and a connection that finds the lock taken polls for it
with sleeps that grow to 100 ms: with dozens of request threads some keep losing and wait for
seconds while the lock sits free between sleeps. So the threads of one process first queue on
an in-process gate per database file, handed on in arrival order the moment the holder's
transaction ends, and only the head of that queue meets other processes (the worker) at
SQLite's own lock. There it polls every ``LOCK_POLL_MS`` instead of SQLite's growing sleeps:
the queue behind it waits for as long as it does, so a 100 ms sleep taken just before the
worker commits would cost every queued request those 100 ms."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url


class FairGate:
    """A lock handed to its waiters in arrival order (``threading.Lock`` is not fair: a thread
    that releases and asks again at once can keep it from the others for seconds)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Event] = deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(timeout):
            return True
        with self._mutex:
            if turn.is_set():  # handed over just as the wait ran out
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        with self._mutex:
            if not self._held:  # as threading.Lock: releasing a free gate is a bug
                raise RuntimeError("release of a gate that is not held")
            if self._waiters:
                self._waiters.popleft().set()  # ownership passes on: still held
            else:
                self._held = False


_GATES: dict[str, FairGate] = {}
_GATES_LOCK = threading.Lock()


def _gate(database: str) -> FairGate:
    with _GATES_LOCK:
        return _GATES.setdefault(database, FairGate())


LOCK_POLL_MS = 2  # the head of a file's queue asks for SQLite's write lock this often


class _GatedConnection(sqlite3.Connection):
    """A pysqlite connection that holds its file's gate from ``BEGIN IMMEDIATE`` until the
    transaction ends, however it ends (commit, rollback, close)."""

    gate: FairGate | None = None
    holding = False

    def enter(self, timeout_s: float) -> None:
        assert self.gate is not None
        if not self.gate.acquire(timeout=timeout_s):
            raise sqlite3.OperationalError("database is locked (waited for the write gate)")
        self.holding = True

    def begin_immediate(self, timeout_s: float, busy_timeout_ms: int) -> None:
        """``BEGIN IMMEDIATE``, polling SQLite's write lock every ``LOCK_POLL_MS`` until
        ``timeout_s``; the connection's busy timeout is back to ``busy_timeout_ms`` after."""
        deadline = time.monotonic() + timeout_s
        self.execute(f"PRAGMA busy_timeout={LOCK_POLL_MS}")
        try:
            while True:
                try:
                    self.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() >= deadline:
                        raise
        finally:
            self.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")

    def leave(self) -> None:
        if self.holding and self.gate is not None:
            self.holding = False
            self.gate.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.leave()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.leave()


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
        in_memory = make_url(database_url).database in (None, "", ":memory:")
        engine = create_engine(
            database_url,
            connect_args={
                "check_same_thread": False,
                "timeout": sqlite_busy_timeout_ms / 1000,
                **({} if in_memory else {"factory": _GatedConnection}),
            },
            # A connection for every request thread (the server runs up to 40): a thread that
            # must wait for a pooled connection can lose it to newcomers again and again.
            **(
                {"pool_size": 8, "max_overflow": 56} | kwargs
                if "poolclass" not in kwargs and not in_memory
                else kwargs
            ),
        )
        event.listen(engine, "connect", _sqlite_pragmas(sqlite_busy_timeout_ms))
        gate = _gate(engine.url.database or ":memory:")

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            dbapi = conn.connection.dbapi_connection
            if isinstance(dbapi, _GatedConnection):
                dbapi.gate = gate
                dbapi.enter(sqlite_busy_timeout_ms / 1000)
                try:
                    dbapi.begin_immediate(sqlite_busy_timeout_ms / 1000, sqlite_busy_timeout_ms)
                except BaseException:
                    dbapi.leave()
                    raise
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
    return create_engine(
        database_url,
        pool_pre_ping=True,
        **({"pool_size": 10, "max_overflow": 20} | kwargs if "poolclass" not in kwargs else kwargs),
    )
