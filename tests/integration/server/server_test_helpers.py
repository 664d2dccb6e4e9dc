"""Helpers for the server tests: images, zips, a tiny ONNX model, row and file counts."""

from __future__ import annotations

import io
import json
import random
import zipfile
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import Engine, func, select

from server.db.base import Base

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


def image_bytes(
    color: tuple[int, int, int] | None = None,
    size: tuple[int, int] = (32, 24),
    fmt: str = "PNG",
    seed: int | None = None,
) -> bytes:
    rng = random.Random(seed)
    color = color or (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    image = Image.new("RGB", size, color)
    image.putpixel((0, 0), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


_counter = iter(range(10**9))


def unique_png(size: tuple[int, int] = (32, 24)) -> bytes:
    n = next(_counter)
    return image_bytes(color=(n % 256, (n // 256) % 256, (n // 65536) % 256), size=size, seed=n)


def zip_bytes(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            t.name: int(connection.scalar(select(func.count()).select_from(t)) or 0)
            for t in Base.metadata.sorted_tables
        }


def tiny_onnx_model(num_classes: int = 2, num_heads: int = 2) -> bytes:
    """images [B,3,H,W] → mean over H,W → [B,3] @ W_h → softmax, stacked to [heads, B, D]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, initialisers, head_outputs = [], [], []
    nodes.append(helper.make_node("ReduceMean", ["images", "axes_hw"], ["pooled"], keepdims=0))
    initialisers.append(numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes_hw"))
    initialisers.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"))
    for h in range(num_heads):
        weight = rng.normal(size=(3, num_classes)).astype(np.float32) * (h + 1)
        initialisers.append(numpy_helper.from_array(weight, f"w{h}"))
        nodes.append(helper.make_node("MatMul", ["pooled", f"w{h}"], [f"logits{h}"]))
        nodes.append(helper.make_node("Softmax", [f"logits{h}"], [f"probs{h}"], axis=1))
        nodes.append(helper.make_node("Unsqueeze", [f"probs{h}", "axis0"], [f"head{h}"]))
        head_outputs.append(f"head{h}")
    nodes.append(helper.make_node("Concat", head_outputs, ["predictions"], axis=0))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["B", 3, "H", "W"])],
        [
            helper.make_tensor_value_info(
                "predictions", TensorProto.FLOAT, [num_heads, "B", num_classes]
            )
        ],
        initialisers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


def model_config(classes: list[str], num_heads: int = 2, size: int = 16) -> dict[str, Any]:
    return {
        "format": "xmodel/1",
        "task": {"kind": "classification", "classes": classes},
        "num_heads": num_heads,
        "preprocess": {
            "size": [size, size],
            "channels": "RGB",
            "scale": 1 / 255,
            "resize": "bilinear",
            "layout": "NCHW",
        },
        "onnx": {"input": "images", "output": "predictions"},
    }


def dumps(value: Any) -> str:
    return json.dumps(value)


def register_model(
    api: Any,
    project_id: int,
    *,
    classes: list[str] | None = None,
    labelled_count: int = 0,
    metrics: dict[str, Any] | None = None,
    activate: bool = True,
    scores: list[tuple[int, float, int]] | None = None,
) -> int:
    """Do what the worker does: write artefacts, insert the model row, write scores, activate."""
    import hashlib

    from sqlalchemy.orm import Session

    from server.db.models import ModelVersion
    from server.models import repository as models_repository
    from server.suggest.ranking import ranked_rows
    from server.suggest.repository import write_scores

    classes = classes or ["cat", "dog"]
    with Session(api.engine) as session, session.begin():
        version = models_repository.next_version(session, project_id)
        relative = f"models/{project_id}/v{version}"
        directory = api.settings.storage_dir / relative
        directory.mkdir(parents=True, exist_ok=True)
        files = {
            "model.onnx": tiny_onnx_model(len(classes)),
            "config.json": json.dumps(model_config(classes)).encode(),
            "model.safetensors": b"not really safetensors",
            "model.torchscript.pt": b"not really torchscript",
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
                labelled_count=labelled_count,
                metrics=metrics or {},
                config_path=f"{relative}/config.json",
                config_sha256=digests["config.json"],
                safetensors_path=f"{relative}/model.safetensors",
                safetensors_sha256=digests["model.safetensors"],
                onnx_path=f"{relative}/model.onnx",
                onnx_sha256=digests["model.onnx"],
                torchscript_path=f"{relative}/model.torchscript.pt",
                torchscript_sha256=digests["model.torchscript.pt"],
            ),
        )
        if scores:
            write_scores(session, model.id, "xmodel", ranked_rows(scores))
        if activate:
            models_repository.activate(session, model)
        return model.id
