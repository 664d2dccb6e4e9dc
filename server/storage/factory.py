"""Build the image and artefact stores the settings ask for: local files (the embedded
default) or an S3-compatible object store. API and workers call the same function, so they
always agree on where things are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from server.settings import Settings
from server.storage.artefact_store import ArtefactStore, FileArtefactStore, S3ArtefactStore
from server.storage.image_store import FileImageStore, ImageStore
from server.storage.s3 import S3ImageStore, S3Objects


@dataclass(frozen=True)
class Stores:
    images: ImageStore
    artefacts: ArtefactStore


def build_stores(settings: Settings) -> Stores:
    root = Path(settings.storage_dir)
    if settings.storage_backend == "file":
        return Stores(FileImageStore(root), FileArtefactStore(root))
    objects = S3Objects.connect(
        settings.s3_endpoint_url,
        settings.s3_bucket,
        prefix=settings.s3_prefix,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
    )
    # storage_dir is then only this process's cache of downloaded model files
    return Stores(S3ImageStore(objects), S3ArtefactStore(objects, root / "cache" / "artefacts"))
