"""SQLite write transactions of one process queue on an in-process gate: every transaction
still runs, and the gate is free again however a transaction ends."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import Engine, text

from server.db.engine import FairGate, _gate, make_engine


def test_concurrent_writers_all_commit(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}", sqlite_busy_timeout_ms=60_000)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE counter (n INTEGER)"))
        conn.execute(text("INSERT INTO counter VALUES (0)"))

    def work() -> None:
        for _ in range(20):
            with engine.begin() as conn:  # a read that turns into a write, as requests do
                n = conn.execute(text("SELECT n FROM counter")).scalar_one()
                conn.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == 320
    assert _free(_gate(str(engine.url.database)))
    engine.dispose()


def test_gate_is_free_after_rollback_error_and_close(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    gate = _gate(str(engine.url.database))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    assert _free(gate)
    with pytest.raises(Exception, match="UNIQUE"), engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1), (1)"))
    assert _free(gate)
    conn = engine.connect()
    conn.execute(text("INSERT INTO t VALUES (2)"))  # a transaction left open...
    assert not _free(gate)
    conn.close()  # ...and abandoned: the pool rolls it back
    assert _free(gate)
    raw = engine.raw_connection()
    raw.cursor().execute("SELECT 1")
    raw.invalidate()  # a connection thrown away
    assert _free(gate)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
    engine.dispose()


def _free(gate: FairGate) -> bool:
    """Whether another thread could take ``gate`` now (taken and given back if so)."""
    if gate.acquire(timeout=0):
        gate.release()
        return True
    return False


def _engine_while_another_writer_holds_the_lock(
    path, busy_timeout_ms: int, hold_s: float
) -> tuple[Engine, threading.Thread]:
    """An engine on a fresh file with table ``t``, and a running thread that holds the file's
    write lock for ``hold_s`` through a plain connection, as the worker's process would."""
    engine = make_engine(f"sqlite:///{path}", sqlite_busy_timeout_ms=busy_timeout_ms)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    started = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        started.set()
        time.sleep(hold_s)
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=hold)
    holder.start()
    started.wait()
    return engine, holder


def test_the_queue_head_waits_for_another_writer_then_writes(tmp_path) -> None:
    engine, holder = _engine_while_another_writer_holds_the_lock(tmp_path / "g.db", 10_000, 0.3)
    with engine.begin() as conn:  # polls SQLite's lock until the other writer commits
        conn.execute(text("INSERT INTO t VALUES (1)"))
        # the connection's own busy timeout is back for the statements of the transaction
        assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() == 10_000
    holder.join()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
    assert _free(_gate(str(engine.url.database)))
    engine.dispose()


def test_a_writer_that_never_gets_the_lock_fails_and_frees_the_gate(tmp_path) -> None:
    engine, holder = _engine_while_another_writer_holds_the_lock(tmp_path / "g.db", 100, 1.0)
    with pytest.raises(Exception, match="database is locked"), engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    assert _free(_gate(str(engine.url.database)))
    holder.join()
    engine.dispose()
