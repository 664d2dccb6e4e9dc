"""Model registry rules; artefacts are read through the artefact store by their key."""

from __future__ import annotations

from pathlib import Path

from server.db.models import ModelVersion
from server.errors import AppError, NotFound
from server.models.schemas import ArtefactFormat, ArtefactRead, ModelRead
from server.storage import ArtefactMissing, ArtefactStore

FORMAT_COLUMNS: dict[ArtefactFormat, tuple[str, str, str, str]] = {
    "safetensors": (
        "safetensors_path",
        "safetensors_sha256",
        "application/octet-stream",
        "model.safetensors",
    ),
    "onnx": ("onnx_path", "onnx_sha256", "application/octet-stream", "model.onnx"),
    "torchscript": (
        "torchscript_path",
        "torchscript_sha256",
        "application/octet-stream",
        "model.torchscript.pt",
    ),
    "config": ("config_path", "config_sha256", "application/json", "config.json"),
}


def artefact_path(
    artefacts: ArtefactStore,
    key: str,
    sha256: str | None,
    missing: type[AppError] = NotFound,
) -> Path:
    """A local file with the artefact's bytes (downloaded once from an object store);
    ``missing`` is raised when the store does not hold it."""
    try:
        return artefacts.local_file(key, sha256)
    except ArtefactMissing as exc:
        raise missing(f"model artefact is missing from storage ({exc})") from exc


def to_read(model: ModelVersion) -> ModelRead:
    read = ModelRead.model_validate(model)
    read.artefacts = [
        ArtefactRead(
            format=fmt,
            sha256=getattr(model, sha_col),
            download_url=f"/models/{model.id}/download?format={fmt}",
        )
        for fmt, (path_col, sha_col, _media, _name) in FORMAT_COLUMNS.items()
        if getattr(model, path_col)
    ]
    return read
