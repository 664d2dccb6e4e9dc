"""Model registry rules: artefact paths stay inside the storage root."""

from __future__ import annotations

from pathlib import Path

from server.db.models import ModelVersion
from server.errors import NotFound
from server.models.schemas import ArtefactFormat, ArtefactRead, ModelRead

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


def artefact_path(storage_root: Path, relative: str) -> Path:
    """Resolve a stored relative path, refusing anything outside the storage root."""
    root = storage_root.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise NotFound("artefact not found")
    return path


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
