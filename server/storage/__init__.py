"""Content-addressed storage for image bytes and model artefacts: local files or S3."""

from server.storage.artefact_store import (
    ArtefactMissing,
    ArtefactStore,
    FileArtefactStore,
    S3ArtefactStore,
    model_prefix,
)
from server.storage.image_store import FileImageStore, ImageStore

__all__ = [
    "ArtefactMissing",
    "ArtefactStore",
    "FileArtefactStore",
    "FileImageStore",
    "ImageStore",
    "S3ArtefactStore",
    "model_prefix",
]
