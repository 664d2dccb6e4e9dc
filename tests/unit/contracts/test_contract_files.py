"""The shared file steps: an atomic write is all or nothing; the sha256 helpers agree."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from xmodel_contracts.files import (
    atomic_write,
    atomic_write_bytes,
    sha256_of_file,
    sha256_of_stream,
)


def test_atomic_write_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "file.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


@pytest.mark.parametrize("durable", [True, False])
def test_a_failed_write_keeps_the_old_file_and_removes_its_temp(
    tmp_path: Path, durable: bool
) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_bytes(b"ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail, durable=durable)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_sha256_helpers_match_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000  # several read chunks
    (tmp_path / "f").write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_of_file(tmp_path / "f") == expected
    assert sha256_of_stream(io.BytesIO(data)) == expected
