"""``ImageStore``: put bytes, get them back by sha256, delete. ``FileImageStore`` keeps them
as files ``<root>/images/ab/cd/<sha256>`` written atomically (tmp file, fsync, rename)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Protocol

from xmodel_contracts.files import atomic_write_bytes

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ImageStore(Protocol):
    """The small surface an object store needs to implement to replace the file store."""

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its sha256 (idempotent)."""

    def exists(self, sha256: str) -> bool: ...

    def get(self, sha256: str) -> bytes: ...

    def path(self, sha256: str) -> Path | None:
        """A local file path for streaming, or None for object stores (then use ``get``)."""

    def delete(self, sha256: str) -> None: ...

    def count(self) -> int:
        """How many images are stored (used by tests and health checks)."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def image_key(sha256: str) -> str:
    """``images/ab/cd/<sha256>``: one layout for files and objects."""
    if not _SHA256.match(sha256):
        raise ValueError("not a sha256 hex digest")
    return f"images/{sha256[:2]}/{sha256[2:4]}/{sha256}"


class FileImageStore:
    """Images as files under ``root/images``, sharded by the first two hex byte pairs."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "images"
        self.root.mkdir(parents=True, exist_ok=True)

    def _file(self, sha256: str) -> Path:
        return self.root.parent / image_key(sha256)

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        target = self._file(digest)
        if not target.exists():
            atomic_write_bytes(target, data)
        return digest

    def exists(self, sha256: str) -> bool:
        return self._file(sha256).exists()

    def get(self, sha256: str) -> bytes:
        return self._file(sha256).read_bytes()

    def path(self, sha256: str) -> Path | None:
        return self._file(sha256)

    def delete(self, sha256: str) -> None:
        self._file(sha256).unlink(missing_ok=True)

    def count(self) -> int:
        return sum(1 for p in self.root.rglob("*") if p.is_file() and not p.name.startswith("."))
