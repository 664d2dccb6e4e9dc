"""Latency of ``GET /projects/{id}/suggest`` on PostgreSQL with large unlabelled pools.

For each pool size: a database built by the migrations, items and scores bulk-loaded with
COPY as the worker stores them (a score, a k-means cluster and the round-robin rank per
item), then

* one client: timed requests through the full ASGI app (TestClient: routing, auth, leasing,
  JSON), per strategy;
* ``--clients`` concurrent annotators against a live uvicorn over HTTP, each refreshing its
  batch in a loop: p50/p95/p99, requests/s, and leases handed out twice (an item granted to
  two annotators while both surely held it: the first one's answer arrived before the second
  one's request was sent and its own next request was sent after the second answer).

Prints the figures and writes bench/results/suggest_latency.json.

    python -m bench.suggest_latency                       # 10k, 100k, 1M items
    python -m bench.suggest_latency --sizes 10000 1000000 --reuse   # keep the seeded pools
    python -m bench.suggest_latency --quick               # 1k, 10k items

``--reuse`` keeps each pool in a database named ``xm_suggest_bench_<n>`` and uses it again
on the next run (seeding 1M rows takes minutes on two cores); leases are cleared first.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import os
import platform
import random
import secrets
import socket
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from fastapi.testclient import TestClient

from bench.common import pg_admin_connection, save_json
from bench.live_api import start_uvicorn
from server.db.migrate import upgrade_to_head
from server.jobs.queue import RecordingJobQueue
from server.main import create_app
from server.settings import Settings
from server.suggest.ranking import diversity_ranks

ADMIN = "bench-admin-token-" + secrets.token_hex(12)
RESULTS = Path(__file__).parent / "results" / "suggest_latency.json"


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
            scores = [rng.random() for _ in ids]
            clusters = [rng.randrange(n_clusters) for _ in ids]
            ranks = diversity_ranks(ids, scores, clusters).tolist()
            with cur.copy(
                "COPY item_scores (model_id, strategy, item_id, score, cluster, rank) FROM STDIN"
            ) as copy:
                for row in zip(ids, scores, clusters, ranks, strict=True):
                    copy.write_row((model_id, "xmodel", *row))
            cur.execute("UPDATE model_versions SET is_active = true WHERE id = %s", (model_id,))
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE items")
        conn.execute("VACUUM ANALYZE item_scores")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _sequential(
    client: TestClient, auth: dict, project_id: int, n: int, requests: int, k: int
) -> dict:
    figures = {}
    for strategy in ("xmodel", "xmodel_nodiv", "random"):
        latencies = []
        cpu = 0.0
        for i in range(requests + 5):
            if i == 5:
                cpu = time.process_time()
            t0 = time.perf_counter()
            response = client.get(
                f"/projects/{project_id}/suggest",
                headers=auth,
                params={"k": k, "annotator": f"a{i % 20}", "strategy": strategy},
            )
            elapsed = (time.perf_counter() - t0) * 1000
            assert response.status_code == 200 and len(response.json()["items"]) == k, response.text
            if i >= 5:  # warm-up
                latencies.append(elapsed)
        figures[strategy] = {
            # this process's CPU (app and client) per request: what an idle machine would
            # take, whatever else is running here
            "cpu_ms_per_request": round((time.process_time() - cpu) * 1000 / requests, 2),
            "p50_ms": round(statistics.median(latencies), 2),
            "p95_ms": round(_percentile(latencies, 0.95), 2),
            "p99_ms": round(_percentile(latencies, 0.99), 2),
            "max_ms": round(max(latencies), 2),
        }
        print(
            f"{n:>9,} items  {strategy:<13} p50 {figures[strategy]['p50_ms']:7.2f} ms"
            f"  p99 {figures[strategy]['p99_ms']:7.2f} ms",
            flush=True,
        )
    return figures


@dataclass
class Grant:
    """An item handed to ``client`` whose answer arrived at ``received``; the client's next
    request (which replaces its batch) left at ``released`` (inf: never)."""

    client: int
    received: float
    released: float = math.inf


def _double_leases(grants: dict[int, list[Grant]]) -> int:
    """Items two clients surely held at once: their [received, released] spans overlap."""
    twice = 0
    for spans in grants.values():
        spans.sort(key=lambda g: g.received)
        for a, b in zip(spans, spans[1:], strict=False):
            if a.client != b.client and b.received < a.released:
                twice += 1
                break
    return twice


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _concurrent(
    url: str, project_id: int, tokens: list[str], seconds: float, k: int, pid: int
) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    grants: dict[int, list[Grant]] = {}

    async def annotator(http: httpx.AsyncClient, who: int, until: float) -> None:
        held: list[Grant] = []
        headers = {"Authorization": f"Bearer {tokens[who]}"}
        while time.monotonic() < until:
            sent = time.perf_counter()
            for grant in held:
                grant.released = sent
            response = await http.get(
                f"/projects/{project_id}/suggest",
                headers=headers,
                params={"k": k, "annotator": f"c{who}"},
            )
            received = time.perf_counter()
            latencies.append((received - sent) * 1000)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            held = []
            if response.status_code == 200:
                for entry in response.json()["items"]:
                    grant = Grant(who, received)
                    grants.setdefault(entry["item_id"], []).append(grant)
                    held.append(grant)

    limits = httpx.Limits(max_connections=len(tokens) + 2)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        warm = time.monotonic() + 2
        await asyncio.gather(*[annotator(http, who, warm) for who in range(len(tokens))])
        latencies.clear()
        statuses.clear()
        grants.clear()
        cpu = _cpu_seconds(pid)
        started = time.perf_counter()
        until = time.monotonic() + seconds
        await asyncio.gather(*[annotator(http, who, until) for who in range(len(tokens))])
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds(pid) - cpu
    return {
        "clients": len(tokens),
        "seconds": seconds,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "server_cpu_ms_per_request": round(cpu * 1000 / max(1, len(latencies)), 2),
        "load_average": os.getloadavg(),
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(_percentile(latencies, 0.95), 2),
        "p99_ms": round(_percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
        "statuses": {str(code): n for code, n in sorted(statuses.items())},
        "items_granted": sum(len(v) for v in grants.values()),
        "double_leases": _double_leases(grants),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prepare(admin: psycopg.Connection, name: str, reuse: bool) -> bool:
    """Create database ``name`` (or keep it with ``reuse``); True when it must be seeded."""
    exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if exists and reuse:
        return False
    if exists:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    return True


def run_size(host: str, port: int, n_items: int, args: argparse.Namespace) -> dict:
    admin, user = pg_admin_connection(host, port)
    name = f"xm_suggest_bench_{n_items}" if args.reuse else f"xm_bench_{secrets.token_hex(4)}"
    seed = _prepare(admin, name, args.reuse)
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
                load_s = None
                if seed:
                    project_id = client.post(
                        "/projects",
                        headers=auth,
                        json={
                            "name": "bench",
                            "task": {"kind": "classification", "classes": ["a", "b"]},
                        },
                    ).json()["id"]
                    started = time.perf_counter()
                    _bulk_load(url, project_id, n_items, args.clusters, seed=n_items)
                    load_s = round(time.perf_counter() - started, 1)
                with psycopg.connect(url, autocommit=True) as conn:
                    if not seed:
                        (project_id,) = conn.execute(
                            "SELECT id FROM projects WHERE name = 'bench'"
                        ).fetchone() or (None,)
                    conn.execute("DELETE FROM item_leases")
                    (held,) = conn.execute(
                        "SELECT count(*) FROM items WHERE project_id = %s AND labelled_at IS NULL",
                        (project_id,),
                    ).fetchone() or (0,)
                assert held == n_items, f"{name} holds {held} unlabelled items, not {n_items}"
                figures: dict[str, Any] = {
                    "items": n_items,
                    "clusters": args.clusters,
                    "k": args.k,
                    "requests": args.requests,
                    "load_seconds": load_s,
                    "reused_pool": not seed,
                    "strategies": _sequential(
                        client, auth, project_id, n_items, args.requests, args.k
                    ),
                }
                tokens = [
                    client.post(
                        f"/projects/{project_id}/tokens",
                        headers=auth,
                        json={"role": "annotator", "name": f"c{who}"},
                    ).json()["token"]
                    for who in range(args.clients)
                ]
        if args.clients:
            with tempfile.TemporaryDirectory() as root:
                env = {
                    **os.environ,
                    "XM_DATABASE_URL": url,
                    "XM_STORAGE_DIR": str(Path(root) / "storage"),
                    "XM_BROKER_URL": f"sqla+sqlite:///{Path(root) / 'broker.sqlite'}",
                    "XM_ADMIN_TOKEN": ADMIN,
                    "XM_AUTO_MIGRATE": "false",
                }
                process, base = start_uvicorn(_free_port(), env, Path(root) / "uvicorn.log")
                try:
                    load = asyncio.run(
                        _concurrent(
                            base, project_id, tokens, args.concurrent_seconds, args.k, process.pid
                        )
                    )
                finally:
                    process.terminate()
                    process.wait(30)
            figures["concurrent"] = load
            print(
                f"{n_items:>9,} items  {args.clients} clients    p50 {load['p50_ms']:7.2f} ms"
                f"  p99 {load['p99_ms']:7.2f} ms  {load['requests_per_s']} req/s"
                f"  ({load['server_cpu_ms_per_request']} ms API CPU each)"
                f"  double leases {load['double_leases']}",
                flush=True,
            )
        return figures
    finally:
        if not args.reuse:
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
    parser.add_argument("--clients", type=int, default=16, help="concurrent annotators (0: none)")
    parser.add_argument("--concurrent-seconds", type=float, default=20.0)
    parser.add_argument("--reuse", action="store_true", help="keep and reuse the seeded pools")
    parser.add_argument("--host", default=os.environ.get("XM_TEST_PG_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("XM_TEST_PG_PORT", "5432")))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = args.sizes or ([1_000, 10_000] if args.quick else [10_000, 100_000, 1_000_000])
    results = [run_size(args.host, args.port, n, args) for n in sizes]
    output = {
        "benchmark": "suggest_latency",
        "backend": "postgresql",
        "transport": "one client: ASGI TestClient; concurrent clients: HTTP to a live uvicorn",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "created_at": datetime.now(UTC).isoformat(),
        "quick": args.quick,
        "load_average_at_end": os.getloadavg(),
        "results": results,
    }
    save_json(args.output, output)


if __name__ == "__main__":
    main()
