"""A model version installed the way a training job leaves one, without training: artefact
files under the storage folder, the model row with their sha256, the item scores, activation.

The integration tests install tiny hand-built ONNX models with :func:`install_stub_model`; the
labelling-page benchmark writes a real export and adds its row with :func:`add_model_row`.
Torch-free (the ONNX graphs are built with the ``onnx`` package).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from server.db.models import ModelVersion
from server.models import repository as models_repository
from server.models.service import FORMAT_COLUMNS
from server.suggest.ranking import ranked_rows
from server.suggest.repository import write_scores
from xmodel_contracts.exported import ONNX_INPUT, ONNX_OUTPUT, preprocess_recipe
from xmodel_contracts.files import sha256_of_file
from xmodel_contracts.names import EXPORT_FORMAT, ScoreStrategy


def tiny_onnx(kind: str, outputs: int, num_heads: int = 2, seed: int = 0) -> bytes:
    """images [B,3,H,W] → mean over H,W → [B,3] @ W_h + b_h → softmax (classification),
    identity (regression) or sigmoid (keypoint fractions), stacked to [heads, B, D]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("ReduceMean", [ONNX_INPUT, "axes_hw"], ["pooled"], keepdims=0)]
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
    nodes.append(helper.make_node("Concat", heads, [ONNX_OUTPUT], axis=0))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, ["B", 3, "H", "W"])],
        [helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, [num_heads, "B", outputs])],
        initialisers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


def output_dim(task: dict[str, Any]) -> int:
    """Numbers one head outputs for ``task``: a probability per class, a value per target, or
    x and y per point."""
    kind = task["kind"]
    if kind == "classification":
        return len(task["classes"])
    if kind == "regression":
        return len(task["targets"])
    return 2 * len(task["points"])


def stub_config(task: dict[str, Any], num_heads: int = 2, size: int = 16) -> dict[str, Any]:
    """The ``config.json`` of a stub model (no normalisation: the graph takes [0, 1] pixels)."""
    return {
        "format": EXPORT_FORMAT,
        "task": task,
        "num_heads": num_heads,
        "preprocess": preprocess_recipe(size),
        "onnx": {"input": ONNX_INPUT, "output": ONNX_OUTPUT},
    }


def stub_files(task: dict[str, Any], seed: int = 0) -> dict[str, bytes]:
    """Every artefact file of a stub model by name; only the ONNX graph and its config are real."""
    return {
        "model.onnx": tiny_onnx(task["kind"], output_dim(task), seed=seed),
        "config.json": json.dumps(stub_config(task)).encode(),
        "model.safetensors": b"not really safetensors",
        "model.torchscript.pt": b"not really torchscript",
    }


def add_model_row(
    session: Session,
    storage_dir: Path,
    relative: str,
    project_id: int,
    *,
    labelled_count: int = 0,
    metrics: dict[str, Any] | None = None,
) -> ModelVersion:
    """The project's next (inactive) model version for the artefact files found under
    ``storage_dir / relative``, each recorded with its key and sha256."""
    columns: dict[str, str] = {}
    for path_column, sha_column, _media_type, file_name in FORMAT_COLUMNS.values():
        path = storage_dir / relative / file_name
        if path.exists():
            columns[path_column] = f"{relative}/{file_name}"
            columns[sha_column] = sha256_of_file(path)
    return models_repository.add(
        session,
        ModelVersion(
            project_id=project_id,
            version=models_repository.next_version(session, project_id),
            labelled_count=labelled_count,
            metrics=metrics or {},
            **columns,
        ),
    )


def install_stub_model(
    engine: Engine,
    storage_dir: Path,
    project_id: int,
    task: dict[str, Any],
    *,
    seed: int = 0,
    labelled_count: int = 0,
    metrics: dict[str, Any] | None = None,
    scores: list[tuple[int, float, int]] | None = None,
    activate: bool = True,
) -> int:
    """Do what the worker does at the end of a job, in one transaction: write the artefacts,
    insert the model row, write the item scores (``(item_id, score, cluster)``), activate."""
    with Session(engine) as session, session.begin():
        relative = f"models/{project_id}/v{models_repository.next_version(session, project_id)}"
        directory = storage_dir / relative
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in stub_files(task, seed).items():
            (directory / name).write_bytes(data)
        model = add_model_row(
            session,
            storage_dir,
            relative,
            project_id,
            labelled_count=labelled_count,
            metrics=metrics,
        )
        if scores:
            write_scores(session, model.id, ScoreStrategy.XMODEL, ranked_rows(scores))
        if activate:
            models_repository.activate(session, model)
        return int(model.id)
