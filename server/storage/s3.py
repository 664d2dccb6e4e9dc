"""S3-compatible object storage (AWS S3, SeaweedFS, MinIO, ...) through boto3.

``S3Objects`` is the thin layer over one bucket and key prefix; :class:`S3ImageStore` and
``S3ArtefactStore`` (``artefact_store.py``) build on it. An S3 PUT is atomic (a reader sees no
object or the whole object) and every upload carries its MD5, so the server refuses a body
damaged on the way; the sha256 rides along as object metadata for later checks."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from server.storage.image_store import image_key, sha256_hex

SHA256_METADATA = "sha256"


class S3Objects:
    """put / get / head / delete / list under ``prefix`` in one bucket."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @classmethod
    def connect(
        cls,
        endpoint_url: str | None,
        bucket: str,
        *,
        prefix: str = "",
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        create_bucket: bool = True,
    ) -> S3Objects:
        """A client with path-style addressing (works with every S3-compatible server);
        creates the bucket when it is missing and ``create_bucket``."""
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 5, "mode": "standard"},
                # Content-MD5 is sent explicitly; the newer CRC trailers are not understood by
                # every S3-compatible server
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                max_pool_connections=32,
            ),
        )
        objects = cls(client, bucket, prefix)
        if create_bucket:
            objects.ensure_bucket()
        return objects

    def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:  # another process created it first
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def key(self, name: str) -> str:
        return self.prefix + name

    def put_bytes(self, name: str, data: bytes, sha256: str | None = None) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=self.key(name),
            Body=data,
            ContentMD5=base64.b64encode(hashlib.md5(data).digest()).decode(),
            Metadata={SHA256_METADATA: sha256 or sha256_hex(data)},
        )

    def head(self, name: str) -> dict[str, Any] | None:
        """``{"size", "sha256"}`` of a stored object, or None when there is none."""
        from botocore.exceptions import ClientError

        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=self.key(name))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return {
            "size": int(answer["ContentLength"]),
            "sha256": answer.get("Metadata", {}).get(SHA256_METADATA),
        }

    def get_bytes(self, name: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key(name))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return answer["Body"].read()

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(name))

    def names(self, prefix: str) -> Iterator[str]:
        """Every stored name under ``prefix`` (without this store's own prefix)."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.key(prefix)):
            for entry in page.get("Contents", []):
                yield entry["Key"][len(self.prefix) :]

    def delete_prefix(self, prefix: str) -> None:
        batch: list[dict[str, str]] = []
        for name in list(self.names(prefix)):
            batch.append({"Key": self.key(name)})
            if len(batch) == 1000:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
                batch = []
        if batch:
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})


class S3ImageStore:
    """Images as objects ``images/ab/cd/<sha256>``: content-addressed, so a second PUT of the
    same bytes changes nothing a reader could see."""

    def __init__(self, objects: S3Objects) -> None:
        self.objects = objects

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        name = image_key(digest)
        if self.objects.head(name) is None:
            self.objects.put_bytes(name, data, digest)
        return digest

    def exists(self, sha256: str) -> bool:
        return self.objects.head(image_key(sha256)) is not None

    def get(self, sha256: str) -> bytes:
        data = self.objects.get_bytes(image_key(sha256))
        if data is None:
            raise FileNotFoundError(f"image {sha256} is not in the object store")
        return data

    def path(self, sha256: str) -> Path | None:
        return None

    def delete(self, sha256: str) -> None:
        self.objects.delete(image_key(sha256))

    def count(self) -> int:
        return sum(1 for _ in self.objects.names("images/"))
