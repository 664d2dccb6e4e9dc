"""Read an untrusted zip archive into memory with hard caps, never touching the filesystem
with its entry names: entry count, bytes actually read (not the header's claims),
compression ratio, unsafe names rejected."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

from server.errors import InvalidArchive, PayloadTooLarge

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int
    max_total_bytes: int
    max_entry_bytes: int
    max_ratio: float


@dataclass(frozen=True)
class ArchiveEntry:
    name: str
    data: bytes


def check_entry_name(name: str) -> str:
    """Reject absolute paths, drive letters, ``..`` parts and control characters."""
    if not name or "\x00" in name or any(ord(c) < 32 for c in name):
        raise InvalidArchive(f"zip entry {name!r}: invalid name")
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise InvalidArchive(f"zip entry {name!r}: absolute paths are not allowed")
    if ".." in PurePosixPath(normalised).parts:
        raise InvalidArchive(f"zip entry {name!r}: '..' is not allowed in entry names")
    return normalised


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, name: str) -> bytes:
    buffer = io.BytesIO()
    with archive.open(info) as handle:
        while True:
            chunk = handle.read(_CHUNK)
            if not chunk:
                break
            buffer.write(chunk)
            if buffer.tell() > limit:
                raise PayloadTooLarge(f"zip entry {name!r} expands past {limit} bytes")
    return buffer.getvalue()


def read_archive(source: BinaryIO, limits: ArchiveLimits) -> list[ArchiveEntry]:
    """Return every file entry of the zip, or raise a 4xx error; nothing is written."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidArchive(f"not a readable zip archive ({exc})") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_entries:
            raise InvalidArchive(f"zip has {len(infos)} entries; the limit is {limits.max_entries}")
        for info in infos:
            check_entry_name(info.filename)
        entries: list[ArchiveEntry] = []
        total = 0
        for info in infos:
            if info.is_dir():
                continue
            name = check_entry_name(info.filename)
            if info.flag_bits & 0x1:
                raise InvalidArchive(f"zip entry {name!r}: encrypted entries are not supported")
            remaining = limits.max_total_bytes - total
            try:
                data = _read_bounded(archive, info, min(limits.max_entry_bytes, remaining), name)
            except PayloadTooLarge as exc:
                raise InvalidArchive(
                    f"{exc.detail}; archive rejected as a possible zip bomb"
                ) from exc
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise InvalidArchive(f"zip entry {name!r}: cannot be read ({exc})") from exc
            total += len(data)
            compressed = max(info.compress_size, 1)
            if len(data) > 1024 and len(data) / compressed > limits.max_ratio:
                raise InvalidArchive(
                    f"zip entry {name!r}: compression ratio {len(data) / compressed:.0f}:1 exceeds "
                    f"{limits.max_ratio:.0f}:1; archive rejected as a possible zip bomb"
                )
            entries.append(ArchiveEntry(name=name, data=data))
        return entries
