"""Helpers for the page tests: a live API process, tiny ONNX models for every task kind
written the way the worker writes them, and test images (one with an EXIF rotation)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
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
from xmodel_contracts.launch import worker_command

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(data_dir: Path) -> Iterator[LiveServer]:
    """Start ``uvicorn server.main:app`` as ``make run`` would (without its worker)."""
    port = _free_port()
    env = {
        **os.environ,
        "XM_DATABASE_URL": f"sqlite:///{data_dir / 'xmodel.db'}",
        "XM_STORAGE_DIR": str(data_dir / "storage"),
        "XM_BROKER_URL": f"sqla+sqlite:///{data_dir / 'broker.sqlite'}",
        "XM_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    process, url = start_uvicorn(port, env, data_dir / "uvicorn.log")
    try:
        yield LiveServer(
            url=url,
            database_url=env["XM_DATABASE_URL"],
            storage_dir=data_dir / "storage",
            env={k: v for k, v in env.items() if k.startswith("XM_")},
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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


def tiny_onnx(kind: str, outputs: int, num_heads: int = 2, seed: int = 0) -> bytes:
    """images [B,3,H,W] → mean over H,W → [B,3] @ W_h + b_h → softmax (classification),
    identity (regression) or sigmoid (keypoint fractions), stacked to [heads, B, D]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("ReduceMean", ["images", "axes_hw"], ["pooled"], keepdims=0)]
    initialisers = [
        numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes_hw"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"),
    ]
    heads = []
    for h in range(num_heads):
        weight = rng.normal(size=(3, outputs)).astype(np.float32) * (h + 1)
        bias = rng.normal(size=(outputs,)).astype(np.float32)
        if kind == "regression":
            weight, bias = weight * 10, bias * 5 + 40
        initialisers += [
            numpy_helper.from_array(weight, f"w{h}"),
            numpy_helper.from_array(bias, f"b{h}"),
        ]
        nodes += [
            helper.make_node("MatMul", ["pooled", f"w{h}"], [f"m{h}"]),
            helper.make_node("Add", [f"m{h}", f"b{h}"], [f"z{h}"]),
        ]
        final = (
            helper.make_node("Softmax", [f"z{h}"], [f"o{h}"], axis=1)
            if kind == "classification"
            else helper.make_node(
                "Sigmoid" if kind == "keypoints" else "Identity", [f"z{h}"], [f"o{h}"]
            )
        )
        nodes += [
            final,
            helper.make_node("Unsqueeze", [f"o{h}", "axis0"], [f"head{h}"]),
        ]
        heads.append(f"head{h}")
    nodes.append(helper.make_node("Concat", heads, ["predictions"], axis=0))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["B", 3, "H", "W"])],
        [
            helper.make_tensor_value_info(
                "predictions", TensorProto.FLOAT, [num_heads, "B", outputs]
            )
        ],
        initialisers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


def output_dim(task: dict[str, Any]) -> int:
    kind = task["kind"]
    if kind == "classification":
        return len(task["classes"])
    if kind == "regression":
        return len(task["targets"])
    return 2 * len(task["points"])


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
    from sqlalchemy.orm import Session

    from server.db.engine import make_engine
    from server.db.models import ModelVersion
    from server.models import repository as models_repository
    from server.suggest.ranking import ranked_rows
    from server.suggest.repository import write_scores

    engine = make_engine(server.database_url)
    try:
        with Session(engine) as session, session.begin():
            version = models_repository.next_version(session, project_id)
            relative = f"models/{project_id}/v{version}"
            directory = server.storage_dir / relative
            directory.mkdir(parents=True, exist_ok=True)
            config = {
                "format": "xmodel/1",
                "task": task,
                "num_heads": 2,
                "preprocess": {
                    "size": [16, 16],
                    "channels": "RGB",
                    "scale": 1 / 255,
                    "resize": "bilinear",
                    "layout": "NCHW",
                },
                "onnx": {"input": "images", "output": "predictions"},
            }
            files = {
                "model.onnx": tiny_onnx(task["kind"], output_dim(task), seed=seed),
                "config.json": json.dumps(config).encode(),
                "model.safetensors": b"weights are not read by the API",
            }
            digests = {}
            for name, data in files.items():
                (directory / name).write_bytes(data)
                digests[name] = hashlib.sha256(data).hexdigest()
            model = models_repository.add(
                session,
                ModelVersion(
                    project_id=project_id,
                    version=version,
                    labelled_count=0,
                    metrics={},
                    config_path=f"{relative}/config.json",
                    config_sha256=digests["config.json"],
                    onnx_path=f"{relative}/model.onnx",
                    onnx_sha256=digests["model.onnx"],
                    safetensors_path=f"{relative}/model.safetensors",
                    safetensors_sha256=digests["model.safetensors"],
                ),
            )
            if scores:
                write_scores(session, model.id, "xmodel", ranked_rows(scores))
            models_repository.activate(session, model)
            return int(model.id)
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
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
