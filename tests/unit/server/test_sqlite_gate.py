"""SQLite write transactions of one process queue on an in-process gate: every transaction
still runs, and the gate is free again however a transaction ends."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

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
