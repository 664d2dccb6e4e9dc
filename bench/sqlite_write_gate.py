"""Many threads writing one SQLite file: SQLite's own busy wait against the in-process gate.

``--threads`` threads each loop over a short write transaction (a read, a little Python work,
an insert: the shape of a request) for ``--seconds``, first on an engine with only SQLite's
locking (``BEGIN IMMEDIATE`` and its busy timeout, the pool sized the same), then on the
service's engine (``server.db.engine.make_engine``: the same, plus the fair in-process gate).
Prints and saves transaction latency p50/p99/max and throughput to
``bench/results/sqlite_write_gate.json``. SQLite's busy handler polls the lock with sleeps
that grow to 100 ms, so under contention some waiters keep losing: the max shows it.

    python -m bench.sqlite_write_gate [--threads 32] [--seconds 15]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text

from bench.common import save_json
from server.db.engine import _sqlite_pragmas, make_engine

RESULTS = Path(__file__).parent / "results" / "sqlite_write_gate.json"


def _plain_engine(url: str) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=8,
        max_overflow=56,
    )
    event.listen(engine, "connect", _sqlite_pragmas(30_000))

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _run(engine: Engine, threads: int, seconds: float) -> dict:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)"))
        conn.execute(text("INSERT INTO t (v) VALUES (0)"))
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    def work() -> None:
        while time.monotonic() < stop:
            started = time.perf_counter()
            with engine.begin() as conn:
                conn.execute(text("SELECT v FROM t WHERE id = 1")).scalar()
                value = sum(range(20_000))
                conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
            latencies.append((time.perf_counter() - started) * 1000)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    engine.dispose()
    latencies.sort()
    return {
        "transactions": len(latencies),
        "per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(latencies[len(latencies) // 2], 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)], 1),
        "max_ms": round(latencies[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = {}
    for name, build in (("sqlite_busy_wait", _plain_engine), ("gate", make_engine)):
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = _run(build(f"sqlite:///{tmp}/w.db"), args.threads, args.seconds)
        figures = results[name]
        print(
            f"{name:<17} {figures['per_s']:8.1f} tx/s  p50 {figures['p50_ms']:7.1f} ms"
            f"  p99 {figures['p99_ms']:7.1f} ms  max {figures['max_ms']:8.1f} ms",
            flush=True,
        )
    output = {
        "benchmark": "sqlite_write_gate",
        "threads": args.threads,
        "seconds": args.seconds,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average": os.getloadavg(),
        "created_at": datetime.now(UTC).isoformat(),
        "results": results,
    }
    save_json(args.output, output)


if __name__ == "__main__":
    main()
