"""Helpers for the worker tests: a real ``celery worker`` subprocess, an in-process API that
enqueues through the real broker, tiny images, polling."""

from __future__ import annotations

import functools
import io
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from in_process_api import in_process_settings
from PIL import Image
from sqlalchemy import Engine, func, select

from server.db.engine import make_engine
from server.db.models import ItemScore, Job, ModelVersion
from server.main import create_app
from xmodel_client import UploadSource, XModelClient
from xmodel_contracts.launch import worker_command

REPO = Path(__file__).resolve().parents[3]
ADMIN_TOKEN = "worker-test-admin-token-0123456789"
REDIS_URL = "redis://127.0.0.1:6379/0"


def purge(broker_url: str, queue: str) -> None:
    import celery

    app = celery.Celery(broker=broker_url)
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)
    app.close()


# Short lease / heartbeat / reap periods so a killed worker's job comes back in seconds.
FAST_WORKER_ENV = {
    "XM_JOB_LEASE_SECONDS": "4",
    "XM_HEARTBEAT_SECONDS": "1",
    "XM_REAP_SECONDS": "1",
    "XM_PROGRESS_SECONDS": "0.2",
    "XM_CHECKPOINT_EVERY": "5",
    "XM_CHECKPOINT_MIN_SECONDS": "0",  # a checkpoint every 5 steps, however fast they are
    "XM_RETRY_BACKOFF_SECONDS": "1",
    "OMP_NUM_THREADS": "1",
}


@dataclass
class WorkerProcess:
    """``celery -A worker.app worker --pool=solo --concurrency=1`` with the given env."""

    env: dict[str, str]
    log_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    def start(self, timeout: float = 60) -> WorkerProcess:
        return self.launch().wait_ready(timeout)

    def launch(self) -> WorkerProcess:
        """Start the process without waiting (start several, then ``wait_ready`` each)."""
        log = self.log_dir / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        # unique per process and per worker object: several may run side by side
        command = worker_command(f"test{len(self.logs)}-{os.getpid()}-{id(self) % 100_000}@%h")
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                command,
                cwd=REPO,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_ready(self, timeout: float = 60) -> WorkerProcess:
        assert self.proc is not None
        log = self.logs[-1]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{log.read_text()}")
            if b" ready." in log.read_bytes():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{log.read_text()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())


def worker_env(database_url: str, storage: Path, broker_url: str, queue: str) -> dict[str, str]:
    return {
        "XM_DATABASE_URL": database_url,
        "XM_STORAGE_DIR": str(storage),
        "XM_BROKER_URL": broker_url,
        "XM_BROKER_QUEUE": queue,
        "XM_ADMIN_TOKEN": ADMIN_TOKEN,
        **FAST_WORKER_ENV,
    }


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text → {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def png(colour: tuple[int, int, int], seed: int, size: int = 20) -> bytes:
    """A noisy image of one colour (unique bytes per seed)."""
    rng = random.Random(seed)
    image = Image.new("RGB", (size, size))
    image.putdata(
        [
            tuple(max(0, min(255, c + rng.randint(-40, 40))) for c in colour)
            for _ in range(size * size)
        ]
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Client:
    """The API seen over HTTP (an in-process TestClient; the worker is a separate process)."""

    http: TestClient
    engine: Engine

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def api(self, token: str = ADMIN_TOKEN) -> XModelClient:
        """The Python client over this in-process app."""
        return XModelClient("http://testserver", token, http=self.http)

    def owner_api(self, owner: dict[str, str]) -> XModelClient:
        return self.api(owner["Authorization"].removeprefix("Bearer "))

    def project(
        self, training: dict[str, Any], n_images: int = 24, n_labelled: int = 12
    ) -> tuple[int, dict[str, str], list[int]]:
        """A two-class colour project with ``n_images`` images, the first ``n_labelled`` labelled."""
        created = self.api().create_project(
            "colours",
            {"kind": "classification", "classes": ["red", "blue"]},
            image_size=16,
            backbone="small_cnn",
            training=training,
        )
        owner_api = self.api(created.owner_token)
        base = random.randrange(10**6)
        images = [
            png((200, 30, 30) if i % 2 == 0 else (30, 30, 200), base + i) for i in range(n_images)
        ]
        sources = [
            UploadSource(f"{i}.png", f"{i}.png", len(data), functools.partial(io.BytesIO, data))
            for i, data in enumerate(images)
        ]
        ids = [entry.item.id for entry in owner_api.upload_items(created.id, sources).items]
        for i, item_id in enumerate(ids[:n_labelled]):
            owner_api.set_label(item_id, {"class": "red" if i % 2 == 0 else "blue"})
        return created.id, {"Authorization": f"Bearer {created.owner_token}"}, ids

    def train(self, project_id: int, owner: dict[str, str]) -> int:
        return self.owner_api(owner).create_job(project_id).id

    def job(self, job_id: int, owner: dict[str, str]) -> dict[str, Any]:
        return self.owner_api(owner).get_job(job_id).model_dump(mode="json")

    def wait_job(
        self,
        job_id: int,
        owner: dict[str, str],
        until: Callable[[dict[str, Any]], bool],
        timeout: float,
        worker: WorkerProcess | None = None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        job = self.job(job_id, owner)
        while time.monotonic() < deadline:
            job = self.job(job_id, owner)
            if until(job):
                return job
            time.sleep(0.2)
        logs = worker.log_text()[-6000:] if worker else ""
        raise AssertionError(f"job {job_id} did not get there in {timeout}s: {job}\n{logs}")

    def counts(self, project_id: int) -> dict[str, int]:
        with self.engine.connect() as c:
            models = c.scalar(
                select(func.count())
                .select_from(ModelVersion)
                .where(ModelVersion.project_id == project_id)
            )
            active = c.scalar(
                select(func.count())
                .select_from(ModelVersion)
                .where(ModelVersion.project_id == project_id, ModelVersion.is_active)
            )
            jobs = c.scalar(
                select(func.count()).select_from(Job).where(Job.project_id == project_id)
            )
            scores = c.scalar(
                select(func.count())
                .select_from(ItemScore)
                .join(ModelVersion)
                .where(ModelVersion.project_id == project_id)
            )
            distinct = c.scalar(
                select(func.count(func.distinct(ItemScore.item_id)))
                .join(ModelVersion)
                .where(ModelVersion.project_id == project_id)
            )
        return {
            "models": int(models or 0),
            "active": int(active or 0),
            "jobs": int(jobs or 0),
            "scores": int(scores or 0),
            "scored_items": int(distinct or 0),
        }


def make_client(
    database_url: str, storage: Path, broker_url: str, queue: str, **settings_extra: Any
) -> Iterator[Client]:
    """The in-process API; ``settings_extra`` adds settings (e.g. the S3 store's)."""
    settings = in_process_settings(
        database_url,
        storage,
        ADMIN_TOKEN,
        broker_url=broker_url,
        broker_queue=queue,
        **settings_extra,
    )
    engine = make_engine(database_url)
    with TestClient(create_app(settings)) as http:
        yield Client(http, engine)
    engine.dispose()


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")
