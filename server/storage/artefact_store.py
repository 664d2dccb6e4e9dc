"""``ArtefactStore``: model files and job scratch (label snapshot, checkpoint) by key.

Keys are ``/``-separated names such as ``models/<project>/<job>/<digest>/model.onnx``. A
model's files are stored under a folder named by a digest of all their sha256s (see
:func:`model_prefix`), so a key never changes content: a reader that found a key reads the
bytes it expects, and a cached local copy never goes stale. ``FileArtefactStore`` keeps keys
as files under the storage root (the embedded default); ``S3ArtefactStore`` keeps them as
objects and gives readers a verified local copy under a cache folder."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from server.storage.s3 import S3Objects
from xmodel_contracts.files import atomic_write, atomic_write_bytes, sha256_of_file


class ArtefactMissing(FileNotFoundError):
    """The key is not stored (or its bytes do not match the expected sha256)."""


class ArtefactStore(Protocol):
    def put_file(self, key: str, source: Path, sha256: str | None = None) -> None:
        """Store ``source`` under ``key`` and check it arrived whole (size, and the sha256
        when given). A file store given its own file for ``key`` leaves it in place."""

    def local_file(self, key: str, sha256: str | None = None) -> Path:
        """A readable local file with the key's bytes; raises :class:`ArtefactMissing`."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes | None:
        """The key's bytes, or None when it is not stored."""

    def delete_prefix(self, prefix: str) -> None:
        """Remove every key under ``prefix`` (a folder such as ``models/3/``)."""


def model_prefix(project_id: int, job_id: int, files: Mapping[str, str]) -> str:
    """``models/<project>/<job>/<digest>/`` where ``digest`` hashes every ``name: sha256`` of
    the model's files: content-addressed, and one folder per model (loaders want the config
    and the weights side by side)."""
    listing = "\n".join(f"{name}:{sha}" for name, sha in sorted(files.items()))
    digest = hashlib.sha256(listing.encode()).hexdigest()[:16]
    return f"models/{project_id}/{job_id}/{digest}/"


def _checked_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts[:-1]):
        raise ArtefactMissing(f"not an artefact key: {key!r}")
    return key


class FileArtefactStore:
    """Keys as files under ``root``; a key never resolves outside it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        root = self.root.resolve()
        path = (root / _checked_key(key)).resolve()
        if not path.is_relative_to(root) or path == root:
            raise ArtefactMissing(f"not an artefact key: {key!r}")
        return path

    def put_file(self, key: str, source: Path, sha256: str | None = None) -> None:
        target = self._path(key)
        if Path(source).resolve() != target:
            atomic_write_bytes(target, Path(source).read_bytes())
        if sha256 is not None and sha256_of_file(target) != sha256:
            raise OSError(f"{key}: stored bytes do not match sha256 {sha256}")

    def local_file(self, key: str, sha256: str | None = None) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise ArtefactMissing(f"{key} is missing from storage")
        return path

    def put_bytes(self, key: str, data: bytes) -> None:
        atomic_write_bytes(self._path(key), data)

    def get_bytes(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix.rstrip("/")), ignore_errors=True)


class S3ArtefactStore:
    """Keys as objects; ``local_file`` downloads once into ``cache_dir`` (verified against the
    sha256 when given) and serves later calls from there."""

    def __init__(self, objects: S3Objects, cache_dir: Path) -> None:
        self.objects = objects
        self.cache_dir = Path(cache_dir)

    def put_file(self, key: str, source: Path, sha256: str | None = None) -> None:
        data = Path(source).read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if sha256 is not None and actual != sha256:
            raise OSError(f"{key}: {source} does not have sha256 {sha256}")
        self.objects.put_bytes(_checked_key(key), data, actual)  # the server checks its MD5
        stored = self.objects.head(key)
        size = len(data)
        if stored is None or stored["size"] != size or stored["sha256"] != actual:
            raise OSError(f"{key}: the object store does not hold the {size} bytes just sent")

    def local_file(self, key: str, sha256: str | None = None) -> Path:
        target = self.cache_dir / _checked_key(key)
        if target.is_file():
            return target
        data = self.objects.get_bytes(key)
        if data is None:
            raise ArtefactMissing(f"{key} is missing from the object store")
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise ArtefactMissing(f"{key}: downloaded bytes do not match sha256 {sha256}")
        # a cache copy: readers see all of it or none; a crash only costs a download
        atomic_write(target, lambda tmp: tmp.write_bytes(data), durable=False)
        return target

    def put_bytes(self, key: str, data: bytes) -> None:
        self.objects.put_bytes(_checked_key(key), data)

    def get_bytes(self, key: str) -> bytes | None:
        return self.objects.get_bytes(_checked_key(key))

    def delete_prefix(self, prefix: str) -> None:
        self.objects.delete_prefix(prefix)
        shutil.rmtree(self.cache_dir / prefix.rstrip("/"), ignore_errors=True)
