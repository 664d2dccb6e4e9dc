"""Latency of ``GET /projects/{id}/suggest`` on PostgreSQL with large unlabelled pools.

For each pool size: a fresh database built by the migrations, items and scores bulk-loaded
with COPY (as the worker would store them: a score and a k-means cluster per item), then
timed requests through the full ASGI app (TestClient: routing, auth, leasing, JSON).
Prints p50/p99 and writes bench/results/suggest_latency.json.

    python -m bench.suggest_latency            # 10k, 100k, 1M items
    python -m bench.suggest_latency --quick    # 1k, 10k items
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from server.db.migrate import upgrade_to_head
from server.jobs.queue import RecordingJobQueue
from server.main import create_app
from server.settings import Settings

ADMIN = "bench-admin-token-" + secrets.token_hex(12)
RESULTS = Path(__file__).parent / "results" / "suggest_latency.json"


def _admin_connection(host: str, port: int) -> tuple[psycopg.Connection, str]:
    for user in (os.environ.get("XM_TEST_PG_USER"), "postgres", "root"):
        if not user:
            continue
        for dbname in ("test", "postgres"):
            try:
                return psycopg.connect(
                    host=host, port=port, user=user, dbname=dbname, autocommit=True
                ), user
            except psycopg.OperationalError:
                continue
    raise SystemExit("no PostgreSQL reachable")


def _bulk_load(url: str, project_id: int, n_items: int, n_clusters: int, seed: int) -> None:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            with cur.copy(
                "COPY items (project_id, sha256, width, height, image_format, byte_size, "
                "original_name, random_key, created_at) FROM STDIN"
            ) as copy:
                for i in range(n_items):
                    copy.write_row(
                        (
                            project_id,
                            hashlib.sha256(f"{seed}-{i}".encode()).hexdigest(),
                            96,
                            96,
                            "PNG",
                            1000,
                            f"{i}.png",
                            rng.random(),
                            now,
                        )
                    )
            cur.execute(
                "INSERT INTO model_versions (project_id, version, labelled_count, metrics, is_active, created_at,"
                " config_path, config_sha256, safetensors_path, safetensors_sha256, onnx_path, onnx_sha256)"
                " VALUES (%s, 1, 0, '{}', false, %s, 'x', 'x', 'x', 'x', 'x', 'x') RETURNING id",
                (project_id, now),
            )
            (model_id,) = cur.fetchone() or (None,)
            cur.execute("SELECT id FROM items WHERE project_id = %s", (project_id,))
            ids = [r[0] for r in cur.fetchall()]
            with cur.copy(
                "COPY item_scores (model_id, strategy, item_id, score, cluster) FROM STDIN"
            ) as copy:
                for item_id in ids:
                    copy.write_row(
                        (model_id, "xmodel", item_id, rng.random(), rng.randrange(n_clusters))
                    )
            cur.execute("UPDATE model_versions SET is_active = true WHERE id = %s", (model_id,))
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE items")
        conn.execute("VACUUM ANALYZE item_scores")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_size(host: str, port: int, n_items: int, requests: int, k: int, n_clusters: int) -> dict:
    admin, user = _admin_connection(host, port)
    name = f"xm_bench_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://{user}@{host}:{port}/{name}"
    try:
        upgrade_to_head(url)
        with tempfile.TemporaryDirectory() as storage:
            settings = Settings(
                database_url=url, storage_dir=Path(storage), admin_token=ADMIN, auto_migrate=False
            )
            app = create_app(settings, job_queue=RecordingJobQueue())
            with TestClient(app) as client:
                auth = {"Authorization": f"Bearer {ADMIN}"}
                project = client.post(
                    "/projects",
                    headers=auth,
                    json={
                        "name": "bench",
                        "task": {"kind": "classification", "classes": ["a", "b"]},
                    },
                ).json()
                started = time.perf_counter()
                _bulk_load(url, project["id"], n_items, n_clusters, seed=n_items)
                load_s = time.perf_counter() - started
                figures: dict[str, Any] = {
                    "items": n_items,
                    "clusters": n_clusters,
                    "k": k,
                    "requests": requests,
                    "load_seconds": round(load_s, 1),
                    "strategies": {},
                }
                for strategy in ("xmodel", "xmodel_nodiv", "random"):
                    latencies = []
                    for i in range(requests + 5):
                        t0 = time.perf_counter()
                        response = client.get(
                            f"/projects/{project['id']}/suggest",
                            headers=auth,
                            params={"k": k, "annotator": f"a{i % 20}", "strategy": strategy},
                        )
                        elapsed = (time.perf_counter() - t0) * 1000
                        assert response.status_code == 200 and len(response.json()["items"]) == k, (
                            response.text
                        )
                        if i >= 5:  # warm-up
                            latencies.append(elapsed)
                    figures["strategies"][strategy] = {
                        "p50_ms": round(statistics.median(latencies), 2),
                        "p99_ms": round(_percentile(latencies, 0.99), 2),
                        "max_ms": round(max(latencies), 2),
                    }
                    print(
                        f"{n_items:>9,} items  {strategy:<13} p50 {figures['strategies'][strategy]['p50_ms']:7.2f} ms"
                        f"  p99 {figures['strategies'][strategy]['p99_ms']:7.2f} ms",
                        flush=True,
                    )
                return figures
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small pools (1k, 10k)")
    parser.add_argument(
        "--sizes", type=int, nargs="*", help="pool sizes to run instead of the defaults"
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--clusters", type=int, default=32)
    parser.add_argument("--host", default=os.environ.get("XM_TEST_PG_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("XM_TEST_PG_PORT", "5432")))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = args.sizes or ([1_000, 10_000] if args.quick else [10_000, 100_000, 1_000_000])
    results = [
        run_size(args.host, args.port, n, args.requests, args.k, args.clusters) for n in sizes
    ]
    output = {
        "benchmark": "suggest_latency",
        "backend": "postgresql",
        "transport": "ASGI TestClient",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "created_at": datetime.now(UTC).isoformat(),
        "quick": args.quick,
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
