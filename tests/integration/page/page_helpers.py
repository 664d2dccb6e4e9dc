"""Helpers for the page tests: a live API process, tiny ONNX models for every task kind
written the way the worker writes them, and test images (one with an EXIF rotation)."""

from __future__ import annotations

import io
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from bench.live_api import start_uvicorn
from bench.stub_model import install_stub_model
from xmodel_contracts.launch import embedded_settings, free_port, stop_process, worker_command

REPO = Path(__file__).resolve().parents[3]
ADMIN_TOKEN = "page-test-admin-token-0123456789abcdef"


@dataclass
class LiveServer:
    """A uvicorn process on the embedded defaults (SQLite file, SQLite-file broker, local files)."""

    url: str
    database_url: str
    storage_dir: Path
    env: dict[str, str]

    def client(self, token: str = ADMIN_TOKEN) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )


@contextmanager
def live_server(data_dir: Path) -> Iterator[LiveServer]:
    """Start ``uvicorn server.main:app`` as ``make run`` would (without its worker)."""
    env = {**os.environ, **embedded_settings(data_dir), "XM_ADMIN_TOKEN": ADMIN_TOKEN}
    process, url = start_uvicorn(free_port(), env, data_dir / "uvicorn.log")
    try:
        yield LiveServer(
            url=url,
            database_url=env["XM_DATABASE_URL"],
            storage_dir=data_dir / "storage",
            env={k: v for k, v in env.items() if k.startswith("XM_")},
        )
    finally:
        stop_process(process, timeout=15)


def create_project(server: LiveServer, task: dict[str, Any], name: str = "p") -> tuple[int, str]:
    """A project and its owner token."""
    with server.client() as admin:
        response = admin.post(
            "/projects",
            json={"name": name, "task": task, "image_size": 16, "backbone": "small_cnn"},
        )
        response.raise_for_status()
        return int(response.json()["id"]), str(response.json()["owner_token"])


def create_token(
    server: LiveServer, project_id: int, owner: str, role: str = "annotator", name: str = "a"
) -> tuple[int, str]:
    with server.client(owner) as client:
        response = client.post(f"/projects/{project_id}/tokens", json={"role": role, "name": name})
        response.raise_for_status()
        return int(response.json()["id"]), str(response.json()["token"])


def upload(
    server: LiveServer, project_id: int, token: str, files: list[tuple[str, bytes]]
) -> list[dict[str, Any]]:
    with server.client(token) as client:
        response = client.post(
            f"/projects/{project_id}/items",
            files=[("files", (n, d, "application/octet-stream")) for n, d in files],
        )
        response.raise_for_status()
        return [entry["item"] for entry in response.json()["items"]]


def picture(
    seed: int,
    size: tuple[int, int] = (64, 48),
    fmt: str = "PNG",
    exif_orientation: int | None = None,
) -> bytes:
    """A smooth random picture (distinct per seed), optionally a JPEG with an EXIF rotation."""
    rng = np.random.default_rng(seed)
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    channels = [
        np.sin(xs / (5 + 10 * rng.random()) + rng.random() * 6) * 90
        + 128
        + np.cos(ys / (4 + 8 * rng.random())) * 30
        for _ in range(3)
    ]
    array = np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)
    image = Image.fromarray(array, "RGB")
    buffer = io.BytesIO()
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    else:
        image.save(buffer, format=fmt)
    return buffer.getvalue()


def register_model(
    server: LiveServer,
    project_id: int,
    task: dict[str, Any],
    *,
    seed: int = 0,
    scores: list[tuple[int, float, int]] | None = None,
) -> int:
    """Do what the worker does at the end of a job: write the artefacts (ONNX + config.json),
    insert the model row, write the item scores, then activate the model."""
    from server.db.engine import make_engine

    engine = make_engine(server.database_url)
    try:
        return install_stub_model(
            engine, server.storage_dir, project_id, task, seed=seed, scores=scores
        )
    finally:
        engine.dispose()


@contextmanager
def worker_process(server: LiveServer, log_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """One Celery worker on the server's database, storage and embedded broker, as
    ``make run`` starts it; stopped (warm, then hard) on exit."""
    log_path = log_dir / "worker.log"
    env = {**os.environ, **server.env, "OMP_NUM_THREADS": "1", "XM_PROGRESS_SECONDS": "0.2"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            worker_command(f"page-test-{os.getpid()}@%h"),
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while b" ready." not in log_path.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("worker did not start:\n" + log_path.read_text())
            time.sleep(0.2)
        yield process
    finally:
        stop_process(process, timeout=30)
