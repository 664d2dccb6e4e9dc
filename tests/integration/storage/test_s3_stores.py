"""The image and artefact stores against a real S3 server (SeaweedFS): round trips,
content-addressed keys, verified downloads, and a reader never seeing part of an object."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
from s3_test_server import S3Server

from server.settings import Settings
from server.storage import ArtefactMissing, S3ArtefactStore, model_prefix
from server.storage.factory import build_stores
from server.storage.s3 import S3ImageStore, S3Objects

pytestmark = pytest.mark.integration


def _objects(server: S3Server, bucket: str) -> S3Objects:
    return S3Objects.connect(
        server.endpoint_url,
        bucket,
        access_key_id=server.access_key_id,
        secret_access_key=server.secret_access_key,
    )


def test_settings_build_s3_stores(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    stores = build_stores(Settings(storage_dir=tmp_path, **s3_server.settings(s3_bucket)))
    assert isinstance(stores.images, S3ImageStore)
    assert isinstance(stores.artefacts, S3ArtefactStore)
    digest = stores.images.put(b"pixels")
    # nothing of it on the local disk: another host reads it from the bucket
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
    assert stores.images.get(digest) == b"pixels"


def test_image_store_round_trip(s3_server: S3Server, s3_bucket: str) -> None:
    store = S3ImageStore(_objects(s3_server, s3_bucket))
    data = os.urandom(5000)
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.put(data) == digest and store.count() == 1  # idempotent
    assert store.exists(digest) and store.get(digest) == data
    assert store.path(digest) is None
    assert _objects(s3_server, s3_bucket).names(f"images/{digest[:2]}/") is not None
    store.delete(digest)
    assert not store.exists(digest) and store.count() == 0
    with pytest.raises(FileNotFoundError):
        store.get(digest)
    with pytest.raises(ValueError):
        store.exists("../../etc/passwd")


def test_artefacts_are_checked_and_cached(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    objects = _objects(s3_server, s3_bucket)
    store = S3ArtefactStore(objects, tmp_path / "cache")
    source = tmp_path / "model.onnx"
    source.write_bytes(os.urandom(100_000))
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    key = model_prefix(1, 2, {"model.onnx": sha}) + "model.onnx"
    store.put_file(key, source, sha)
    assert objects.head(key) == {"size": 100_000, "sha256": sha}

    local = store.local_file(key, sha)
    assert local.read_bytes() == source.read_bytes() and local.is_relative_to(tmp_path / "cache")

    # a download whose bytes are not the recorded ones is refused, and nothing is cached
    other = S3ArtefactStore(objects, tmp_path / "cache2")
    with pytest.raises(ArtefactMissing, match="sha256"):
        other.local_file(key, "0" * 64)
    assert not (tmp_path / "cache2" / key).exists()
    with pytest.raises(ArtefactMissing):
        other.local_file("models/1/2/nothing/model.onnx")
    with pytest.raises(ArtefactMissing):
        other.local_file("models/../../etc/passwd")

    # a claimed sha256 that is not the file's: the upload is not accepted as stored
    with pytest.raises(OSError):
        store.put_file("models/1/2/x/config.json", source, "f" * 64)

    store.delete_prefix("models/1/")
    assert list(objects.names("models/")) == []
    assert not (tmp_path / "cache" / key).exists()


def test_model_keys_are_content_addressed() -> None:
    first = model_prefix(3, 9, {"model.onnx": "a" * 64, "config.json": "b" * 64})
    same = model_prefix(3, 9, {"config.json": "b" * 64, "model.onnx": "a" * 64})
    retrained = model_prefix(3, 9, {"model.onnx": "c" * 64, "config.json": "b" * 64})
    assert first == same and first != retrained
    assert first.startswith("models/3/9/") and retrained.startswith("models/3/9/")


def test_reader_never_sees_part_of_an_object(s3_server: S3Server, s3_bucket: str) -> None:
    """While big objects are written, a reader polling their keys gets nothing or all of it."""
    objects = _objects(s3_server, s3_bucket)
    blobs = [os.urandom(4 * 2**20) for _ in range(3)]
    shas = [hashlib.sha256(b).hexdigest() for b in blobs]
    seen: list[str | None] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            for sha in shas:
                got = objects.get_bytes(f"blob/{sha}")
                seen.append(None if got is None else hashlib.sha256(got).hexdigest())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for sha, blob in zip(shas, blobs, strict=True):
            objects.put_bytes(f"blob/{sha}", blob, sha)
    finally:
        done.set()
        reader.join(30)
    assert seen and set(seen) <= {None, *shas}
    assert all(objects.get_bytes(f"blob/{sha}") == b for sha, b in zip(shas, blobs, strict=True))
