"""Export a trained model's files (safetensors + config.json, ONNX, TorchScript, each written
atomically by ``xmodel_core.export``) into the job's local scratch folder, then publish them
to the artefact store under one content-addressed folder
``models/<project>/<job>/<digest>/`` (``server.storage.model_prefix``), each checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.storage import ArtefactStore, model_prefix
from xmodel_contracts.exported import ONNX_FILE
from xmodel_core.export import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    export_onnx,
    export_torchscript,
    load_model,
    save_model,
    trace_decoded,
)
from xmodel_core.model import XModel
from xmodel_core.tasks import TaskSpec

TORCHSCRIPT_FILE = "model.torchscript.pt"


def models_prefix(project_id: int, job_id: int) -> str:
    """Every model folder a job has published lives under this key prefix."""
    return f"models/{project_id}/{job_id}/"


def write_artefacts(
    model: XModel, task: TaskSpec, out: Path, extra: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Returns ``{"safetensors"|"config"|"onnx"|"torchscript": {"path", "sha256", ...}}``."""
    saved = save_model(model, task, out, extra=extra)
    # read the folder back as any consumer would: a model that cannot be rebuilt from its own
    # files (a short write, a config that does not describe the weights) never becomes active
    load_model(out, weights_sha256=saved[WEIGHTS_FILE]["sha256"])
    traced = trace_decoded(model, task)  # one trace for both formats; each file is verified
    return {
        "safetensors": saved[WEIGHTS_FILE],
        "config": saved[CONFIG_FILE],
        "onnx": export_onnx(model, task, out / ONNX_FILE, traced=traced),
        "torchscript": export_torchscript(model, task, out / TORCHSCRIPT_FILE, traced=traced),
    }


def publish_artefacts(
    store: ArtefactStore, project_id: int, job_id: int, files: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Store every exported file under its content-addressed key; returns ``files`` with
    ``"key"`` added to each. Raises (and publishes no row) if any file does not arrive whole."""
    names = {fmt: Path(info["path"]).name for fmt, info in files.items()}
    prefix = model_prefix(
        project_id, job_id, {names[fmt]: info["sha256"] for fmt, info in files.items()}
    )
    published = {}
    for fmt, info in files.items():
        key = prefix + names[fmt]
        store.put_file(key, Path(info["path"]), info["sha256"])
        published[fmt] = {**info, "key": key}
    return published
