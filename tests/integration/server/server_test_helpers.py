"""Helpers for the server tests: images, zips, a stub model, row and file counts."""

from __future__ import annotations

import io
import json
import random
import zipfile
from typing import Any

from PIL import Image
from sqlalchemy import Engine, func, select

from bench.stub_model import install_stub_model
from server.db.base import Base

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


def image_bytes(
    color: tuple[int, int, int] | None = None,
    size: tuple[int, int] = (32, 24),
    fmt: str = "PNG",
    seed: int | None = None,
) -> bytes:
    rng = random.Random(seed)
    color = color or (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    image = Image.new("RGB", size, color)
    image.putpixel((0, 0), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


_counter = iter(range(10**9))


def unique_png(size: tuple[int, int] = (32, 24)) -> bytes:
    n = next(_counter)
    return image_bytes(color=(n % 256, (n // 256) % 256, (n // 65536) % 256), size=size, seed=n)


def zip_bytes(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            t.name: int(connection.scalar(select(func.count()).select_from(t)) or 0)
            for t in Base.metadata.sorted_tables
        }


def dumps(value: Any) -> str:
    return json.dumps(value)


def register_model(
    api: Any,
    project_id: int,
    *,
    classes: list[str] | None = None,
    labelled_count: int = 0,
    metrics: dict[str, Any] | None = None,
    activate: bool = True,
    scores: list[tuple[int, float, int]] | None = None,
) -> int:
    """Do what the worker does: write artefacts, insert the model row, write scores, activate."""
    return install_stub_model(
        api.engine,
        api.settings.storage_dir,
        project_id,
        {"kind": "classification", "classes": classes or ["cat", "dog"]},
        labelled_count=labelled_count,
        metrics=metrics,
        scores=scores,
        activate=activate,
    )
