"""Label export speed and memory: ``GET /projects/{id}/export`` on PostgreSQL with many
labelled items, through the Python client, against a real uvicorn process.

    python -m bench.label_export_speed                     # 1,000,000 labelled items
    python -m bench.label_export_speed --rows 200000 --formats jsonl

The rows (items with a keypoint label, and one label revision each) are inserted directly in
SQL (``generate_series``), which takes seconds where a million uploads would take hours. For
each format the export is streamed to a counting sink; the API process's resident memory
(``VmRSS``) is sampled every 50 ms. Figures: ``rows_per_s`` (labelled rows / wall time of the
whole download), ``rss_growth_mb`` (peak during the export minus the value before it), and
``rows_per_api_cpu_s`` (rows / CPU seconds the API process used: the rate a core of its own
would give, which tells a slow export from a busy machine).
The bar: at least 20,000 rows/s and under 50 MB of growth on 1,000,000 rows.
Prints a table and writes bench/results/label_export_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.common import pg_admin_connection, save_result
from bench.live_api import start_uvicorn
from server.db.migrate import upgrade_to_head
from xmodel_client import XModelClient

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "label_export_speed.json"
ADMIN = "bench-admin-token-" + secrets.token_hex(12)
POINTS = ["left", "right", "top", "bottom"]


def _load(url: str, rows: int) -> int:
    """A keypoints project with ``rows`` labelled items and a revision for each; its id."""
    task = {"kind": "keypoints", "points": POINTS, "flip_pairs": [["left", "right"]]}
    with psycopg.connect(url) as conn:
        created = conn.execute(
            "INSERT INTO projects (name, task, image_size, backbone, training, created_at) "
            "VALUES ('export-bench', %s, 48, 'small_cnn', '{}', now()) RETURNING id",
            (json.dumps(task),),
        ).fetchone()
        assert created is not None
        project_id = created[0]
        conn.execute(
            "INSERT INTO items (project_id, sha256, width, height, image_format, byte_size, original_name,"
            " random_key, created_at, label, labelled_at) "
            "SELECT %s, md5(g::text) || md5((g + 1)::text), 48, 48, 'PNG', 2000, 'img' || g || '.png',"
            " random(), now(), json_build_object('points', json_build_array("
            "  json_build_array(10 + g %% 7, 20.5, 2), json_build_array(38.25, 21, 2),"
            "  json_build_array(24, 9 + g %% 5, 1), json_build_array(0, 0, 0))), now() "
            "FROM generate_series(1, %s) AS g",
            (project_id, rows),
        )
        conn.execute(
            "INSERT INTO label_revisions (item_id, value, created_at) "
            "SELECT id, label, now() FROM items WHERE project_id = %s",
            (project_id,),
        )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE items")
        conn.execute("VACUUM ANALYZE label_revisions")
    return int(project_id)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class _Sink:
    """A binary handle that counts bytes and lines and keeps nothing."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lines = 0

    def write(self, data: bytes) -> int:
        self.bytes += len(data)
        self.lines += data.count(b"\n")
        return len(data)


def _serve(url: str, storage: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "XM_DATABASE_URL": url,
        "XM_ADMIN_TOKEN": ADMIN,
        "XM_STORAGE_DIR": str(storage),
        "XM_AUTO_MIGRATE": "false",
        "XM_BROKER_URL": f"sqla+sqlite:///{storage / 'broker.sqlite'}",
    }
    return start_uvicorn(port, env)


def measure(client: XModelClient, pid: int, project_id: int, fmt: str, rows: int) -> dict[str, Any]:
    before = _rss_mb(pid)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, _rss_mb(pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    sink = _Sink()
    cpu_before = _cpu_seconds(pid)
    client_cpu_before = time.process_time()
    started = time.perf_counter()
    try:
        client.export_labels(project_id, fmt, sink)  # type: ignore[arg-type]
    finally:
        elapsed = time.perf_counter() - started
        api_cpu = _cpu_seconds(pid) - cpu_before
        client_cpu = time.process_time() - client_cpu_before
        done.set()
        sampler.join()
    if fmt == "jsonl" and sink.lines != rows:
        raise SystemExit(f"jsonl export has {sink.lines} lines, expected {rows}")
    return {
        "seconds": round(elapsed, 2),
        "rows_per_s": round(rows / elapsed),
        "bytes": sink.bytes,
        "api_cpu_s": round(api_cpu, 2),
        "client_cpu_s": round(client_cpu, 2),
        "rows_per_api_cpu_s": round(rows / max(api_cpu, 1e-9)),
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_growth_mb": round(peak - before, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--formats", nargs="+", default=["jsonl", "csv", "coco"], choices=["jsonl", "csv", "coco"]
    )
    parser.add_argument("--host", default=os.environ.get("XM_TEST_PG_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("XM_TEST_PG_PORT", "5432")))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    admin, user = pg_admin_connection(args.host, args.port)
    name = f"xm_bench_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://{user}@{args.host}:{args.port}/{name}"
    child = None
    try:
        upgrade_to_head(url)
        started = time.perf_counter()
        project_id = _load(url, args.rows)
        load_s = time.perf_counter() - started
        print(f"inserted {args.rows:,} labelled items in {load_s:.1f} s", flush=True)
        with tempfile.TemporaryDirectory() as storage:
            child, base = _serve(url, Path(storage))
            with XModelClient(base, ADMIN) as client:
                client.export_labels(project_id, "jsonl", _Sink())  # warm-up: imports, pools, plans
                figures: dict[str, Any] = {}
                for fmt in args.formats:
                    figures[fmt] = measure(client, child.pid, project_id, fmt, args.rows)
                    f = figures[fmt]
                    print(
                        f"{fmt:<6} {args.rows:>9,} rows  {f['seconds']:7.2f} s  {f['rows_per_s']:>8,} rows/s  "
                        f"{f['bytes'] / 1e6:8.1f} MB  CPU API {f['api_cpu_s']:.1f} s client {f['client_cpu_s']:.1f} s  RSS {f['rss_before_mb']:.0f} -> {f['rss_peak_mb']:.0f} MB "
                        f"(+{f['rss_growth_mb']:.1f})",
                        flush=True,
                    )
    finally:
        if child is not None:
            child.send_signal(signal.SIGTERM)
            child.wait(30)
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    document = {
        "benchmark": "label_export_speed",
        "rows": args.rows,
        "load_seconds": round(load_s, 1),
        "formats": figures,
        "bar": {"rows_per_s": 20_000, "rss_growth_mb": 50},
        "meets_bar": all(
            f["rows_per_s"] >= 20_000 and f["rss_growth_mb"] < 50 for f in figures.values()
        ),
    }
    save_result(args.out, document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
