"""The file steps every layer must do alike: write a file atomically, hash a file.

Standard library only, so the API (images), the worker and the core library (model files,
checkpoints, cached views), the client and the benchmarks all share one implementation.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

HASH_CHUNK = 1 << 20


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], object], *, durable: bool = True) -> None:
    """Call ``write(temp_path)`` next to ``path``, then rename the result over ``path``.

    Readers see either the old file or the whole new one, never a part. ``durable`` also
    fsyncs the file and its folder, so the file survives a crash once this returns (a cache,
    which can recompute what it loses, passes False and saves the cost). The temp file is
    removed on any error.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """:func:`atomic_write` of ``data``."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def sha256_of_stream(handle: IO[bytes]) -> str:
    """Hex sha256 of what ``handle`` yields from its position to its end, read in chunks."""
    digest = hashlib.sha256()
    while chunk := handle.read(HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_of_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``."""
    with open(path, "rb") as handle:
        return sha256_of_stream(handle)
