"""Write a trained model's files under ``<storage>/models/<project>/<job_id>/``: safetensors
+ config.json, ONNX and TorchScript, each atomically (``xmodel_core.export``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xmodel_contracts.exported import ONNX_FILE
from xmodel_core.export import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    export_onnx,
    export_torchscript,
    load_model,
    save_model,
)
from xmodel_core.model import XModel
from xmodel_core.tasks import TaskSpec

TORCHSCRIPT_FILE = "model.torchscript.pt"


def model_dir(storage: Path, project_id: int, job_id: int) -> Path:
    return storage / "models" / str(project_id) / str(job_id)


def write_artefacts(
    model: XModel, task: TaskSpec, out: Path, extra: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Returns ``{"safetensors"|"config"|"onnx"|"torchscript": {"path", "sha256", ...}}``."""
    saved = save_model(model, task, out, extra=extra)
    # read the folder back as any consumer would: a model that cannot be rebuilt from its own
    # files (a short write, a config that does not describe the weights) never becomes active
    load_model(out, weights_sha256=saved[WEIGHTS_FILE]["sha256"])
    return {
        "safetensors": saved[WEIGHTS_FILE],
        "config": saved[CONFIG_FILE],
        "onnx": export_onnx(model, task, out / ONNX_FILE),
        "torchscript": export_torchscript(model, task, out / TORCHSCRIPT_FILE),
    }
