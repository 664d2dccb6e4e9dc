"""Many annotators at once against the live service, while a large import and a training
job run (and, on PostgreSQL, the database restarts).

The service is ``scripts/run_embedded.py`` (uvicorn and one Celery worker process) on the
backend's database. Each of ``--annotators`` asyncio clients (one project token each) loops:
``GET /suggest`` (k items, leased to it), then ``PUT /items/{id}/label`` for each, pausing
before each label as a person would: ``--think-ms`` on average, each pause drawn uniformly
from half to one and a half times it, and each annotator starting at a random moment of the
first pause (0: no pause, everyone at once, each asking again as soon as it is answered).
People do not label in lockstep; a fixed pause and a common start would send all 32 requests
in the same millisecond, every second, and measure that burst instead.
Meanwhile another client imports a zip of ``--import-images`` tiny images into the same
project, the owner starts a training job after ``--train-after`` seconds (its scoring writes
a score for every item while the annotators work), and on PostgreSQL the cluster is
restarted with ``pg_ctlcluster`` ``--pg-restart-at`` seconds in. On SQLite (one write lock
per file) and on PostgreSQL it prints and saves:

* ``/suggest`` latency p50 / p95 / p99 / max, and label latency;
* answers with status >= 500, and "database is locked" lines in the server log;
* items leased to two annotators at once (a lease handed out twice), items labelled by two
  annotators, and confirmed labels the database does not hold at the end (lost);
* the training job's end state; for the restart, how long the database was down, the answers
  that failed meanwhile, and how long after it was back ``/suggest`` answered 200 again
  (the service reconnects by itself: no process is restarted).

    python -m bench.load_annotators                     # 32 annotators, 120 s per backend
    python -m bench.load_annotators --seconds 30 --backends sqlite
    python -m bench.load_annotators --pg-port 5440 --pg-cluster "15 xmload"   # a private cluster

Results: ``bench/results/load_annotators.json`` (``--output`` to write elsewhere). The
restart stops every connection to that cluster: point ``--pg-port``/``--pg-cluster`` at one
nobody else uses while it runs (``--pg-restart-at 0`` skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import platform
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from bench.common import pg_admin_connection
from bench.live_api import wait_healthy
from xmodel_contracts.launch import embedded_settings, free_port

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "load_annotators.json"
ADMIN = "bench-admin-token-" + secrets.token_hex(12)
CLASSES = ["cat", "dog"]


@dataclass
class Tally:
    suggest_ms: list[float] = field(default_factory=list)
    label_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    labelled_by: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    confirmed: set[int] = field(default_factory=set)
    double_leases: int = 0
    import_status: int | None = None
    import_seconds: float | None = None
    failures: list[tuple[float, float, int]] = field(default_factory=list)  # sent, answered, status
    suggest_ok: list[float] = field(default_factory=list)  # monotonic time of each 200
    job: dict[str, Any] = field(default_factory=dict)
    restart: dict[str, float] = field(default_factory=dict)
    suggest_sent: list[float] = field(default_factory=list)  # monotonic, beside suggest_ms
    windows: dict[str, list[float]] = field(default_factory=dict)  # import / job: [start, end]

    def answer(self, status: int, sent: float | None = None) -> None:
        """Count one answer (0: no answer, a transport error) to a request sent at ``sent``
        (monotonic); a failure keeps both ends, so one in flight when an outage began or
        ended belongs to the outage."""
        self.statuses[status] += 1
        if status >= 500 or status == 0:
            now = time.monotonic()
            self.failures.append((sent if sent is not None else now, now, status))


def _png(n: int, size: int = 12) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (n % 256, (n // 256) % 256, (n // 65536) % 256)).save(
        buffer, format="PNG"
    )
    return buffer.getvalue()


def _zip(first: int, count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for n in range(first, first + count):
            archive.writestr(f"import/{n}.png", _png(n))
    return buffer.getvalue()


def _postgres_database(host: str, port: int) -> tuple[str, Any]:
    try:
        conn, user = pg_admin_connection(host, port)
    except RuntimeError as error:
        raise SystemExit(str(error)) from error
    name = f"xm_load_{secrets.token_hex(4)}"
    conn.execute(f'CREATE DATABASE "{name}"')
    conn.close()  # (the restart would end it: the drop connects again)
    return f"postgresql://{user}@{host}:{port}/{name}", (user, name)


def _start_server(database_url: str, root: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = root / "uvicorn.log"
    env = {
        **os.environ,
        **embedded_settings(root, database_url),
        "XM_ADMIN_TOKEN": ADMIN,
        "XM_AUTO_MIGRATE": "true",
        "XM_WORKER_PRELOAD": "false",
    }
    process = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "run_embedded.py"), "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, process, log, timeout=180)
    return process, url, log


TRANSPORT_ERRORS: dict[str, int] = defaultdict(int)  # no answer at all, by the error's class


async def _call(
    http: httpx.AsyncClient, method: str, path: str, **kwargs: Any
) -> httpx.Response | None:
    """The answer, or None when none came."""
    try:
        return await http.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        TRANSPORT_ERRORS[type(exc).__name__] += 1
        return None


async def _timed_call(
    http: httpx.AsyncClient,
    tally: Tally,
    timings_ms: list[float],
    method: str,
    path: str,
    sent_log: list[float] | None = None,
    **kwargs: Any,
) -> httpx.Response | None:
    """``_call``, its latency added to ``timings_ms`` (and its monotonic send time to
    ``sent_log``) and its answer counted in ``tally``."""
    started, sent = time.perf_counter(), time.monotonic()
    response = await _call(http, method, path, **kwargs)
    timings_ms.append((time.perf_counter() - started) * 1000)
    if sent_log is not None:
        sent_log.append(sent)
    tally.answer(response.status_code if response is not None else 0, sent)
    return response


async def _annotator(
    http: httpx.AsyncClient,
    project_id: int,
    headers: dict[str, str],
    who: int,
    args: argparse.Namespace,
    until: float,
    tally: Tally,
    holders: dict[int, int],
) -> None:
    mine: list[int] = []
    pauses = random.Random(who)  # seeded: the same schedule for every backend and run

    def think() -> float:
        return args.think_ms / 1000 * pauses.uniform(0.5, 1.5)

    if args.think_ms:
        await asyncio.sleep(pauses.uniform(0, args.think_ms / 1000))
    while time.monotonic() < until:
        # This request replaces the batch: what is left of the last one (a label that failed,
        # or the load ending) is released by it and may go to someone else from now on.
        for item_id in mine:
            if holders.get(item_id) == who:
                holders.pop(item_id)
        response = await _timed_call(
            http,
            tally,
            tally.suggest_ms,
            "GET",
            f"/projects/{project_id}/suggest",
            sent_log=tally.suggest_sent,
            headers=headers,
            params={"k": args.k, "annotator": f"a{who}"},
        )
        if response is None or response.status_code != 200:
            await asyncio.sleep(0.05)
            continue
        tally.suggest_ok.append(time.monotonic())
        items = mine = [entry["item_id"] for entry in response.json()["items"]]
        if not items:
            return  # the pool is labelled
        for item_id in items:
            holder = holders.get(item_id)
            if holder is not None and holder != who:
                tally.double_leases += 1
            holders[item_id] = who
        for item_id in items:
            if args.think_ms:
                await asyncio.sleep(think())
            if time.monotonic() >= until:
                return
            answer = await _timed_call(
                http,
                tally,
                tally.label_ms,
                "PUT",
                f"/items/{item_id}/label",
                headers=headers,
                json={"class": CLASSES[item_id % 2]},
            )
            if answer is not None and answer.status_code == 200:
                tally.confirmed.add(item_id)
                tally.labelled_by[item_id].add(who)
                holders.pop(item_id, None)


async def _train(
    http: httpx.AsyncClient,
    project_id: int,
    owner: dict[str, str],
    args: argparse.Namespace,
    until: float,
    tally: Tally,
) -> None:
    """Start a training job once some labels exist; follow it until it ends (or a while
    after the load, ``--train-wait``)."""
    await asyncio.sleep(args.train_after)
    settings = {"steps": args.train_steps, "batch_size": 16, "unlabelled_batch_size": 16}
    response = await _call(
        http, "POST", f"/projects/{project_id}/jobs", headers=owner, json={"training": settings}
    )
    tally.job["create_status"] = response.status_code if response is not None else 0
    if response is None or response.status_code not in (200, 201):
        tally.job["error"] = response.text[:300] if response is not None else "no answer"
        return
    job_id = response.json()["id"]
    started = time.monotonic()
    tally.windows["job"] = [started, math.inf]
    while time.monotonic() < until + args.train_wait:
        await asyncio.sleep(1)
        answer = await _call(http, "GET", f"/jobs/{job_id}", headers=owner)
        if answer is None or answer.status_code != 200:
            continue
        job = answer.json()
        tally.job.update(status=job["status"], phase=job.get("phase"), error=job.get("error"))
        if job["status"] in ("succeeded", "failed", "cancelled"):
            tally.job["seconds"] = round(time.monotonic() - started, 1)
            tally.job["finished_during_load"] = time.monotonic() <= until
            tally.windows["job"][1] = time.monotonic()
            return


async def _restart_postgres(args: argparse.Namespace, tally: Tally) -> None:
    await asyncio.sleep(args.pg_restart_at)
    version, cluster = args.pg_cluster.split()
    tally.restart["started"] = time.monotonic()
    await asyncio.to_thread(
        subprocess.run, ["pg_ctlcluster", version, cluster, "restart"], check=True
    )
    tally.restart["finished"] = time.monotonic()


async def _import(
    http: httpx.AsyncClient, project_id: int, owner: dict[str, str], archive: bytes, tally: Tally
) -> None:
    started = time.perf_counter()
    tally.windows["import"] = [time.monotonic(), math.inf]
    response = await http.post(
        f"/projects/{project_id}/items/import",
        headers=owner,
        files={"archive": ("big.zip", archive, "application/zip")},
        timeout=600,
    )
    tally.import_seconds = time.perf_counter() - started
    tally.windows["import"][1] = time.monotonic()
    tally.import_status = response.status_code
    tally.answer(response.status_code)


async def _run(url: str, args: argparse.Namespace, restart: bool) -> tuple[Tally, int]:
    tally = Tally()
    admin = {"Authorization": f"Bearer {ADMIN}"}
    limits = httpx.Limits(max_connections=args.annotators + 4)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        created = (
            await http.post(
                "/projects",
                headers=admin,
                json={
                    "name": "load",
                    "task": {"kind": "classification", "classes": CLASSES},
                    "image_size": 16,
                    "backbone": "small_cnn",
                },
            )
        ).json()
        project_id, owner = created["id"], {"Authorization": f"Bearer {created['owner_token']}"}
        for first in range(0, args.pool, 200):  # the pool the annotators label
            files = [
                ("files", (f"{n}.png", _png(n), "image/png"))
                for n in range(first, min(first + 200, args.pool))
            ]
            response = await http.post(f"/projects/{project_id}/items", headers=owner, files=files)
            response.raise_for_status()
        tokens = []
        for who in range(args.annotators):
            token = (
                await http.post(
                    f"/projects/{project_id}/tokens",
                    headers=owner,
                    json={"role": "annotator", "name": f"a{who}"},
                )
            ).json()["token"]
            tokens.append({"Authorization": f"Bearer {token}"})
        archive = _zip(10**6, args.import_images)
        until = time.monotonic() + args.seconds
        holders: dict[int, int] = {}
        side: list[Any] = [_import(http, project_id, owner, archive, tally)]
        if args.train_steps:
            side.append(_train(http, project_id, owner, args, until, tally))
        if restart:
            side.append(_restart_postgres(args, tally))
        await asyncio.gather(
            *side,
            *[
                _annotator(http, project_id, tokens[who], who, args, until, tally, holders)
                for who in range(args.annotators)
            ],
        )
    return tally, project_id


def _lost_labels(url: str, project_id: int, confirmed: set[int]) -> int:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    held, cursor = set(), None
    with httpx.Client(base_url=url, timeout=60) as http:
        while True:
            params: dict[str, Any] = {"status": "labelled", "limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = http.get(f"/projects/{project_id}/items", headers=admin, params=params).json()
            held |= {item["id"] for item in page["items"]}
            cursor = page["next_cursor"]
            if not cursor:
                break
    return len(confirmed - held)


def _api_pid(launcher: int) -> int:
    """The uvicorn child of the embedded launcher (Linux /proc)."""
    children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    for pid in children:
        if b"uvicorn" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return int(pid)
    raise RuntimeError("the launcher runs no uvicorn child")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _restart_figures(tally: Tally) -> dict[str, Any]:
    """Outage length, the failed answers from the restart until the service answered again,
    and how long after the database was back ``/suggest`` first answered 200."""
    if "finished" not in tally.restart:
        return {}
    started, finished = tally.restart["started"], tally.restart["finished"]
    recovered = next((t for t in sorted(tally.suggest_ok) if t >= finished), None)
    end = recovered if recovered is not None else math.inf
    return {
        "restart_seconds": round(finished - started, 2),
        "recovered_after_s": round(recovered - finished, 2) if recovered is not None else None,
        "failed_answers_during": sum(
            1 for sent, answered, _ in tally.failures if sent <= end and answered >= started
        ),
        "window": (started, end),
    }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def _by_window(tally: Tally) -> dict[str, dict[str, Any]]:
    """``/suggest`` p50 / p99 and count for requests sent during the import, during the
    training job but not the import, and neither."""

    def inside(name: str, sent: float) -> bool:
        start, end = tally.windows.get(name, (math.inf, math.inf))
        return start <= sent <= end

    groups: dict[str, list[float]] = {"import": [], "job": [], "neither": []}
    for sent, ms in zip(tally.suggest_sent, tally.suggest_ms, strict=True):
        key = "import" if inside("import", sent) else "job" if inside("job", sent) else "neither"
        groups[key].append(ms)
    return {
        name: {"requests": len(v), "p50_ms": _percentile(v, 0.5), "p99_ms": _percentile(v, 0.99)}
        for name, v in groups.items()
    }


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    TRANSPORT_ERRORS.clear()
    with tempfile.TemporaryDirectory(prefix="xm-load-") as tmp:
        root = Path(tmp)
        cleanup = None
        database_url = f"sqlite:///{root / 'xmodel.db'}"
        if backend == "postgresql":
            database_url, cleanup = _postgres_database(args.pg_host, args.pg_port)
        process, url, log = _start_server(database_url, root)
        try:
            restart = backend == "postgresql" and args.pg_restart_at > 0
            api = _api_pid(process.pid)
            cpu = _cpu_seconds(api)
            tally, project_id = asyncio.run(_run(url, args, restart))
            api_cpu_s = _cpu_seconds(api) - cpu
            lost = _lost_labels(url, project_id, tally.confirmed)
            server_log = log.read_text(errors="replace")
        finally:
            process.terminate()
            process.wait(30)
            if cleanup is not None:
                import psycopg

                user, name = cleanup
                with psycopg.connect(
                    host=args.pg_host, port=args.pg_port, user=user, dbname="test", autocommit=True
                ) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    restart_figures = _restart_figures(tally)
    window = restart_figures.get("window")
    outside = [
        f for f in tally.failures if window is None or not (f[0] <= window[1] and f[1] >= window[0])
    ]
    return {
        "backend": backend,
        "annotators": args.annotators,
        "think_ms": args.think_ms,
        "seconds": args.seconds,
        "k": args.k,
        "pool": args.pool,
        "import_images": args.import_images,
        "import_status": tally.import_status,
        "import_seconds": round(tally.import_seconds or 0, 1),
        "suggest_requests": len(tally.suggest_ms),
        "suggest_p50_ms": _percentile(tally.suggest_ms, 0.50),
        "suggest_p95_ms": _percentile(tally.suggest_ms, 0.95),
        "suggest_p99_ms": _percentile(tally.suggest_ms, 0.99),
        "suggest_max_ms": round(max(tally.suggest_ms), 1) if tally.suggest_ms else None,
        # where the tail is: requests sent while the import ran, while the job ran (and not the
        # import), and the rest
        "suggest_by_window": _by_window(tally),
        "suggest_mean_ms": round(statistics.fmean(tally.suggest_ms), 1)
        if tally.suggest_ms
        else None,
        "label_requests": len(tally.label_ms),
        "label_p50_ms": _percentile(tally.label_ms, 0.50),
        "label_p99_ms": _percentile(tally.label_ms, 0.99),
        # the API process's CPU per answered request (import included): what the requests
        # cost, apart from how much of the machine the API got
        "api_cpu_ms_per_request": round(
            api_cpu_s * 1000 / max(1, len(tally.suggest_ms) + len(tally.label_ms)), 2
        ),
        "load_average_at_end": os.getloadavg(),
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "server_errors": sum(v for k, v in tally.statuses.items() if k >= 500),
        "server_errors_outside_restart": len(outside),
        "transport_errors": dict(TRANSPORT_ERRORS),
        "training_job": tally.job,
        "pg_restart": {k: v for k, v in restart_figures.items() if k != "window"},
        "database_locked_lines": server_log.count("database is locked"),
        "server_error_lines": sorted(
            {
                line.strip()[:300]
                for line in server_log.splitlines()
                if "Error:" in line or "Exception:" in line
            }
        )[:10],
        "double_leases": tally.double_leases,
        "labelled_twice": sum(1 for who in tally.labelled_by.values() if len(who) > 1),
        "confirmed_labels": len(tally.confirmed),
        "lost_labels": lost,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--annotators", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=120.0, help="load duration per backend")
    parser.add_argument("--k", type=int, default=5, help="items per /suggest")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="an annotator's mean pause before each label (each drawn from 0.5-1.5 times it)",
    )
    parser.add_argument(
        "--train-steps", type=int, default=300, help="steps of the concurrent job (0: no job)"
    )
    parser.add_argument("--train-after", type=float, default=5.0, help="seconds into the load")
    parser.add_argument(
        "--train-wait", type=float, default=120.0, help="how long to follow the job after the load"
    )
    parser.add_argument(
        "--pg-restart-at", type=float, default=20.0, help="seconds into the load (0: none)"
    )
    parser.add_argument(
        "--pg-cluster", default="15 main", help="'<version> <name>' for pg_ctlcluster"
    )
    parser.add_argument("--pool", type=int, default=4000, help="unlabelled items before the load")
    parser.add_argument(
        "--import-images", type=int, default=3000, help="images in the concurrent zip import"
    )
    parser.add_argument(
        "--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument("--pg-host", default=os.environ.get("XM_TEST_PG_HOST", "127.0.0.1"))
    parser.add_argument(
        "--pg-port", type=int, default=int(os.environ.get("XM_TEST_PG_PORT", "5432"))
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    results = []
    for backend in args.backends:
        result = run_backend(backend, args)
        results.append(result)
        print(
            f"{backend:10s} /suggest p50 {result['suggest_p50_ms']} ms  p99 {result['suggest_p99_ms']} ms  "
            f"max {result['suggest_max_ms']} ms  ({result['suggest_requests']} requests) | "
            f"5xx {result['server_errors']}  locked {result['database_locked_lines']}  "
            f"double leases {result['double_leases']}  lost labels {result['lost_labels']}  "
            f"import {result['import_status']} in {result['import_seconds']} s | "
            f"job {result['training_job'].get('status')} | restart {result['pg_restart']}",
            flush=True,
        )
        print(f"{'':10s} /suggest by window: {result['suggest_by_window']}", flush=True)
    output = {
        "benchmark": "load_annotators",
        "created_at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(output, indent=2) + "\n")
    os.replace(tmp, args.output)
    print(f"saved {args.output}")
    return (
        1
        if any(
            r["server_errors_outside_restart"] or r["lost_labels"] or r["double_leases"]
            for r in results
        )
        else 0
    )


if __name__ == "__main__":
    sys.exit(main())
