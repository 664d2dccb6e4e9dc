"""What ``upload`` sends: image files found in files, folders (recursively) and zips, each
read from disk only while its batch is being sent.

A source's ``name`` is what the service stores as the item's file name, and what label files
are matched against: the path relative to the folder given, a zip entry's path, or a file's
own name when the file is given directly.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from xmodel_contracts.files import sha256_of_stream

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


@dataclass(frozen=True)
class UploadSource:
    """One image to upload; ``origin`` says where it lies (for messages)."""

    name: str
    origin: str
    size: int
    opener: Callable[[], IO[bytes]] = field(repr=False, compare=False)

    def open(self) -> IO[bytes]:
        return self.opener()

    def sha256(self) -> str:
        with self.open() as handle:
            return sha256_of_stream(handle)


@dataclass(frozen=True)
class Skipped:
    origin: str
    reason: str


def _is_hidden(parts: Iterable[str]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def file_source(path: Path, name: str) -> UploadSource:
    """A file on disk, uploaded under ``name``."""
    return UploadSource(
        name=name, origin=str(path), size=path.stat().st_size, opener=lambda: path.open("rb")
    )


def bytes_source(name: str, data: bytes, origin: str = "") -> UploadSource:
    """Bytes already in memory (an image fetched from another service), uploaded under ``name``."""
    return UploadSource(
        name=name, origin=origin or name, size=len(data), opener=lambda: io.BytesIO(data)
    )


def _zip_entries(path: Path) -> Iterator[UploadSource | Skipped]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        yield Skipped(str(path), f"not a readable zip ({exc})")
        return
    for info in archive.infolist():
        entry = info.filename
        if info.is_dir() or _is_hidden(entry.split("/")):
            continue
        if Path(entry).suffix.lower() not in IMAGE_SUFFIXES:
            yield Skipped(f"{path}:{entry}", "not an image file name (.jpg, .png, .webp, .bmp)")
            continue

        def opener(entry: str = entry) -> IO[bytes]:
            return zipfile.ZipFile(path).open(entry)

        yield UploadSource(name=entry, origin=f"{path}:{entry}", size=info.file_size, opener=opener)


def collect(paths: Iterable[Path]) -> tuple[list[UploadSource], list[Skipped]]:
    """Expand files, folders and zips into upload sources, in a stable order."""
    sources: list[UploadSource] = []
    skipped: list[Skipped] = []
    for path in paths:
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file()):
                relative = found.relative_to(path)
                if _is_hidden(relative.parts):
                    continue
                if found.suffix.lower() == ".zip":
                    for entry in _zip_entries(found):
                        (sources if isinstance(entry, UploadSource) else skipped).append(entry)  # type: ignore[arg-type]
                elif found.suffix.lower() in IMAGE_SUFFIXES:
                    sources.append(file_source(found, relative.as_posix()))
                else:
                    skipped.append(
                        Skipped(str(found), "not an image file name (.jpg, .png, .webp, .bmp)")
                    )
        elif path.is_file() and path.suffix.lower() == ".zip":
            for entry in _zip_entries(path):
                (sources if isinstance(entry, UploadSource) else skipped).append(entry)  # type: ignore[arg-type]
        elif path.is_file():
            sources.append(
                file_source(path, path.name)
            )  # named explicitly: sent whatever its suffix
        else:
            skipped.append(Skipped(str(path), "no such file or folder"))
    return sources, skipped


def batches(
    sources: list[UploadSource], max_files: int, max_bytes: int
) -> Iterator[list[UploadSource]]:
    """Consecutive groups of at most ``max_files`` files and (unless one file is larger)
    ``max_bytes`` bytes, so each request stays under the service's request limit."""
    batch: list[UploadSource] = []
    size = 0
    for source in sources:
        if batch and (len(batch) >= max_files or size + source.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(source)
        size += source.size
    if batch:
        yield batch
